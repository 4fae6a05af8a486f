"""The providers' senders (SMS, Telegram) in a process of their own, so sending has a core of its own.

One Python process uses one core at a time, and talking to the providers' APIs is about a fifth of what a
message costs. `helpline serve` therefore runs the Twilio and Telegram senders in a child process. The
delivery worker (:class:`~bot.outbox.Delivery`) stays in the server, with the outbox, the order per worker,
the retries and every database write; for each message it hands the child a request and waits for the
provider's answer, as it would wait for the provider itself.

- Requests and answers are JSON lines over a socket pair: ``{"id", "channel", "pending"}`` out, ``{"id",
  "sent": provider id}`` or ``{"id", "error": {...}}`` back (a :class:`~bot.outbox.SendError`'s fields).
- If the child dies, the sends it had are failed as retryable (the provider may have taken them: at least
  once, as after any crash), new sends wait for it, and the server starts it again (1 s, then longer).
- If the server dies, the child sees the socket close and stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import AsyncIterator

from bot.config import Config
from bot.metrics import Metrics
from bot.outbox import SendError
from bot.store.sqlite import Pending

log = logging.getLogger(__name__)

PENDING_FIELDS = tuple(field.name for field in dataclasses.fields(Pending))

RESTART_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0)
HEALTHY_AFTER_SECONDS = 60.0  # a child that ran this long is started again after the shortest delay
STOP_SECONDS = 10.0
LINE_LIMIT = 256 * 1024  # bytes read at a time (a message is at most a few KB)


class SendingProcess:
    """The server's side: one :class:`RemoteSender` per channel, the child's life, restarts."""

    def __init__(self, config: Config, channels: frozenset[str], metrics: Metrics):
        self.config = config
        self.channels = channels
        self.metrics = metrics
        self.process: multiprocessing.process.BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._requests: JsonLines | None = None
        self._waiting: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._ready = asyncio.Event()
        self._started_once = False
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task | None = None

    @property
    def state(self) -> str:
        """For /healthz: ``starting`` until the child first says it is ready, ``restarting`` while it is down."""
        if self._ready.is_set():
            return "running"
        return "restarting" if self._started_once else "starting"

    def sender(self, channel: str) -> RemoteSender:
        return RemoteSender(self, channel)

    def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="helpline-sending-process")

    async def send(self, channel: str, pending: Pending) -> str | None:
        await self._ready.wait()  # while the child (re)starts, sends wait: they are not failures
        assert self._requests is not None
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._requests.send({"id": request_id, "channel": channel,
                             "pending": {name: getattr(pending, name) for name in PENDING_FIELDS}})
        try:
            answer = await future
        finally:
            self._waiting.pop(request_id, None)
        if "error" in answer:
            raise SendError(**answer["error"])
        return answer.get("sent")

    async def stop(self) -> None:
        """Close the socket: the child stops (nothing is in flight once the outbox was flushed through it)."""
        self._stopping.set()
        self._ready.clear()
        if self._writer is not None:
            self._writer.close()
        if self._supervisor is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._supervisor), STOP_SECONDS)
        except TimeoutError:
            log.error("the sending process did not stop; killing it")
            if self.process is not None:
                self.process.kill()
            await self._supervisor

    # The child's life ------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            process, reading = await self._spawn()
            await self._exited(process)
            await reading
            if self._stopping.is_set():
                return
            if time.monotonic() - started > HEALTHY_AFTER_SECONDS:
                failures = 0
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            self.metrics.sending_restarts.inc()
            log.error("the sending process stopped (exit code %s); starting it again in %.0f s. Replies wait in "
                      "the outbox meanwhile.", process.exitcode, delay)
            with contextlib.suppress(TimeoutError):  # a stop during the delay ends it: no child to start
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return

    async def _spawn(self) -> tuple[multiprocessing.process.BaseProcess, asyncio.Task]:
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or loop inherited
        process = context.Process(target=run, args=(self.config, theirs, logging.getLogger().level),
                                  name="helpline-sending", daemon=True)
        # Starting an interpreter and handing it its arguments blocks: off the event loop, which serves meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, process.start)
        theirs.close()
        self.process = process
        reader, self._writer = await asyncio.open_connection(sock=ours, limit=LINE_LIMIT)
        self._requests = JsonLines(self._writer)
        reading = asyncio.create_task(self._read(reader))
        log.info("sending process started (pid %s) for %s", process.pid, ", ".join(sorted(self.channels)))
        return process, reading

    @staticmethod
    async def _exited(process: multiprocessing.process.BaseProcess) -> None:
        loop = asyncio.get_running_loop()
        ended = asyncio.Event()
        loop.add_reader(process.sentinel, ended.set)
        try:
            await ended.wait()
        finally:
            loop.remove_reader(process.sentinel)
        process.join()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Answers from the child, until it goes; then what it had is failed, to be retried."""
        try:
            async for answer in read_lines(reader):
                if answer.get("ready"):
                    self._started_once = True
                    self._ready.set()
                    continue
                future = self._waiting.get(answer.get("id"))
                if future is not None and not future.done():
                    future.set_result(answer)
        except (OSError, ValueError) as error:
            log.error("reading from the sending process: %r", error)
        finally:
            self._ready.clear()
            if self._writer is not None:
                self._writer.close()
            gone = {"error": {"message": "the sending process stopped during the send", "retry_after": 1.0}}
            for future in self._waiting.values():
                if not future.done():
                    future.set_result(gone)


