"""Exactly once to the worker: a send whose outcome is unknown (a crash, a lost answer, a front that died) is
looked up in Twilio's Messages list before it is sent again, and a reply Twilio took whose "sent" mark cannot be
written (a full disk) is never sent again."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.app import create_app
from bot.outbox import LOOKUP_GIVE_UP, SETTLE_SECONDS
from tests.fakes import FakeTwilio
from tests.helpers import (
    ACCOUNT,
    SeededRandomness,
    eventually,
    free_port,
    post,
    send_sms,
    sms_config,
    sms_to,
    start_serve,
    wait_healthy,
    webhook,
)

FROM = "+15550006666"


@pytest.fixture
async def twilio(clock):
    fake = FakeTwilio(now=clock.now)  # Twilio's clock is ours unless a test says otherwise
    fake.url = await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def sms(aiohttp_client, config, clock, twilio):
    return await aiohttp_client(create_app(sms_config(config, twilio), clock=clock, randomness=SeededRandomness()))


async def quiet(seconds: float = 1.5) -> None:
    """Long enough for the delivery to do what it would (it looks at the outbox at least every second)."""
    await asyncio.sleep(seconds)


def outbound(database: str) -> list[tuple[str, int]]:
    """(status, still in the outbox) of every reply, in order."""
    with sqlite3.connect(database) as db:
        return db.execute("SELECT m.status, o.message_id IS NOT NULL FROM messages m LEFT JOIN outbox o"
                          " ON o.message_id = m.id WHERE m.direction = 'out' ORDER BY m.id").fetchall()


async def status_report(client, sid: str, status: str = "delivered") -> None:
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT}
    assert (await post(client, params, "/twilio/status")).status == 204


# A lost answer: Twilio took the message, the bot never heard -------------------------------------------------


async def test_a_reply_whose_answer_was_lost_is_looked_up_at_twilio_and_not_sent_again(sms, twilio, clock, config):
    worker = "+60177100001"
    twilio.lost_answers = 1  # taken, then the connection breaks before Twilio's answer
    assert (await post(sms, webhook("hi", sender=worker))).status == 200
    (taken,) = await eventually(twilio.sent)
    await quiet()
    assert len(twilio.calls) == 1, "not sent again before Twilio was asked"

    clock.advance(seconds=SETTLE_SECONDS + 1)
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)])
    await quiet()
    assert len(twilio.calls) == 1, "Twilio had it: not sent again"
    (asked,) = twilio.lists
    assert (asked["To"], asked["From"]) == (worker, FROM) and "DateSent" not in asked
    # Marked with Twilio's SID: its delivery report finds the message.
    await status_report(sms, taken["sid"])
    assert outbound(config.storage.database) == [("delivered", 0)]


async def test_with_a_messaging_service_the_lookup_is_by_recipient_and_service(aiohttp_client, config, clock,
                                                                                twilio):
    service = "MG" + "1" * 32
    config = sms_config(config, twilio).replace(twilio={"from_number": "", "messaging_service_sid": service})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    worker = "+60177100008"
    twilio.lost_answers = 1
    assert (await post(client, webhook("hi", sender=worker))).status == 200
    (taken,) = await eventually(twilio.sent)
    assert taken["form"]["MessagingServiceSid"] == service
    # Twilio also holds the same text to the same worker from another sender of the account: not ours.
    twilio.message(worker, taken["form"]["Body"], sender="+15550009999", created=clock.now() - timedelta(seconds=3))
    clock.advance(seconds=SETTLE_SECONDS + 1)
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)])
    await quiet()
    assert len(twilio.calls) == 1
    (asked,) = twilio.lists
    assert asked["To"] == worker and "From" not in asked
    await status_report(client, taken["sid"])
    assert outbound(config.storage.database) == [("delivered", 0)], "marked with the service's message"


async def test_a_reply_twilio_never_got_is_sent_once_after_asking(sms, twilio, clock, config):
    worker = "+60177100002"
    twilio.lost_requests = 1  # the connection breaks before Twilio takes it
    assert (await post(sms, webhook("hi", sender=worker))).status == 200
    await eventually(lambda: twilio.calls)
    clock.advance(seconds=SETTLE_SECONDS + 1)
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)])
    assert len(twilio.lists) == 1 and len(twilio.calls) == 2
    assert len(sms_to(twilio, worker)) == 1


async def test_a_queued_reply_far_down_a_long_history_is_found_page_by_page(sms, twilio, clock, config):
    """Twilio took it but has not sent it yet (queued behind the number's rate: no DateSent, so a DateSent filter
    would not show it), and the worker has more history than one page holds."""
    worker = "+60177100003"
    for n in range(1_500):
        twilio.message(worker, f"an older reply {n}", created=clock.now() - timedelta(days=1, seconds=n))
    twilio.queued, twilio.lost_answers = True, 1
    assert (await post(sms, webhook("hi", sender=worker))).status == 200
    await eventually(lambda: twilio.sent())
    clock.advance(seconds=SETTLE_SECONDS + 1)
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)])
    await quiet()
    assert len(twilio.calls) == 1
    assert [query.get("Page") for query in twilio.lists] == [None, "1"], "both pages read, by next_page_uri"


@pytest.mark.parametrize("twilio_ahead", [0.5, -8.0], ids=["past-midnight-at-twilio", "twilio-clock-behind"])
async def test_a_reply_taken_just_before_midnight_or_by_a_clock_behind_ours_is_found(
        sms, twilio, clock, config, twilio_ahead):
    worker = "+60177100004"
    midnight = datetime.combine(clock.now().date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    clock.moment = midnight - timedelta(seconds=0.3)  # (forward only: the delivery started at the clock's now)
    twilio.now = lambda: clock.now() + timedelta(seconds=twilio_ahead)
    twilio.lost_answers = 1
    assert (await post(sms, webhook("hi", sender=worker))).status == 200
    (taken,) = await eventually(twilio.sent)
    clock.advance(seconds=SETTLE_SECONDS + 1)
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)])
    await quiet()
    assert len(twilio.calls) == 1


async def test_the_same_text_sent_before_is_not_taken_for_the_reply_in_doubt(sms, twilio, clock, config):
    worker = "+60177100005"
    for text in ["hi", "1", "MENU"]:  # the languages, then the menu (twice)
        assert (await post(sms, webhook(text, sender=worker))).status == 200
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)] * 3)
    twilio.lost_requests = 1  # the same menu again, and this time Twilio never gets it
    assert (await post(sms, webhook("MENU", sender=worker))).status == 200
    await eventually(lambda: len(twilio.calls) == 4)
    clock.advance(seconds=SETTLE_SECONDS + 1)
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)] * 4)
    *_, first, second = sms_to(twilio, worker)
    assert first == second, "Twilio's list held the first one, which is already ours: the second went"
    assert len(twilio.lists) == 1 and len(twilio.sent()) == 4


async def test_while_twilio_cannot_be_asked_the_reply_waits_then_goes_after_the_bound(sms, twilio, clock, config):
    worker = "+60177100006"
    twilio.lost_requests = 1
    twilio.list_fail_next = [(503, {"code": 20503, "message": "Service unavailable", "status": 503}, {})] * 100
    assert (await post(sms, webhook("hi", sender=worker))).status == 200
    await eventually(lambda: twilio.calls)
    clock.advance(seconds=SETTLE_SECONDS + 1)
    await eventually(lambda: twilio.lists)
    asked_at = clock.now()
    while len(twilio.calls) == 1:
        assert clock.now() - asked_at <= LOOKUP_GIVE_UP + timedelta(seconds=30), "never sent"
        asked = len(twilio.lists)
        clock.advance(seconds=10)
        await eventually(lambda: len(twilio.lists) > asked or len(twilio.calls) > 1)  # noqa: B023
    assert clock.now() - asked_at >= LOOKUP_GIVE_UP, "not sent again while Twilio could not be asked"
    await eventually(lambda: outbound(config.storage.database) == [("sent", 0)])
    assert len(sms_to(twilio, worker)) == 1


# A full disk: Twilio took it, the "sent" mark cannot be written ------------------------------------------------


def fill(folder) -> object:
    """Fill the file system of ``folder`` to the last byte; returns the file that fills it."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(descriptor, b"\0" * size)
    finally:
        os.close(descriptor)
    return filler


