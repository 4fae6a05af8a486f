"""What the test modules share: provider-shaped requests (signed Twilio webhooks, Telegram updates), a worker on
the simulator, `helpline serve` as a real process, waiting for something to happen, and the complaint walk.
Fixtures live in tests/conftest.py, the provider fakes in tests/fakes.py; no test module imports another."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import aiohttp
from twilio.request_validator import RequestValidator

from bot.config import Config
from tests.fakes import FakeTwilio

TOKEN = "12345678901234567890123456789012"
ACCOUNT = "AC" + "0" * 32
PUBLIC = "https://helpline.example.org"
SECRET = "s3cret-token_value"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
STAFF_CHAT = -1009990001
ONCALL = "+6590000001"
REFERENCE = re.compile(r"\b([0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4})\b")


# The app's injected clock and randomness, and the database as staff tools see it ---------------------------


class FakeClock:
    """A clock that only moves when the test says so."""

    def __init__(self) -> None:
        # Starts at the real time, so that commands run beside the bot (which use the real clock) agree.
        self.moment = datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class SeededRandomness:
    def __init__(self, seed: int = 7) -> None:
        self.random = random.Random(seed)

    def choice(self, alphabet: str) -> str:
        return self.random.choice(alphabet)


def unsealed(config: Config, sql: str, params=()) -> list:
    """Rows of a query with every sealed value opened, as staff tools would see them (values are encrypted
    on disk)."""
    from bot.security import PREFIX, sealer_for

    sealer = sealer_for(config)
    with sqlite3.connect(config.storage.database) as db:
        rows = db.execute(sql, params).fetchall()
    return [tuple(sealer.unseal(v) if isinstance(v, str) and v.startswith(PREFIX) else v for v in row)
            for row in rows]


# Waiting ----------------------------------------------------------------------------------------------------


async def eventually(condition, timeout: float = 10.0):
    """``condition()``'s first true result, polled every 50 ms; fails the test after about ``timeout`` s."""
    for _ in range(int(timeout / 0.05)):
        if result := condition():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def eventually_awaited(check, timeout: float = 20.0):
    """As `eventually`, for a ``check`` that must be awaited (it asks a running server)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def until(condition, clock: FakeClock, step_seconds: float = 30.0, tries: int = 100) -> None:
    """Let the delivery worker retry: move the injected clock on until ``condition()`` holds."""
    for _ in range(tries):
        if condition():
            return
        clock.advance(seconds=step_seconds)
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


# A worker on the simulator ----------------------------------------------------------------------------------


class Worker:
    """A worker texting the bot through the simulator's HTTP API; ``say`` returns the bot's replies."""

    def __init__(self, client, channel: str = "sms", address: str = "+60123456789", language: str | None = None):
        self.client = client
        self.channel = channel
        self.address = address
        self.language = language
        self.last_id = 0

    async def say(self, text: str, choice: str | None = None, message_id: str | None = None) -> list[dict]:
        payload = {"channel": self.channel, "address": self.address, "text": text}
        if choice is not None:
            payload["choice"] = choice
        if self.language:
            payload["language"] = self.language
        if message_id:
            payload["id"] = message_id
        response = await self.client.post("/simulator/api/send", json=payload)
        assert response.status == 200, await response.text()
        sent = await response.json()
        return await self.replies(expect=sent["replies"])

    async def replies(self, expect: int) -> list[dict]:
        found: list[dict] = []
        while len(found) < expect:
            response = await self.client.get(
                "/simulator/api/messages",
                params={"channel": self.channel, "address": self.address, "after": self.last_id, "wait": 5},
            )
            messages = (await response.json())["messages"]
            assert messages, f"expected {expect} replies, got {len(found)}"
            self.last_id = messages[-1]["id"]
            found += [m for m in messages if m["direction"] == "out"]
        return found

    async def text(self, text: str, **kwargs) -> str:
        """The text of the bot's reply (all pages joined)."""
        return "\n".join(m["text"] for m in await self.say(text, **kwargs))


async def report(worker: Worker, *, anonymous: bool = False, safe_time: str = "3", follow_up: str = "1") -> str:
    """Walk the whole complaint flow; returns the reference the bot gives."""
    return (await report_told(worker, anonymous=anonymous, safe_time=safe_time, follow_up=follow_up))[0]


