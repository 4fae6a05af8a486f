"""`helpline serve` runs a front process: it reads the providers' webhooks and sends the replies, passes every
other request to the server, is restarted when it dies (connections wait meanwhile), stops with the server and
never outlives it."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import time

import aiohttp
import psutil
import pytest

from tests.helpers import eventually_awaited, send_sms, serving_in, signed, webhook

pytestmark = pytest.mark.timeout(120)


def front_process(serve_pid: int) -> psutil.Process:
    """The server's front child (multiprocessing may also run a resource tracker beside it)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for child in psutil.Process(serve_pid).children():
            try:
                command = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "spawn_main" in command and "resource_tracker" not in command:
                return child
        time.sleep(0.05)
    raise AssertionError("serve has no front process")


async def health(session: aiohttp.ClientSession, base: str) -> dict:
    async with session.get(f"{base}/healthz") as response:
        return await response.json()


async def outbox_is_empty(session: aiohttp.ClientSession, base: str) -> bool:
    return (await health(session, base))["outbox_backlog"] == 0


async def at_least(calls: list, count: int) -> list | None:
    return calls if len(calls) >= count else None


async def metric(session: aiohttp.ClientSession, base: str, name: str) -> float:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture
async def serving(tmp_path):
    async with serving_in(tmp_path, env={"HELPLINE_SERVER_SIMULATOR": "true"}) as served:  # beside Twilio
        yield served


async def test_the_front_reads_the_webhook_and_sends_the_reply_and_the_server_counts_it(serving):
    process, session, base, twilio = serving
    front = front_process(process.pid)
    port = int(base.rsplit(":", 1)[1])

    assert await send_sms(session, base, webhook("hi", sender="+60190000001", sid="SM" + "1" * 32)) == 200
    (reply,) = await twilio.wait_for(1)

    assert reply["form"]["To"] == "+60190000001"
    connections = front.net_connections(kind="tcp")
    assert any(c.laddr.port == port and c.raddr for c in connections), "the front holds the webhook's connection"
    assert twilio.server is not None
    assert any(c.raddr and c.raddr.port == twilio.server.port for c in connections), "and the one to Twilio"
    assert await eventually_awaited(lambda: metric(session, base, 'helpline_messages_out_total{channel="sms"}')) == 1