async def test_a_reply_taken_whose_sent_mark_cannot_be_written_is_sent_once(aiohttp_client, config, clock, twilio,
                                                                           small_disk):  # noqa: F811
    database = str(small_disk / "h.db")
    client = await aiohttp_client(create_app(sms_config(config, twilio, database=database), clock=clock,
                                             randomness=SeededRandomness()))
    worker = "+60177100007"
    twilio.hold = asyncio.Event()
    assert (await post(client, webhook("hi", sender=worker))).status == 200
    await eventually(lambda: twilio.calls)  # at Twilio, marked in doubt on disk
    filler = fill(small_disk)
    twilio.hold.set()  # Twilio takes it; the "sent" mark will not fit on the disk
    await eventually(twilio.sent)
    await asyncio.sleep(6)
    assert len(twilio.calls) == 1, "one SMS, not one every second and a half"
    assert outbound(database) == [("queued", 1)], "the mark is not on disk"

    filler.unlink()  # room again
    await eventually(lambda: outbound(database) == [("sent", 0)], timeout=20)
    await quiet()
    assert len(twilio.calls) == 1


async def test_with_the_disk_full_before_it_goes_a_reply_still_goes_once(aiohttp_client, config, clock, twilio,
                                                                         small_disk):  # noqa: F811
    database = str(small_disk / "h.db")
    client = await aiohttp_client(create_app(sms_config(config, twilio, database=database), clock=clock,
                                             randomness=SeededRandomness()))
    worker = "+60177100009"
    twilio.fail_next = [(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "30"})]
    assert (await post(client, webhook("hi", sender=worker))).status == 200
    await eventually(lambda: outbound(database) == [("queued", 1)] and twilio.calls)  # waits 30 s to go again
    await quiet()
    filler = fill(small_disk)  # not even the mark in doubt fits now
    clock.advance(seconds=31)
    await eventually(twilio.sent)
    await asyncio.sleep(3)
    assert len(twilio.sent()) == 1, "sent, once, though nothing could be written"
    filler.unlink()
    await eventually(lambda: outbound(database) == [("sent", 0)], timeout=20)
    assert len(twilio.sent()) == 1


