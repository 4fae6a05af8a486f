"""One provider down stops nothing else: `helpline serve` starts and serves the other channel, shows the failing one
in /healthz and /metrics, says so once in its log, sets it up when it works again; and /healthz turns 503 when the
outbox stops moving."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3

import aiohttp
import pytest

from bot.app import create_app
from bot.security import CryptoSealer
from tests import helpers
from tests.fakes import FakeTelegram, FakeTwilio, twilio_error
from tests.helpers import (
    HEADERS,
    PUBLIC,
    SECRET,
    SeededRandomness,
    eventually,
    eventually_awaited,
    free_port,
    message,
    post,
    send_sms,
    start_serve,
    unsealed,
    wait_healthy,
    webhook,
)

BOT_TOKEN = "123456:TEST-token-never-shown"


@contextlib.asynccontextmanager
async def serving(folder, twilio_url: str, telegram_url: str):
    """`helpline serve` with Twilio and Telegram at these URLs, once it answers /healthz: (process, session, base).
    Its log goes to ``folder/stderr.log``."""
    port = free_port()
    with open(folder / "stderr.log", "w") as log:
        process = start_serve(folder, port, twilio_url, telegram_url=telegram_url, telegram_token=BOT_TOKEN,
                              stderr=log)
    session = aiohttp.ClientSession()
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(session, base)
        yield process, session, base
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        await session.close()


async def health(session: aiohttp.ClientSession, base: str) -> tuple[int, dict]:
    async with session.get(f"{base}/healthz") as response:
        return response.status, await response.json()


def channel_is(session, base: str, name: str, state: str):
    async def check() -> dict | None:
        status, body = await health(session, base)
        return body if status == 200 and body["channels"][name]["state"] == state else None
    return check


async def metrics(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as response:
        return await response.text()


async def send_update(session: aiohttp.ClientSession, base: str, update: dict) -> int:
    async with session.post(f"{base}/telegram/webhook", json=update, headers=HEADERS) as response:
        return response.status


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", ["token-rejected", "nothing-listening"])
async def test_serve_goes_on_without_telegram_and_sets_it_up_once_it_works(tmp_path, fault):
    twilio = FakeTwilio()
    twilio_url = await twilio.start()
    telegram = FakeTelegram(rejects_token=True)
    telegram_port = free_port()
    if fault == "token-rejected":  # getMe answers 401
        await telegram.start(port=telegram_port)
    async with serving(tmp_path, twilio_url, f"http://127.0.0.1:{telegram_port}") as (process, session, base):
        shown = await eventually_awaited(channel_is(session, base, "telegram", "failing"))
        assert shown["ok"] is True and shown["database"] == "ok" and "outbox_backlog" in shown
        reason = shown["channels"]["telegram"]["reason"]
        assert reason == ("Telegram rejected the token" if fault == "token-rejected"
                          else "cannot reach the Telegram Bot API")
        assert 'helpline_channel_up{channel="telegram"} 0.0' in await metrics(session, base)

        # SMS goes on: the webhook is answered and its reply reaches Twilio.
        assert await send_sms(session, base, webhook("hi", sender="+60190000111")) == 200
        [reply] = await twilio.wait_for(1)
        assert reply["form"]["To"] == "+60190000111" and "Welcome" in reply["form"]["Body"]
        await eventually_awaited(channel_is(session, base, "sms", "ok"))
        assert 'helpline_channel_up{channel="sms"} 1.0' in await metrics(session, base)
        # A Telegram worker writes meanwhile: the update is taken, and the reply waits for Telegram.
        assert await send_update(session, base, message("hi", chat=3333333)) == 200
        await asyncio.sleep(1)
        assert telegram.sent() == []
        assert not telegram.called("setWebhook")

        # Telegram works again: the webhook is set, the reply that waited goes, and /healthz says so.
        telegram.rejects_token = False
        if fault == "nothing-listening":
            await telegram.start(port=telegram_port)
        await eventually_awaited(channel_is(session, base, "telegram", "ok"), timeout=90)
        [webhook_set] = telegram.called("setWebhook")
        assert webhook_set["url"] == f"{PUBLIC}/telegram/webhook" and webhook_set["secret_token"] == SECRET
        [answer] = await telegram.wait_for(1)
        assert answer["chat_id"] == "3333333" and "Welcome" in answer["text"]
        assert 'helpline_channel_up{channel="telegram"} 1.0' in await metrics(session, base)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    await twilio.close()
    await telegram.close()

    log = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in log
    assert BOT_TOKEN not in log and BOT_TOKEN.split(":")[1] not in log
    [failing] = [line for line in log.splitlines() if "telegram" in line and " ERROR " in line]
    assert "telegram is failing" in failing and "Check" in failing
    assert ("[telegram] token" if fault == "token-rejected" else "[telegram] api_base_url") in failing
    assert len([line for line in log.splitlines() if "telegram works again" in line]) == 1
    with sqlite3.connect(tmp_path / "h.db") as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE status = 'failed'").fetchone()[0] == 0


@pytest.mark.timeout(120)
async def test_serve_with_twilio_unreachable_shows_sms_failing_while_telegram_delivers(tmp_path):
    telegram = FakeTelegram()
    telegram_url = await telegram.start()
    async with serving(tmp_path, f"http://127.0.0.1:{free_port()}", telegram_url) as (process, session, base):
        shown = await eventually_awaited(channel_is(session, base, "sms", "failing"))
        assert shown["channels"]["sms"]["reason"] == "cannot reach Twilio"
        assert 'helpline_channel_up{channel="sms"} 0.0' in await metrics(session, base)
        await eventually_awaited(channel_is(session, base, "telegram", "ok"))
        assert await send_sms(session, base, webhook("hi", sender="+60190000222")) == 200  # stored, reply waits
        assert await send_update(session, base, message("hi", chat=4444444)) == 200
        [answer] = await telegram.wait_for(1)
        assert answer["chat_id"] == "4444444" and "Welcome" in answer["text"]
        status, shown = await health(session, base)
        assert status == 200 and shown["outbox_backlog"] >= 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    await telegram.close()
    log = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in log
    [failing] = [line for line in log.splitlines() if "sms is failing" in line]
    assert "[twilio] api_base_url" in failing


# The outbox stops moving: /healthz turns 503 after a minute (the app's clock is the test's). -----------------


@pytest.fixture
def sms_config(config, twilio):
    return helpers.sms_config(config, twilio)


async def healthz(client) -> tuple[int, dict]:
    response = await client.get("/healthz")
    return response.status, await response.json()


async def test_a_reply_that_is_never_delivered_makes_healthz_503_after_a_minute(aiohttp_client, sms_config, clock,
                                                                               twilio):
    twilio.hold = asyncio.Event()  # Twilio takes the request and never answers (nor does the send time out)
    client = await aiohttp_client(create_app(sms_config, clock=clock, randomness=SeededRandomness()))
    assert (await post(client, webhook("hi"))).status == 200
    await eventually(lambda: twilio.calls)
    clock.advance(seconds=59)
    status, shown = await healthz(client)
    assert status == 200 and shown["ok"] and shown["outbox"] == {"state": "ok"}
    clock.advance(seconds=2)
    status, shown = await healthz(client)
    assert status == 503 and shown["ok"] is False and shown["database"] == "ok" and shown["outbox_backlog"] == 1
    assert shown["outbox"]["state"] == "stuck" and "nothing was delivered on sms" in shown["outbox"]["reason"]
    assert shown["channels"]["sms"]["state"] == "ok"
    twilio.hold.set()  # it answers: the reply is delivered, the outbox moves again
    await twilio.wait_for(1)
    await eventually(lambda: unsealed(sms_config, "SELECT COUNT(*) FROM outbox")[0][0] == 0)
    assert (await client.get("/healthz")).status == 200


async def test_an_outbox_that_cannot_be_read_makes_healthz_503_after_a_minute(aiohttp_client, sms_config, clock,
                                                                             twilio):
    twilio.fail_next = [twilio_error(500, 20500, "Internal")]  # the reply waits for a retry
    client = await aiohttp_client(create_app(sms_config, clock=clock, randomness=SeededRandomness()))
    assert (await post(client, webhook("hi"))).status == 200
    await eventually(lambda: twilio.calls)
    # Its body sealed with another key, as after a restore that mixed up files: it cannot be read.
    with sqlite3.connect(sms_config.storage.database) as db:
        db.execute("UPDATE messages SET body = ? WHERE id = (SELECT message_id FROM outbox)",
                   [CryptoSealer(os.urandom(32)).seal('{"text": "hello"}')])
    clock.advance(seconds=30)  # due again: each read of the outbox fails from now on
    await asyncio.sleep(1.5)
    assert (await client.get("/healthz")).status == 200
    clock.advance(seconds=61)
    await asyncio.sleep(1.5)
    status, shown = await healthz(client)
    assert status == 503 and shown["ok"] is False
    assert shown["outbox"]["reason"].startswith("the outbox could not be read for ")


async def test_twilio_failing_sends_show_in_health_and_the_replies_wait_rather_than_fail(aiohttp_client, sms_config,
                                                                                       clock, twilio, caplog):
    twilio.fail_next = [twilio_error(503, 20503, "Service Unavailable"), twilio_error(500, 20500, "Internal"),
                        twilio_error(401, 20003, "Authenticate")]
    client = await aiohttp_client(create_app(sms_config, clock=clock, randomness=SeededRandomness()))
    assert (await post(client, webhook("hi", sender="+60190000333"))).status == 200
    for tries in (1, 2, 3):
        if tries > 1:
            assert (await healthz(client))[1]["channels"]["sms"]["state"] == "ok"  # a failure or two: not yet
            clock.advance(seconds=30)
        await eventually(lambda n=tries: len(twilio.calls) == n)
        await eventually(lambda n=tries: unsealed(sms_config, "SELECT attempts FROM outbox") == [(n,)])  # retry written
    shown = (await healthz(client))[1]
    assert shown["channels"]["sms"] == {"state": "failing", "since": shown["channels"]["sms"]["since"],
                                        "reason": "Twilio refused the account SID or auth token"}
    assert 'helpline_channel_up{channel="sms"} 0.0' in await (await client.get("/metrics")).text()
    clock.advance(seconds=30)
    [reply] = await twilio.wait_for(1)  # a 401 is about the account, not the message: it was tried again
    assert reply["form"]["To"] == "+60190000333"
    await eventually(lambda: unsealed(sms_config, "SELECT COUNT(*) FROM outbox")[0][0] == 0)
    assert (await healthz(client))[1]["channels"]["sms"]["state"] == "ok"
    assert unsealed(sms_config, "SELECT COUNT(*) FROM messages WHERE status = 'failed'")[0][0] == 0
    assert twilio.account_fetches == 1
    said = [record.getMessage() for record in caplog.records if record.name == "bot.health"]
    [failing] = [line for line in said if "sms is failing" in line]
    assert "3 sends in a row failed" in failing and "[twilio] account_sid, auth_token" in failing
    assert len([line for line in said if "sms works again" in line]) == 1