async def test_other_requests_pass_through_the_front_unchanged(serving):
    process, session, base, twilio = serving
    assert await send_sms(session, base, webhook("hi", sender="+60190000004", sid="SM" + "4" * 32)) == 200
    (reply,) = await twilio.wait_for(1)

    # Twilio's delivery status, signed over its path and its query as sent (percent-encoded): the server
    # checks the signature, so the path, the query, the headers and the body all arrived as they left.
    path = "/twilio/status?attempt=1&note=a%2Bb"
    params = {"MessageSid": reply["sid"], "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    async with session.post(f"{base}{path}", data=params, headers=signed(params, path)) as response:
        assert response.status == 204
    async with session.post(f"{base}{path}", data=params, headers=signed(params, "/twilio/status")) as response:
        assert response.status == 403, "a signature over another URL is refused"

    async with session.get(f"{base}/", allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (302, "/simulator")
    async with session.get(f"{base}/nowhere") as response:
        assert response.status == 404


async def test_a_client_cannot_pose_as_another_address(serving):
    process, session, base, twilio = serving
    # The simulator is limited per address: the front says whose request it passes on, whatever a client claims.
    statuses = []
    for n in range(125):
        async with session.get(f"{base}/simulator/api/messages?channel=sms&address=%2B1",
                               headers={"X-Helpline-Forwarded-For": f"10.0.0.{n}"}) as response:
            statuses.append(response.status)
    assert statuses[:120] == [200] * 120
    assert 429 in statuses[120:]


async def test_a_front_that_dies_is_started_again_and_requests_meanwhile_wait_for_it(serving):
    process, session, base, twilio = serving
    first = front_process(process.pid)

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    started = time.monotonic()
    async with aiohttp.ClientSession() as fresh:  # the pooled connections died with the first front
        status = await send_sms(fresh, base, webhook("hi", sender="+60190000002", sid="SM" + "2" * 32))

    assert status == 200, "the connection waited in the kernel's queue for the new front"
    assert time.monotonic() - started > 0.5, "which came after the first restart delay (1 s)"
    assert front_process(process.pid).pid != first.pid
    (reply,) = await twilio.wait_for(1)
    assert reply["form"]["To"] == "+60190000002"
    async with aiohttp.ClientSession() as fresh:
        assert await metric(fresh, base, "helpline_front_restarts_total") == 1


async def test_a_reply_twilio_took_while_the_front_died_is_looked_up_not_sent_again(serving, tmp_path):
    process, session, base, twilio = serving
    front = front_process(process.pid)
    twilio.hold = asyncio.Event()

    assert await send_sms(session, base, webhook("hi", sender="+60190000003", sid="SM" + "3" * 32)) == 200
    await eventually_awaited(lambda: at_least(twilio.calls, 1))
    front.send_signal(signal.SIGKILL)  # Twilio has the request; the bot never hears back
    front.wait(timeout=10)
    twilio.hold.set()  # and Twilio takes it

    async with aiohttp.ClientSession() as fresh:  # the pooled connections died with the first front
        await eventually_awaited(lambda: outbox_is_empty(fresh, base))
    assert [call["form"]["To"] for call in twilio.calls] == ["+60190000003"], "exactly once: not sent again"
    assert twilio.lists and twilio.lists[0]["To"] == "+60190000003", "the server asked Twilio"
    with sqlite3.connect(tmp_path / "h.db") as db:
        assert db.execute("SELECT status FROM messages WHERE direction = 'out'").fetchall() == [("sent",)]


async def test_a_reply_twilio_never_got_while_the_front_died_is_sent_again_once(serving):
    process, session, base, twilio = serving
    front = front_process(process.pid)
    twilio.hold = asyncio.Event()
    twilio.lost_requests = 1  # the request never makes it into Twilio

    assert await send_sms(session, base, webhook("hi", sender="+60190000005", sid="SM" + "5" * 32)) == 200
    await eventually_awaited(lambda: at_least(twilio.calls, 1))
    front.send_signal(signal.SIGKILL)
    front.wait(timeout=10)
    twilio.hold.set()

    sent = await eventually_awaited(lambda: at_least(twilio.sent(), 1))
    assert [call["form"]["To"] for call in sent] == ["+60190000005"]
    assert len(twilio.calls) == 2 and twilio.lists, "looked up at Twilio, then sent again"
    async with aiohttp.ClientSession() as fresh:
        await eventually_awaited(lambda: outbox_is_empty(fresh, base))
    assert len(twilio.sent()) == 1


async def test_webhooks_that_arrive_while_the_front_hangs_are_answered_when_it_is_back(serving):
    process, session, base, twilio = serving
    front = front_process(process.pid)
    front.send_signal(signal.SIGSTOP)  # hung: nothing is read, nothing leaves
    try:
        webhooks = [asyncio.create_task(send_sms(session, base, webhook("hi", sender=f"+6019000001{n}",
                                                                        sid=f"SM{n:032d}"))) for n in range(3)]
        done, _ = await asyncio.wait(webhooks, timeout=0.5)
        assert done == set() and twilio.sent() == []
    finally:
        front.send_signal(signal.SIGCONT)

    assert await asyncio.gather(*webhooks) == [200, 200, 200]
    sent = await twilio.wait_for(3)
    assert sorted(call["form"]["To"] for call in sent) == ["+60190000010", "+60190000011", "+60190000012"]


async def test_a_stop_while_the_front_waits_to_restart_starts_no_new_one(serving):
    process, session, base, twilio = serving
    front = front_process(process.pid)
    front.send_signal(signal.SIGKILL)
    front.wait(timeout=10)
    await asyncio.sleep(0.3)  # the server saw it go and waits 1 s to start another

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started < 8, "no restart, and no wait for a front to stop"
    assert b"did not stop" not in process.stderr.read()


async def test_sigterm_stops_the_server_and_its_front_process_cleanly(serving):
    process, session, base, twilio = serving
    front = front_process(process.pid)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 0
    assert not front.is_running() or front.status() == psutil.STATUS_ZOMBIE


async def test_a_stop_during_a_stream_of_webhooks_is_prompt_and_every_acknowledged_one_is_stored(serving, tmp_path):
    process, session, base, twilio = serving
    acknowledged = 0
    stopping = False

    async def worker(n: int) -> None:  # a provider that keeps sending, 20 webhooks at a time
        nonlocal acknowledged
        for i in itertools.count():
            if stopping:
                return
            if await send_sms(session, base, webhook("hi", sender=f"+6019{n:03d}{i:05d}")) == 200:
                acknowledged += 1
            else:
                await asyncio.sleep(0.01)  # refused or cut off: not acknowledged, the provider would retry

    workers = [asyncio.create_task(worker(n)) for n in range(20)]
    await asyncio.sleep(1.0)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None:
        await asyncio.sleep(0.02)
    stopped_after = time.monotonic() - started
    stopping = True
    await asyncio.gather(*workers)

    assert process.returncode == 0
    assert stopped_after < 4, "webhooks being read when the stop came are answered, not waited out"
    with sqlite3.connect(tmp_path / "h.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'").fetchone()[0]
    assert acknowledged > 0 and stored >= acknowledged


async def test_the_front_process_does_not_outlive_a_killed_server(serving):
    process, session, base, twilio = serving
    front = front_process(process.pid)

    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    gone, alive = psutil.wait_procs([front], timeout=10)
    assert alive == [], "the front saw the server go and stopped"


async def test_neither_process_logs_a_number_or_a_text_even_at_debug(tmp_path):
    phone, words = "+60199988877", "my employer Tan Ah Kow took my passport"
    async with serving_in(tmp_path, "--log-level", "DEBUG") as (process, session, base, twilio):
        for text in ["hi", words]:
            assert await send_sms(session, base, webhook(text, sender=phone)) == 200
        await twilio.wait_for(2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    logged = stderr.decode()
    assert "front process started" in logged
    for secret in (phone, "99988877", "Tan Ah Kow", "Welcome to the migrant"):
        assert secret not in logged, secret