async def report_told(worker: Worker, *, anonymous: bool = False, safe_time: str = "3",
                      follow_up: str = "1") -> tuple[str, str]:
    """Walk the whole complaint flow; returns the reference and what the bot said when it gave it."""
    await worker.text("hi")
    await worker.text("1")  # English
    assert "few short questions" in await worker.text("2")  # Report a problem
    assert "What happened?" in await worker.text("2" if anonymous else "1")
    assert "Which country" in await worker.text("1 3")  # wages + passport
    assert "What work" in await worker.text("1")  # Malaysia
    assert "employer or agency" in await worker.text("1")  # domestic work
    assert "When did it happen" in await worker.text("Madam Lee, Kuala Lumpur")
    assert "own words" in await worker.text("1")  # still happening
    reply = await worker.text("She keeps my passport and has not paid me for 4 months.")
    if not anonymous:
        assert "safe for us to write" in reply
        reply = await worker.text(safe_time)
        if safe_time != "4":
            assert "May our staff write" in reply
            reply = await worker.text(follow_up)
        assert "partner organisation" in reply
        reply = await worker.text("2")
    assert "statistics" in reply
    confirmation = await worker.text("1")
    return REFERENCE.search(confirmation).group(1), confirmation


# Twilio: signed webhooks ------------------------------------------------------------------------------------

_sids = iter(range(1, 10**6))


def webhook(text: str, sender: str = "+60123456789", sid: str | None = None, **extra) -> dict:
    params = {
        "MessageSid": sid or f"SM{next(_sids):032d}", "SmsSid": "x", "AccountSid": ACCOUNT, "From": sender,
        "To": "+15550006666", "Body": text, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
        "ApiVersion": "2010-04-01", "FromCountry": "MY",
    }
    params.update(extra)
    return params


def signed(params: dict, path: str = "/twilio/sms", token: str = TOKEN) -> dict:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(PUBLIC + path, params)}


async def post(client, params: dict, path: str = "/twilio/sms", headers: dict | None = None):
    return await client.post(path, data=params, headers=signed(params, path) if headers is None else headers)


def sms_to(twilio: FakeTwilio, number: str) -> list[str]:
    return [call["form"]["Body"] for call in twilio.sent() if call["form"]["To"] == number]


# Telegram: updates as the Bot API sends them ----------------------------------------------------------------

update_ids = iter(range(700_000_000, 800_000_000))  # Telegram update and message ids, never repeated
_staff_ids = iter(range(900_000_000, 990_000_000))


def message(text: str, chat: int = 1111111, language: str = "en", **extra) -> dict:
    return {"update_id": next(update_ids), "message": {
        "message_id": next(update_ids), "date": 1767225600, "text": text,
        "chat": {"id": chat, "type": "private", "first_name": "Test"},
        "from": {"id": chat, "is_bot": False, "first_name": "Test", "language_code": language}, **extra}}


def press(value: str, chat: int = 1111111) -> dict:
    return {"update_id": next(update_ids), "callback_query": {
        "id": f"cb{next(update_ids)}", "chat_instance": "42", "data": value,
        "from": {"id": chat, "is_bot": False, "first_name": "Test"},
        "message": {"message_id": 5, "date": 1767225600, "chat": {"id": chat, "type": "private"}, "text": "menu"}}}


async def send(client, update: dict, headers: dict | None = None):
    return await client.post("/telegram/webhook", json=update, headers=HEADERS if headers is None else headers)


# Config for the fakes, and staff: the Telegram group and on-call phones --------------------------------------


def sms_config(config: Config, twilio: FakeTwilio, **storage) -> Config:
    """``config`` with Twilio at the loopback fake (its ``url``) and the public URL Twilio signs; ``storage``
    settings replace the database's."""
    return config.replace(server={"public_url": PUBLIC}, storage=storage or {"database": config.storage.database},
                          twilio={"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15550006666",
                                  "api_base_url": twilio.url})


