"""The /simulator page in a real browser, against the real server started as a subprocess.

Skipped when Chromium (/usr/bin/chromium, from Debian) or the playwright package is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot import sms
from tests.helpers import free_port

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
REPLY_TIMEOUT_MS = 15_000

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing"),
]


def _wait_healthy(base: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200 and json.load(response).get("ok"):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not healthy within {timeout:.0f} s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, request) -> str:
    """The real `helpline serve` on a free port and a fresh database; yields its base URL."""
    tmp = tmp_path_factory.mktemp("simulator-server")
    port = free_port()
    config = tmp / "helpline.toml"
    # json.dumps gives a valid TOML basic string (quotes and backslashes escaped).
    config.write_text(
        f"[server]\nport = {port}\n\n[storage]\ndatabase = {json.dumps(str(tmp / 'h.db'))}\n", encoding="utf-8"
    )
    log = tmp / "server.log"
    log_file = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(config)],
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log_file.close()

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"
    _wait_healthy(base, process, log)
    return base


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 420, "height": 900}, base_url=server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    outside: list[str] = []
    page.on("request", lambda req: None if req.url.startswith((server, "data:")) else outside.append(req.url))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not outside, f"the page requested outside URLs: {outside}"


def _send(page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def test_sms_then_telegram(page, tmp_path):
    page.goto("/simulator")
    expect(page.get_by_role("heading", name="Helpline simulator")).to_be_visible()

    # SMS: a plain thread with numbered lines, and the cost line under the bot's SMS.
    page.get_by_text("SMS (basic phone)").click()
    expect(page.get_by_label("SMS (basic phone)")).to_be_checked()
    sms_address = page.locator("#address").inner_text()
    assert re.fullmatch(r"\+1555\d{7}", sms_address)
    _send(page, "hi")
    worker = page.locator("#conversation .msg.in")
    expect(worker.first).to_contain_text("hi", timeout=REPLY_TIMEOUT_MS)
    reply = page.locator("#conversation .msg.out").first
    expect(reply).to_contain_text("Welcome", timeout=REPLY_TIMEOUT_MS)
    body = reply.locator(".body").inner_text()
    assert re.search(r"^1\. ", body, re.MULTILINE), body
    assert re.search(r"^2\. ", body, re.MULTILINE), body
    cost = reply.locator(".cost")
    expect(cost).to_contain_text("≈ cost")
    expect(cost).to_contain_text(re.compile(r"(GSM-7|UCS-2) · \d+ segments?"))
    # The JS estimate agrees with the server's calculator on this reply.
    text = reply.locator(".body").evaluate("el => el.lastChild.textContent")
    expected = sms.segment_info(text)
    assert cost.get_attribute("data-encoding") == expected.encoding
    assert int(cost.get_attribute("data-segments")) == expected.segments
    expect(page.locator("#conversation .keyboard")).to_have_count(0)
    expect(page.locator("#notice")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "simulator-sms.png"), full_page=True)

    # Telegram: its own worker, bubbles and an inline keyboard.
    page.get_by_text("Telegram", exact=True).click()
    expect(page.get_by_label("Telegram", exact=True)).to_be_checked()
    telegram_address = page.locator("#address").inner_text()
    assert re.fullmatch(r"\d{6,}", telegram_address)
    expect(page.get_by_label("Client language (optional)")).to_be_visible()
    expect(page.locator("#conversation .msg")).to_have_count(0)
    _send(page, "hi")
    first = page.locator("#conversation .msg.out").first
    expect(first).to_contain_text("Welcome", timeout=REPLY_TIMEOUT_MS)
    language_buttons = first.locator(".keyboard button")
    expect(language_buttons.first).to_be_enabled()
    language_buttons.first.click()
    menu = page.locator("#conversation .msg.out").filter(has=page.get_by_role("button", name="Know my rights"))
    expect(menu).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    expect(menu.get_by_role("button", name="Know my rights")).to_be_enabled()
    # The pressed keyboard is now an older message's: disabled, the pressed button marked.
    for button in language_buttons.all():
        expect(button).to_be_disabled()
    expect(first.locator(".keyboard button.chosen")).to_have_count(1)
    # The worker's button press shows as the label it sent.
    label = language_buttons.first.inner_text()
    expect(page.locator("#conversation .msg.in").last).to_contain_text(label)
    page.screenshot(path=str(tmp_path / "simulator-telegram.png"), full_page=True)

    # Each channel keeps its own worker and history.
    page.get_by_text("SMS (basic phone)").click()
    expect(page.locator("#address")).to_have_text(sms_address)
    expect(page.locator("#conversation .msg.out").first).to_contain_text("Welcome", timeout=REPLY_TIMEOUT_MS)
    page.reload()
    expect(page.locator("#address")).to_have_text(sms_address)


def test_message_text_is_not_html(page):
    page.goto("/simulator")
    page.get_by_text("Telegram", exact=True).click()
    before = page.locator("#address").inner_text()
    page.get_by_role("button", name="New worker").click()
    expect(page.locator("#address")).not_to_have_text(before)
    payload = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    _send(page, payload)
    expect(page.locator("#conversation .msg.in").first).to_contain_text(payload, timeout=REPLY_TIMEOUT_MS)
    expect(page.locator("#conversation .msg.out").first).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(page.locator("#conversation img")).to_have_count(0)
    expect(page.locator("#conversation b")).to_have_count(0)
    assert page.evaluate("window.pwned") is None


@pytest.mark.parametrize(
    "text, encoding, segments",
    [
        ("", "GSM-7", 1),
        ("hello", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),
        ("€" * 81, "GSM-7", 2),
        ("{}[]~|^\\", "GSM-7", 1),
        ("Ça coûte", "UCS-2", 1),
        ("á" * 70, "UCS-2", 1),
        ("á" * 71, "UCS-2", 2),
        ("😀" * 35, "UCS-2", 1),
        ("😀" * 36, "UCS-2", 2),
        ("မြန်မာ" * 12, "UCS-2", 2),
    ],
)
def test_sms_cost_estimate(page, text, encoding, segments):
    page.goto("/simulator")
    cost = page.evaluate("text => window.HelplineSimulator.smsCost(text)", text)
    assert (cost["encoding"], cost["segments"]) == (encoding, segments)
    assert cost["characters"] == len(text)
    expected = sms.segment_info(text)
    assert cost["units"] == expected.units
    assert cost["encoding"] == expected.encoding


def test_connection_lost_notice_and_recovery(page):
    def refuse(route):
        route.abort("connectionrefused")

    page.route("**/simulator/api/messages*", refuse)
    page.goto("/simulator")
    notice = page.locator("#notice")
    expect(notice).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(notice).to_contain_text("Connection lost, retrying")
    page.unroute("**/simulator/api/messages*", refuse)
    expect(notice).to_be_hidden(timeout=REPLY_TIMEOUT_MS)
    # Still working after the outage; and the channel toggle works from the keyboard.
    page.get_by_label("SMS (basic phone)").check()
    page.get_by_label("SMS (basic phone)").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_label("Telegram", exact=True)).to_be_checked()
    expect(page.get_by_label("Client language (optional)")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_label("SMS (basic phone)")).to_be_checked()
    expect(page.get_by_label("Client language (optional)")).to_be_hidden()
    page.get_by_role("button", name="New worker").click()
    _send(page, "hi")
    expect(page.locator("#conversation .msg.out").first).to_contain_text("Welcome", timeout=REPLY_TIMEOUT_MS)