def test_a_send_stays_in_doubt_from_its_first_mark_until_an_outcome_clears_it(tmp_path):
    from bot.store.sqlite import Store

    store = Store(tmp_path / "h.db")
    now = datetime.now(UTC)
    contact = store.contact("sms", "+60177100010", now)
    message = store.queue_outbound(contact, {"text": "hello"}, now)

    def doubt() -> str | None:
        (pending,) = store.due(now + timedelta(hours=1))
        return pending.in_doubt_since

    with store.transaction():
        store.mark_in_doubt([message], now)
    with store.transaction():
        store.mark_in_doubt([message], now + timedelta(seconds=30))  # read and sent again: the first mark stays
    assert doubt() == now.isoformat()
    with store.transaction():
        store.mark_retry(message, "no answer", now, in_doubt=True)  # the outcome is unknown: still in doubt
    assert doubt() == now.isoformat()
    with store.transaction():
        store.hold_in_doubt(message, "Twilio cannot be asked", now + timedelta(seconds=10))
    assert doubt() == now.isoformat()
    with store.transaction():
        store.mark_retry(message, "Twilio 500", now)  # an answer: not taken
    assert doubt() is None
    store.close()


# kill -9 in a burst --------------------------------------------------------------------------------------------

WORKERS = 400
WALK = ["hi", "1", "1", "2", "1"]  # language, menu, rights, country, topic: a different reply at every step
REPLIES = 5


@pytest.mark.timeout(120)
async def test_kill_9_in_a_burst_of_2000_sms_sends_no_reply_twice_and_misses_none(tmp_path):
    twilio = FakeTwilio(latency=0.1)  # Twilio's answers take a while, as they do: many sends are at Twilio
    url = await twilio.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_serve(tmp_path, port, url)
    serving = asyncio.Event()
    acked = 0

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal acked
        for step, text in enumerate(WALK):
            params = webhook(text, sender=f"+6018{n:07d}", sid=f"SM{n:026d}{step:06d}")
            while await send_sms(session, base, params) != 200:  # Twilio tries again until it is acknowledged
                await serving.wait()
                await asyncio.sleep(0.05)
            acked += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        await wait_healthy(session, base)
        serving.set()
        walks = asyncio.gather(*(worker(session, n) for n in range(WORKERS)))
        while acked < len(WALK) * WORKERS // 2:
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # mid-burst, no goodbye
        serving.clear()
        acked_at_kill = acked
        process.wait(timeout=10)
        await asyncio.sleep(0.3)  # the front goes with it; Twilio finishes what it was given
        with sqlite3.connect(tmp_path / "h.db") as db:
            marked = db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND status = 'sent'"
                                ).fetchone()[0]
        at_twilio = len(twilio.sent())
        process = start_serve(tmp_path, port, url)
        await wait_healthy(session, base)
        serving.set()
        await asyncio.wait_for(walks, 60)
        expected = WORKERS * REPLIES
        deadline = time.monotonic() + 60
        while len(twilio.sent()) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything sent twice would come now
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    await twilio.close()

    print(f"at the kill: {acked_at_kill} acknowledged, {at_twilio} taken by Twilio, {marked} marked sent; "
          f"in all {len(twilio.sent())} taken")
    assert at_twilio > marked, "the kill caught replies at Twilio whose mark was not on disk"
    replies = collections.defaultdict(list)
    for call in twilio.sent():
        replies[call["form"]["To"]].append(call["form"]["Body"])
    twice = {number: body for number, bodies in replies.items() for body, count in collections.Counter(bodies).items()
             if count > 1}
    assert not twice, f"{len(twice)} workers got a reply twice"
    walk = collections.Counter(len(bodies) for bodies in replies.values())
    assert walk == {REPLIES: WORKERS}, f"every worker has every reply once: {walk}"
    with sqlite3.connect(tmp_path / "h.db") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND status = 'sent'"
                          ).fetchone()[0] == len(twilio.sent())
