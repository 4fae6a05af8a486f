"""`helpline serve` sends the providers' messages from a process of its own: it is restarted when it dies,
stops with the server, and never outlives it."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import psutil
import pytest

from tests.fakes import FakeTwilio
from tests.test_crash import send_sms, start_serve, wait_healthy
from tests.test_server import free_port
from tests.test_twilio_sms import webhook

pytestmark = pytest.mark.timeout(120)


def sending_process(serve_pid: int) -> psutil.Process:
    """The server's sending child (multiprocessing may also run a resource tracker beside it)."""
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
    raise AssertionError("serve has no sending process")


async def eventually(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def health(session: aiohttp.ClientSession, base: str) -> dict:
    async with session.get(f"{base}/healthz") as response:
        return await response.json()


async def sending_is(session: aiohttp.ClientSession, base: str, state: str) -> bool:
    return (await health(session, base)).get("sending") == state


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
    twilio = FakeTwilio()
    url = await twilio.start()
    port = free_port()
    process = start_serve(tmp_path, port, url)
    session = aiohttp.ClientSession()
    base = f"http://127.0.0.1:{port}"
    await wait_healthy(session, base)
    await eventually(lambda: sending_is(session, base, "running"))
    yield process, session, base, twilio
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    await session.close()
    await twilio.close()


async def test_replies_leave_from_the_sending_process_and_are_counted_by_the_server(serving):
    process, session, base, twilio = serving
    child = sending_process(process.pid)

    assert await send_sms(session, base, webhook("hi", sender="+60190000001", sid="SM" + "1" * 32)) == 200
    (reply,) = await twilio.wait_for(1)

    assert reply["form"]["To"] == "+60190000001"
    assert twilio.server is not None
    peers = {c.raddr.port for c in child.net_connections(kind="tcp") if c.raddr}
    assert twilio.server.port in peers, "the sending process holds the connection to Twilio"
    assert (await health(session, base))["sending"] == "running"
    assert await eventually(lambda: metric(session, base, 'helpline_messages_out_total{channel="sms"}')) == 1


async def test_a_sending_process_that_dies_is_started_again_and_the_next_reply_goes(serving):
    process, session, base, twilio = serving
    first = sending_process(process.pid)

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    await eventually(lambda: sending_is(session, base, "restarting"))  # for a second, the first delay
    await eventually(lambda: sending_is(session, base, "running"))
    assert sending_process(process.pid).pid != first.pid
    assert await metric(session, base, "helpline_sending_restarts_total") == 1
    assert await send_sms(session, base, webhook("hi", sender="+60190000002", sid="SM" + "2" * 32)) == 200
    (reply,) = await twilio.wait_for(1)
    assert reply["form"]["To"] == "+60190000002"


async def test_a_reply_in_flight_when_the_sending_process_dies_is_sent_again_once_it_is_back(serving):
    process, session, base, twilio = serving
    child = sending_process(process.pid)
    twilio.hold = asyncio.Event()

    assert await send_sms(session, base, webhook("hi", sender="+60190000003", sid="SM" + "3" * 32)) == 200
    await eventually(lambda: at_least(twilio.calls, 1))
    child.send_signal(signal.SIGKILL)  # Twilio has the request; the bot never hears back
    child.wait(timeout=10)
    twilio.hold.set()

    calls = await eventually(lambda: at_least(twilio.calls, 2))
    assert [call["form"]["To"] for call in calls] == ["+60190000003"] * 2, "at least once: sent again"
    assert calls[0]["form"]["Body"] == calls[1]["form"]["Body"]
    await eventually(lambda: outbox_is_empty(session, base))


async def test_replies_committed_while_the_sending_process_hangs_are_sent_when_it_is_back(serving):
    process, session, base, twilio = serving
    child = sending_process(process.pid)
    child.send_signal(signal.SIGSTOP)  # hung: nothing leaves
    try:
        for n in range(3):
            assert await send_sms(session, base, webhook("hi", sender=f"+6019000001{n}", sid=f"SM{n:032d}")) == 200
        await asyncio.sleep(0.5)
        assert twilio.sent() == []
        assert (await health(session, base))["outbox_backlog"] == 3
    finally:
        child.send_signal(signal.SIGCONT)

    sent = await twilio.wait_for(3)
    assert sorted(call["form"]["To"] for call in sent) == ["+60190000010", "+60190000011", "+60190000012"]


async def test_a_stop_while_the_sending_process_waits_to_restart_starts_no_new_one(serving):
    process, session, base, twilio = serving
    child = sending_process(process.pid)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    await eventually(lambda: sending_is(session, base, "restarting"))

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started < 8, "no restart, and no wait for a child to stop"
    assert b"did not stop" not in process.stderr.read()


async def test_sigterm_stops_the_server_and_its_sending_process_cleanly(serving):
    process, session, base, twilio = serving
    child = sending_process(process.pid)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 0
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


async def test_the_sending_process_does_not_outlive_a_killed_server(serving):
    process, session, base, twilio = serving
    child = sending_process(process.pid)

    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    gone, alive = psutil.wait_procs([child], timeout=10)
    assert alive == [], "the sending process saw the server go and stopped"


async def test_neither_process_logs_a_number_or_a_text_even_at_debug(tmp_path):
    twilio = FakeTwilio()
    url = await twilio.start()
    port = free_port()
    process = start_serve(tmp_path, port, url, "--log-level", "DEBUG")
    base = f"http://127.0.0.1:{port}"
    phone, words = "+60199988877", "my employer Tan Ah Kow took my passport"
    async with aiohttp.ClientSession() as session:
        await wait_healthy(session, base)
        await eventually(lambda: sending_is(session, base, "running"))
        for text in ["hi", words]:
            assert await send_sms(session, base, webhook(text, sender=phone)) == 200
        await twilio.wait_for(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    await twilio.close()
    logged = stderr.decode()
    assert "sending process started" in logged
    for secret in (phone, "99988877", "Tan Ah Kow", "Welcome to the migrant"):
        assert secret not in logged, secret
