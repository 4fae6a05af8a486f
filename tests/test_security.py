"""Privacy and security: encryption at rest, keys, DELETE, PIN, discretion, limits, retention, logs."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.app import create_app
from bot.cli import main
from bot.security import CryptoSealer, DataKeyError, key_file_path, new_key, parse_key
from bot.store.sqlite import KeyMismatch, Store
from tests.fakes import FakeTwilio
from tests.helpers import ACCOUNT, PUBLIC, TOKEN, SeededRandomness, Worker, post, report, unsealed, webhook

PHONE = "+60123987654"
SECRET_WORDS = "Madam Lee keeps my passport"


async def test_database_and_wal_hold_no_plaintext_phone_name_or_words(aiohttp_client, config, clock):
    twilio = FakeTwilio()
    url = await twilio.start()
    config = config.replace(server={"public_url": PUBLIC, "simulator": True}, twilio={
        "account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15550006666", "api_base_url": url})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    for text in ["hi", "1", "2", "1", "3", "1", "1", "Madam Lee Agency", "1", SECRET_WORDS, "1", "1", "1", "1"]:
        assert (await post(client, webhook(text, sender=PHONE))).status == 200
    await twilio.wait_for(14)
    telegram_worker = Worker(client, channel="telegram", address="777123456")
    await telegram_worker.say("Aung here, they took my phone")
    files = [Path(config.storage.database), Path(config.storage.database + "-wal")]
    assert files[1].exists() and files[1].stat().st_size > 0, "the WAL is checked while the bot runs"
    raw = b"".join(path.read_bytes() for path in files)
    for secret in [PHONE, PHONE[1:], "123987654", SECRET_WORDS, "Madam Lee", "777123456", "they took my phone"]:
        assert secret.encode() not in raw, secret
    # ...and the bot itself still reads everything back.
    [(details,)] = unsealed(config, "SELECT details FROM cases WHERE kind = 'complaint'")
    assert SECRET_WORDS in details and "Madam Lee Agency" in details
    await twilio.close()


def test_serve_makes_a_key_file_readable_only_by_its_owner_and_says_so(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nport = 1\n[storage]\ndatabase = "{tmp_path / "h.db"}"\n'
                      '[content]\nflows = "/nonexistent"\n')  # stops right after the key, before listening
    result = subprocess.run([sys.executable, "-m", "bot", "serve", "--config", str(config)], capture_output=True,
                            text=True, timeout=60, env={k: v for k, v in os.environ.items()
                                                        if not k.startswith("HELPLINE_")})
    key = tmp_path / "h.db.key"
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"a new one was made in {key}" in result.stderr
    assert len(parse_key(key.read_text(), "test")) == 32


async def test_rotate_key_reencrypts_everything_and_the_conversation_goes_on(aiohttp_client, config, clock):
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    worker = Worker(client)
    reference = await report(worker)
    await client.close()
    old_key = key_file_path(config).read_text()
    result = CliRunner().invoke(main, ["rotate-key"], env={"HELPLINE_STORAGE_DATABASE": config.storage.database})
    assert result.exit_code == 0, result.output
    assert "re-encrypted" in result.output
    new = key_file_path(config).read_text()
    assert new != old_key and stat.S_IMODE(key_file_path(config).stat().st_mode) == 0o600
    old = CryptoSealer(parse_key(old_key, "old"))
    with pytest.raises(KeyMismatch):  # the database names its new key (fingerprint), so the old is refused
        Store(config.storage.database, old)
    with sqlite3.connect(config.storage.database) as db:
        [(details,)] = db.execute("SELECT details FROM cases WHERE reference = ?", [reference]).fetchall()
    with pytest.raises(DataKeyError):
        old.unseal(details)  # and the values themselves are sealed with the new key
    again = Worker(await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness(5))))
    again.last_id = worker.last_id
    assert "waiting for a staff member" in await again.text(f"STATUS {reference}")


def test_a_wrong_key_is_a_clear_error(config, tmp_path):
    store = Store(config.storage.database, CryptoSealer(parse_key(new_key(), "a")))
    store.contact("sms", PHONE, datetime.now(UTC))
    store.close()
    other = CryptoSealer(parse_key(new_key(), "b"))
    with pytest.raises(KeyMismatch, match="fingerprint"):  # refused at open, before anything is written
        Store(config.storage.database, other)
    with sqlite3.connect(config.storage.database) as db:
        row = db.execute("SELECT address FROM contacts").fetchone()[0]
    with pytest.raises(DataKeyError, match="wrong key"):
        other.unseal(row)


async def test_delete_after_one_confirmation_erases_and_tells_staff_of_an_open_case(client, worker, config):
    reference = await report(worker)
    reply = await worker.text("DELETE")
    assert "Delete now?" in reply and "1. Yes, delete my data" in reply
    assert "Nothing was deleted" in await worker.text("2")
    await worker.text("DELETE")
    response = await client.post("/simulator/api/send", json={"channel": "sms", "address": worker.address,
                                                              "text": "1"})
    assert (await response.json())["replies"] == 1  # "Your data has been deleted": its own trace goes with it
    for _ in range(50):
        if not unsealed(config, "SELECT id FROM contacts WHERE role = 'worker'"):
            break
        await asyncio.sleep(0.05)
    assert unsealed(config, "SELECT id FROM contacts WHERE role = 'worker'") == []
    assert unsealed(config, "SELECT COUNT(*) FROM messages") == [(0,)]
    [(details, country, category, contact_id)] = unsealed(
        config, "SELECT details, country, category, contact_id FROM cases WHERE reference = ?", (reference,))
    assert details == "{}" and country == "MY" and category == "wages" and contact_id is None


@pytest.mark.parametrize("yes", ["YES", "yes", "ok", "1"])
async def test_delete_is_confirmed_by_any_yes_and_the_last_message_says_it_is_done(client, yes):
    worker = Worker(client, address="+60111000777")
    await worker.text("hi")
    await worker.text("1")
    assert "Delete now?" in await worker.text("DELETE")

    assert await worker.text(yes) == "Your data has been deleted. You can write to us again at any time."


async def test_delete_is_confirmed_by_yes_in_the_workers_language(client):
    worker = Worker(client, address="+60111000778")
    await worker.text("hi")
    await worker.text("3")  # Bahasa Indonesia
    await worker.text("DELETE")

    farewell = await worker.text("ya")

    assert "Nothing was deleted" not in farewell and farewell == await translated("id", "Your data has been deleted. "
                                                                                      "You can write to us again at "
                                                                                      "any time.")


async def translated(language: str, msgid: str) -> str:
    from bot.config import load_config
    from bot.content import content_paths
    from bot.i18n import Catalogs

    return Catalogs(content_paths(load_config(None, environ={}))[1]).gettext(language, msgid)


async def test_a_pin_protects_status(worker):
    reference = await report(worker)
    assert "PIN is set" in await worker.text("PIN 2580")
    assert "your PIN" in await worker.text(f"STATUS {reference}")
    assert "waiting for a staff member" in await worker.text(f"STATUS {reference} 2580")
    assert "4 to 8 digits" in await worker.text("PIN 1111 2222")  # the old PIN is needed to change it
    assert "removed" in await worker.text("PIN 2580 OFF")
    assert "waiting for a staff member" in await worker.text(f"STATUS {reference}")


async def test_flooding_is_stored_answered_once_politely_and_danger_still_goes_through(aiohttp_client, config,
                                                                                     clock):
    config = config.replace(security={"messages_per_minute": 5})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    worker = Worker(client, address="+60111000999")
    for _ in range(5):
        await worker.say("hello")
    assert "many messages" in await worker.text("hello")
    response = await client.post("/simulator/api/send", json={"channel": "sms", "address": worker.address,
                                                              "text": "hello again"})
    assert (await response.json()) == {"stored": True, "replies": 0}
    assert "no one can answer here right now" in await worker.text("SOS help they beat me")  # no staff set
    assert unsealed(config, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == [(8,)]
    clock.advance(minutes=2)
    assert await worker.text("menu")


async def test_the_flood_limit_counts_typed_messages_not_pages_asked_for_or_buttons_pressed(aiohttp_client, config,
                                                                                            clock):
    config = config.replace(security={"messages_per_minute": 1}, sms={"segment_budget": 1})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    reader, tapper = Worker(client, address="+60111000998"), Worker(client, channel="telegram", address="777")
    pages = [await reader.text("hi")]
    while "0" in pages[-1] and len(pages) < 8:  # "Reply 0 for more", in whatever words
        pages.append(await reader.text("0"))
    taps = [await tapper.text("/start")] + [await tapper.text("1", choice="1") for _ in range(4)]

    assert len(pages) >= 2 and "Indonesia" in pages[-1]
    assert not any("many messages" in reply for reply in pages + taps)
    assert "many messages" in await reader.text("hello")  # typed: counted


async def test_retention_reduces_old_finished_cases_to_statistics(worker, config, clock):
    reference = await report(worker)
    result = CliRunner().invoke(main, ["cases", "set-status", reference, "resolved"],
                                env={"HELPLINE_STORAGE_DATABASE": config.storage.database})
    assert result.exit_code == 0
    store = Store(config.storage.database, __import__("bot.security").security.sealer_for(config))
    future = datetime.now(UTC) + timedelta(days=400)
    assert store.purge(future - timedelta(days=365), dry_run=True)["cases"] == 1
    assert store.case(reference) is not None, "a dry run deletes nothing"
    counts = store.purge(future - timedelta(days=365))
    assert counts["cases"] == 1 and counts["contacts"] == 1
    assert store.case(reference) is None and store.reference_taken(reference)
    [row] = store.statistics()
    assert (row["kind"], row["category"], row["country"], row["cases"]) == ("complaint", "wages", "MY", 1)


async def test_no_personal_data_in_logs_at_any_level(aiohttp_client, config, clock, caplog):
    caplog.set_level(logging.DEBUG)
    twilio = FakeTwilio()
    url = await twilio.start()
    twilio.fail_next = [(500, {"code": 20500, "message": "boom"}, {})]
    config = config.replace(server={"public_url": PUBLIC, "simulator": True}, twilio={
        "account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15550006666", "api_base_url": url})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    for text in ["hi", "1", SECRET_WORDS]:
        await post(client, webhook(text, sender=PHONE))
    clock.advance(minutes=5)
    await twilio.wait_for(3, timeout=20)
    await post(client, webhook("x", sender=PHONE), headers={})  # refused: logged without its contents
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "the bot logged something"
    for secret in [PHONE, "123987654", SECRET_WORDS, "Welcome to the migrant"]:
        assert secret not in logged, secret
    await twilio.close()


async def test_refused_requests_from_one_address_are_limited(client):
    for _ in range(30):
        response = await client.post("/telegram/webhook", data=b"{}")
        assert response.status in (404, 401, 403)
    statuses = set()
    for _ in range(35):
        response = await client.post("/twilio/sms", data={"From": "x"})
        statuses.add(response.status)
    assert 404 in statuses or 429 in statuses