class RemoteSender:
    """A :class:`~bot.outbox.Sender` whose sends happen in the sending process."""

    def __init__(self, process: SendingProcess, channel: str):
        self.process = process
        self.channel = channel

    async def send(self, pending: Pending) -> str | None:
        return await self.process.send(self.channel, pending)


# In the child -------------------------------------------------------------------------------------


def run(config: Config, sock: socket.socket, log_level: int) -> None:
    """The child's entry point. Ctrl-C and SIGTERM reach the whole process group, but the server decides
    when this process stops (after it flushed the outbox through it), so the child ignores them."""
    from bot.runtime import event_loop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s [sending]: %(message)s")
    loop = event_loop()
    try:
        loop.run_until_complete(_serve(config, sock))
    finally:
        loop.close()


async def _serve(config: Config, sock: socket.socket) -> None:
    from bot.channels import provider_channels
    from bot.runtime import quiet_libraries

    quiet_libraries()
    channels = provider_channels(config)
    for channel in channels.values():
        await channel.start_sending()
    reader, writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
    answers = JsonLines(writer)
    answers.send({"ready": True})
    sending: set[asyncio.Task] = set()
    try:
        async for request in read_lines(reader):  # until the server closes the socket, or is gone
            task = asyncio.create_task(_send(channels, request, answers))
            sending.add(task)
            task.add_done_callback(sending.discard)
    finally:
        for task in list(sending):
            task.cancel()
        for channel in channels.values():
            await channel.close()
        writer.close()


async def _send(channels: dict, request: dict, answers: JsonLines) -> None:
    try:
        sent = await channels[request["channel"]].send(Pending(**request["pending"]))
        answer: dict = {"id": request["id"], "sent": sent}
    except SendError as error:
        answer = {"id": request["id"], "error": {"message": str(error), "permanent": error.permanent,
                                                 "retry_after": error.retry_after, "code": error.code,
                                                 "opted_out": error.opted_out}}
    except Exception as error:  # a bug or an unexpected library error: retried, never dropped
        log.exception("send of message %s raised", request["pending"].get("message_id"))
        answer = {"id": request["id"], "error": {"message": repr(error)}}
    answers.send(answer)


# Both sides --------------------------------------------------------------------------------------


class JsonLines:
    """JSON lines to a stream, written once per turn of the event loop: one system call for a window of
    sends rather than one each."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self._buffer: list[str] = []

    def send(self, message: dict) -> None:
        if not self._buffer:
            asyncio.get_running_loop().call_soon(self._flush)
        self._buffer.append(json.dumps(message, separators=(",", ":")))

    def _flush(self) -> None:
        lines, self._buffer = self._buffer, []
        if not self.writer.is_closing():
            self.writer.write(("\n".join(lines) + "\n").encode())


async def read_lines(reader: asyncio.StreamReader) -> AsyncIterator[dict]:
    """JSON lines from a stream until it ends, read a chunk at a time."""
    rest = b""
    while chunk := await reader.read(LINE_LIMIT):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            yield json.loads(line)
