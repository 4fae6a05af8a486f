"""Nothing lost: `kill -9` in the middle of a burst, a provider outage, then recovery."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time

import aiohttp
import pytest

from tests.fakes import FakeTelegram, FakeTwilio
from tests.helpers import (
    ACCOUNT,
    PUBLIC,
    TOKEN,
    SeededRandomness,
    eventually,
    free_port,
    helpline_config,
    message,
    post,
    send,
    send_sms,
    serving_in,
    sms_to,
    start_serve,
    to_group,
    wait_healthy,
    webhook,
)

BURST = 60


@pytest.mark.timeout(180)
async def test_kill_9_in_a_burst_loses_no_acknowledged_message(tmp_path):
    twilio = FakeTwilio()
    url = await twilio.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_serve(tmp_path, port, url)
    messages = [webhook(text, sender=f"+6019{n % 12:07d}", sid=f"SM{n:032d}")
                for n, text in enumerate(["hi", "1", "2", "1", "1 3", "1", "1", "boss", "1", "not paid"] * 6)]
    acked: set[str] = set()
    async with aiohttp.ClientSession() as session:
        await wait_healthy(session, base)

        async def one(params):
            if await send_sms(session, base, params) == 200:
                acked.add(params["MessageSid"])

        tasks = []
        for index, params in enumerate(messages):
            tasks.append(asyncio.create_task(one(params)))
            await asyncio.sleep(0.005)
            if index == BURST // 2:
                process.send_signal(signal.SIGKILL)  # mid-burst, no goodbye
        await asyncio.gather(*tasks)
        process.wait(timeout=10)
        sent_before_restart = len(twilio.sent())
        # Twilio retries what was not acknowledged; the same MessageSid is taken once.
        process = start_serve(tmp_path, port, url)
        await wait_healthy(session, base)
        for params in messages:
            if params["MessageSid"] not in acked:
                assert await send_sms(session, base, params) == 200
        for params in messages[:10]:  # and some retries of messages that were acknowledged
            assert await send_sms(session, base, params) == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sqlite3.connect(tmp_path / "h.db") as db:
                backlog = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            if backlog == 0:
                break
            await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    await twilio.close()
    print(f"acked before kill {len(acked)} of {len(messages)}, sent before restart {sent_before_restart}, "
          f"sent in all {len(twilio.sent())}")
    assert len(acked) < len(messages), "the kill interrupted the burst"
    with sqlite3.connect(tmp_path / "h.db") as db:
        stored = {row[0] for row in db.execute("SELECT provider_id FROM messages WHERE direction = 'in'")}
        sent_rows = db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND status = 'sent'"
                               ).fetchone()[0]
        per_worker = db.execute(
            "SELECT contact_id, SUM(direction = 'in'), SUM(direction = 'out') FROM messages GROUP BY contact_id"
        ).fetchall()
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert acked <= stored, "every message acknowledged with a 2xx is stored"
    assert {m["MessageSid"] for m in messages} == stored, "and, with Twilio's retries, every message"
    assert all(outs >= ins for _, ins, outs in per_worker), "every message was answered"
    # A reply is recorded as sent only after Twilio accepted it, and the ones in flight at the kill were looked
    # up at Twilio before going again: each reply went exactly once (tests/test_exactly_once.py).
    assert len(twilio.sent()) == sent_rows


async def test_provider_outage_then_back_delivers_everything_in_order_and_staff_hear_of_the_delay(
        aiohttp_client, config, clock):
    from bot.app import create_app
    from bot.keys import BOT

    twilio, telegram = FakeTwilio(), FakeTelegram()
    fakes = (twilio, telegram)
    twilio.url, telegram.url = await twilio.start(), await telegram.start()
    client = await aiohttp_client(create_app(helpline_config(config, fakes), clock=clock,
                                             randomness=SeededRandomness()))
    worker = "+60177000111"
    twilio.fail_next = [(500, {"code": 20500, "message": "down"}, {})] * 1000  # Twilio is down
    for text in ["SOS", "please come", "I am in the back room"]:
        assert (await post(client, webhook(text, sender=worker))).status == 200
    await eventually(lambda: to_group(telegram))
    health = await (await client.get("/healthz")).json()
    assert health["outbox_backlog"] >= 2
    assert "helpline_outbox_backlog 0.0" not in await (await client.get("/metrics")).text()
    clock.advance(minutes=2)
    await client.app[BOT].escalations.check()
    assert await eventually(lambda: any("have waited over 1 minute" in m["text"] for m in to_group(telegram)))
    twilio.fail_next.clear()  # Twilio is back
    for _ in range(100):
        if len(sms_to(twilio, worker)) == 3:
            break
        clock.advance(minutes=10)  # (meanwhile the unclaimed case is escalated again: on-call pages)
        await asyncio.sleep(0.05)
    bodies = sms_to(twilio, worker)
    assert "Our staff have been alerted" in bodies[0]
    assert len(bodies) == 3 and all("passed your message on" in body for body in bodies[1:])
    await twilio.close()
    await telegram.close()


async def test_a_stalled_telegram_never_holds_up_sms_replies(aiohttp_client, config, clock):
    from bot.app import create_app
    from bot.outbox import WINDOW

    twilio, telegram = FakeTwilio(), FakeTelegram(stalled=asyncio.Event())
    twilio.url, telegram.url = await twilio.start(), await telegram.start()
    client = await aiohttp_client(create_app(helpline_config(config, (twilio, telegram)), clock=clock,
                                             randomness=SeededRandomness()))
    for chat in range(WINDOW + 6):  # more Telegram replies than may be in flight, all hanging
        assert (await send(client, message("/start", chat=5_000_000 + chat))).status == 200
    await eventually(lambda: len(telegram.called("sendMessage")) >= WINDOW)
    assert (await post(client, webhook("hello", sender="+60177000222"))).status == 200
    assert "Welcome" in (await eventually(lambda: sms_to(twilio, "+60177000222")))[0]
    assert len(telegram.called("sendMessage")) == WINDOW  # and Telegram's window stayed within bounds
    telegram.stalled.set()
    await eventually(lambda: len(telegram.sent()) == WINDOW + 6, timeout=20)
    await twilio.close()
    await telegram.close()


async def test_a_full_disk_is_a_503_never_a_200_for_a_message_not_stored(aiohttp_client, config, clock, small_disk):
    from bot.app import create_app

    twilio = FakeTwilio()
    url = await twilio.start()
    config = config.replace(storage={"database": str(small_disk / "h.db")}, server={"public_url": PUBLIC},
                            twilio={"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15550006666",
                                    "api_base_url": url})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    answered = {}
    for n in range(200):
        params = webhook(f"{n} " + "x" * 50_000, sender=f"+6015{n:07d}", sid=f"SM{n:032d}")
        status = (await post(client, params)).status
        answered[params["MessageSid"]] = status
        if status == 503:
            break
    assert 503 in answered.values(), "the disk filled up"
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    with sqlite3.connect(config.storage.database) as db:
        stored = {row[0] for row in db.execute("SELECT provider_id FROM messages WHERE direction = 'in'")}
    assert {sid for sid, status in answered.items() if status == 200} == stored
    # With room again, Twilio's retry of the refused message is stored and answered.
    refused = next(sid for sid, status in answered.items() if status == 503)
    n = int(refused[2:])
    assert (await post(client, webhook(f"{n} retry", sender=f"+6015{n:07d}", sid=refused))).status == 200
    await twilio.close()


async def test_through_the_front_process_too_a_message_not_stored_is_a_503(small_disk):
    """Under `helpline serve` the front answers Twilio: it must say 503 when the server could not store."""
    answered = {}
    async with serving_in(small_disk) as (process, session, base, _twilio):
        for n in range(200):
            params = webhook(f"{n} " + "x" * 50_000, sender=f"+6016{n:07d}", sid=f"SM{n:032d}")
            answered[params["MessageSid"]] = status = await send_sms(session, base, params)
            if status == 503:
                break
        assert 503 in answered.values(), "the disk filled up"
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        refused = next(sid for sid, status in answered.items() if status == 503)
        n = int(refused[2:])
        assert await send_sms(session, base, webhook(f"{n} retry", sender=f"+6016{n:07d}", sid=refused)) == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    with sqlite3.connect(small_disk / "h.db") as db:
        stored = {row[0] for row in db.execute("SELECT provider_id FROM messages WHERE direction = 'in'")}
    assert stored == {sid for sid, status in answered.items() if status == 200} | {refused}