def helpline_config(config: Config, fakes) -> Config:
    """``config`` with Twilio and Telegram at the loopback ``fakes``, a staff group and an on-call phone."""
    twilio, telegram = fakes
    return config.replace(
        server={"public_url": PUBLIC},
        twilio={"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15550006666", "api_base_url": twilio.url},
        telegram={"token": "123456:TEST-token", "webhook_secret": SECRET, "api_base_url": telegram.url},
        escalation={"telegram_chat_id": STAFF_CHAT, "oncall_numbers": (ONCALL,), "claim_timeout_minutes": 10},
    )


def to_group(telegram) -> list[dict]:
    return [m for m in telegram.sent() if m["chat_id"] == str(STAFF_CHAT)]


def staff_press(data: str, user: int = 42, name: str = "Aye") -> dict:
    return {"update_id": next(_staff_ids), "callback_query": {
        "id": f"cb{next(_staff_ids)}", "chat_instance": "7", "data": data,
        "from": {"id": user, "is_bot": False, "first_name": name},
        "message": {"message_id": 1, "date": 1767225600, "chat": {"id": STAFF_CHAT, "type": "supergroup"},
                    "text": "x"}}}


def staff_reply(text: str, to_message_id: int, user: int = 42, name: str = "Aye") -> dict:
    return {"update_id": next(_staff_ids), "message": {
        "message_id": next(_staff_ids), "date": 1767225600, "text": text,
        "chat": {"id": STAFF_CHAT, "type": "supergroup", "title": "Staff"},
        "from": {"id": user, "is_bot": False, "first_name": name},
        "reply_to_message": {"message_id": to_message_id, "date": 1767225600,
                             "chat": {"id": STAFF_CHAT, "type": "supergroup"}, "text": "alert"}}}


async def to_telegram(client, update):
    response = await client.post("/telegram/webhook", json=update, headers=HEADERS)
    assert response.status == 200


def case_reference(alert: dict) -> str:
    """The case reference a staff alert names."""
    return re.search(r"case ([0-9A-Z]{4}-[0-9A-Z]{4})", alert["text"]).group(1)


# `helpline serve` as a process ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def start_serve(folder, port: int, twilio_url: str | None, *options: str, telegram_url: str | None = None,
                telegram_token: str = "123456:TEST-token", env: dict[str, str] | None = None,
                stderr=subprocess.PIPE) -> subprocess.Popen:
    """`python -m bot serve` on ``port`` with ``folder/helpline.toml`` written for it (database ``folder/h.db``;
    Twilio and Telegram at these URLs, a channel left out when None). The developer's HELPLINE_* variables are
    not passed on; ``env`` adds settings. ``stderr``: a pipe, or a file when serve may write a lot."""
    config = folder / "helpline.toml"
    text = f'[server]\nport = {port}\npublic_url = "{PUBLIC}"\n[storage]\ndatabase = "{folder / "h.db"}"\n'
    if twilio_url is not None:
        text += (f'[twilio]\naccount_sid = "{ACCOUNT}"\nauth_token = "{TOKEN}"\nfrom_number = "+15550006666"\n'
                 f'api_base_url = "{twilio_url}"\n')
    if telegram_url is not None:
        text += (f'[telegram]\ntoken = "{telegram_token}"\nwebhook_secret = "{SECRET}"\n'
                 f'api_base_url = "{telegram_url}"\n')
    config.write_text(text)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(config), *options], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr, cwd=folder)


@contextlib.asynccontextmanager
async def serving_in(folder, *options: str, env: dict[str, str] | None = None):
    """`helpline serve` in ``folder`` with Twilio at a loopback fake, once healthy: (process, session, base,
    twilio). ``env``: HELPLINE_* settings beyond the config file. The process is killed at the end if it still
    runs."""
    twilio = FakeTwilio()
    url = await twilio.start()
    port = free_port()
    process = start_serve(folder, port, url, *options, env=env)
    session = aiohttp.ClientSession()
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(session, base)
        yield process, session, base, twilio
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        await session.close()
        await twilio.close()


async def wait_healthy(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(200):
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("serve did not start")


async def send_sms(session, base, params) -> int:
    """The webhook as Twilio sends it (Twilio signs the public URL, which the proxy maps to us)."""
    headers = signed(params, "/twilio/sms")
    try:
        async with session.post(f"{base}/twilio/sms", data=params, headers=headers) as response:
            return response.status
    except aiohttp.ClientError:
        return 0  # the connection died with the server: not acknowledged, Twilio would retry
