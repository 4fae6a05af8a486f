"""The front process: what faces the network, in a process of its own, so the pipeline has a core to itself.

One Python process uses one core at a time. Reading the providers' webhooks (HTTP, forms, signatures) and
calling their APIs is about half of what a message costs, so `helpline serve` runs two processes:

- **the server** (the process `helpline serve` starts): the database, the pipeline, the outbox and its
  delivery worker (order per worker, retries, every database write), the timers and the metrics. Its HTTP
  application (every route) listens on a private Unix socket.
- **the front** (a child): listens on ``[server] host``/``port``. It checks and reads the providers' message
  webhooks (Twilio's signature, Telegram's secret) itself and hands each message to the server, answering
  the provider only once the server says the message is on disk. Every other request (/healthz, /metrics,
  the simulator, Twilio's delivery statuses) it passes to the server's socket as it came, with the client's
  address. It also holds the providers' HTTP clients: the delivery worker hands it each reply and waits for
  the provider's answer, as it would wait for the provider itself.

The server binds the public socket and keeps it: while the front (re)starts, connections wait in the
kernel's queue rather than being refused. Between the two, JSON lines over a socket pair, written once per
turn of the event loop:

- server → front: ``{"id", "channel", "pending"}`` (send this), ``{"call", "reply"}`` / ``{"call",
  "unavailable"}`` / ``{"call", "invalid"}`` (the answer to a message handed over), ``{"close": true}``
  (stop taking requests).
- front → server: ``{"ready": true}``, ``{"id", "sent"}`` / ``{"id", "error": {...}}`` (a
  :class:`~bot.outbox.SendError`'s fields), ``{"call", "inbound": {...}}`` (store this message),
  ``{"closed": true}``.

If the front dies, the sends it had are failed as in doubt (the provider may have taken them: the server asks
it before sending them again, see :mod:`bot.outbox`), new sends wait for it, and the server starts it again
(1 s, then longer); a webhook it was reading gets no answer, and the provider sends it again or reports it (as
when any server dies mid-request). If the server dies, the front sees the socket close and stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, UnixConnector, web
from multidict import CIMultiDict
from yarl import URL

from bot.config import Config
from bot.http_limits import FORWARDED_FOR, IP_LIMITERS, limit_per_ip
from bot.intake import Unavailable
from bot.messages import Inbound, Reply
from bot.metrics import Metrics
from bot.outbox import SendError
from bot.store.sqlite import Pending

log = logging.getLogger(__name__)

PENDING_FIELDS = tuple(field.name for field in dataclasses.fields(Pending))
INBOUND_FIELDS = tuple(field.name for field in dataclasses.fields(Inbound))

RESTART_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0)
HEALTHY_AFTER_SECONDS = 60.0  # a front that ran this long is started again after the shortest delay
STOP_SECONDS = 10.0
CLOSE_SECONDS = 5.0  # for the webhooks the front is reading when the server stops
LINE_LIMIT = 256 * 1024  # bytes read at a time (a message is at most a few KB)
# Hop-by-hop headers (RFC 9110, 7.6.1) and the framing the proxy redoes itself.
NOT_PASSED = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length", FORWARDED_FOR.lower()})


@dataclasses.dataclass(frozen=True)
class FrontSockets:
    """What `helpline serve` binds for the two processes: the public listening sockets (the front's) and the
    path of the server's private Unix socket."""

    public: list[socket.socket]
    server_path: str


class FrontProcess:
    """The server's side: the front's life and restarts, the sends handed to it, the messages it hands over."""

    def __init__(self, config: Config, channels: frozenset[str], metrics: Metrics, sockets: FrontSockets):
        self.config = config
        self.channels = channels
        self.metrics = metrics
        self.sockets = sockets
        self.enqueue: Callable[[Inbound], asyncio.Future[Reply]] | None = None  # the Intake's, set by the app
        self.process: multiprocessing.process.BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lines: JsonLines | None = None
        self._sends = Requests("id")
        self._taking: set[asyncio.Future] = set()
        self._closed = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task | None = None

    def sender(self, channel: str) -> RemoteSender:
        return RemoteSender(self, channel)

    def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="helpline-front-process")

    async def send(self, channel: str, pending: Pending) -> str | None:
        await self._ready.wait()  # while the front (re)starts, sends wait: they are not failures
        assert self._lines is not None
        answer = await self._sends.ask(self._lines, {
            "channel": channel, "pending": {name: getattr(pending, name) for name in PENDING_FIELDS}})
        if "error" in answer:
            raise SendError(**answer["error"])
        return answer.get("sent")

    async def close(self) -> None:
        """Stop taking requests: the front finishes the webhooks it is reading (the intake must still be open)
        and stops listening; its senders go on, for the outbox's last flush."""
        if not self._ready.is_set() or self._lines is None:
            return
        self._closed.clear()
        self._lines.send({"close": True})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), CLOSE_SECONDS + 1)
        if self._taking:
            await asyncio.wait(set(self._taking), timeout=CLOSE_SECONDS)

    async def stop(self) -> None:
        """Close the socket: the front stops (nothing is in flight once the outbox was flushed through it)."""
        self._stopping.set()
        self._ready.clear()
        if self._writer is not None:
            self._writer.close()
        if self._supervisor is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._supervisor), STOP_SECONDS)
        except TimeoutError:
            log.error("the front process did not stop; killing it")
            if self.process is not None:
                self.process.kill()
            await self._supervisor

    # The front's life ------------------------------------------------------------------------------

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
            self.metrics.front_restarts.inc()
            log.error("the front process stopped (exit code %s); starting it again in %.0f s. Requests wait for it "
                      "meanwhile, and replies wait in the outbox.", process.exitcode, delay)
            with contextlib.suppress(TimeoutError):  # a stop during the delay ends it: no front to start
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return

    async def _spawn(self) -> tuple[multiprocessing.process.BaseProcess, asyncio.Task]:
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or loop inherited
        process = context.Process(target=run, name="helpline-front", daemon=True,
                                  args=(self.config, theirs, self.sockets.public, self.sockets.server_path,
                                        logging.getLogger().level))
        # Starting an interpreter and handing it its arguments blocks: off the event loop, which serves meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, process.start)
        theirs.close()
        self.process = process
        reader, self._writer = await asyncio.open_connection(sock=ours, limit=LINE_LIMIT)
        self._lines = JsonLines(self._writer)
        reading = asyncio.create_task(self._read(reader))
        log.info("front process started (pid %s)%s", process.pid,
                 f"; it sends for {', '.join(sorted(self.channels))}" if self.channels else "")
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
        """Lines from the front, until it goes; then the sends it had are failed, to be retried."""
        try:
            async for line in read_lines(reader):
                if "inbound" in line:
                    self._take(line["call"], line["inbound"])
                elif "id" in line:
                    self._sends.answered(line)
                elif line.get("ready"):
                    self._ready.set()
                elif line.get("closed"):
                    self._closed.set()
        except (OSError, ValueError) as error:
            log.error("reading from the front process: %r", error)
        finally:
            self._ready.clear()
            self._closed.set()
            if self._writer is not None:
                self._writer.close()
            self._sends.fail_all({"error": {"message": "the front process stopped during the send",
                                            "retry_after": 1.0, "in_doubt": True}})

    def _take(self, call: int, fields: dict) -> None:
        """A message the front read: stored through the intake, then the front may answer the provider (a
        callback on the intake's future rather than a task: one message, one future)."""
        assert self.enqueue is not None and self._lines is not None
        lines = self._lines  # the answer goes to the front that asked, even if another one starts meanwhile
        try:
            stored = self.enqueue(inbound_from(fields))
        except Unavailable as error:
            lines.send({"call": call, "unavailable": str(error)})
            return
        except (ValueError, TypeError) as error:
            lines.send({"call": call, "invalid": str(error)})
            return
        self._taking.add(stored)
        stored.add_done_callback(functools.partial(self._taken, lines, call))

    def _taken(self, lines: JsonLines, call: int, stored: asyncio.Future[Reply]) -> None:
        self._taking.discard(stored)
        if stored.cancelled():
            lines.send({"call": call, "unavailable": "the server stopped"})
        elif (error := stored.exception()) is not None:
            lines.send({"call": call, "unavailable": str(error)})
        else:
            reply = stored.result()
            lines.send({"call": call, "reply": {"duplicate": reply.duplicate, "notice": reply.notice}})


class RemoteSender:
    """A :class:`~bot.outbox.Sender` whose sends happen in the front process."""

    def __init__(self, process: FrontProcess, channel: str):
        self.process = process
        self.channel = channel

    async def send(self, pending: Pending) -> str | None:
        return await self.process.send(self.channel, pending)


def inbound_fields(inbound: Inbound) -> dict:
    fields = {name: getattr(inbound, name) for name in INBOUND_FIELDS}
    fields["received_at"] = inbound.received_at.isoformat()
    return fields


def inbound_from(fields: dict) -> Inbound:
    fields = dict(fields, received_at=datetime.fromisoformat(fields["received_at"]), media=tuple(fields["media"]))
    return Inbound(**fields)


def bind(host: str, port: int, backlog: int = 1024) -> list[socket.socket]:
    """The public listening sockets, one per address ``host`` names (as aiohttp would bind them). The server
    holds them for its whole life, so connections queue while the front (re)starts."""
    listeners = []
    for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE):
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen(backlog)
        except OSError:
            listener.close()
            for other in listeners:
                other.close()
            raise
        listeners.append(listener)
    return listeners


# In the front ------------------------------------------------------------------------------------


def run(config: Config, sock: socket.socket, listeners: list[socket.socket], server_path: str,
        log_level: int) -> None:
    """The front's entry point. Ctrl-C and SIGTERM reach the whole process group, but the server decides
    when the front stops (after it flushed the outbox through it), so the front ignores them."""
    from bot.redact import scrub_logs
    from bot.runtime import event_loop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s [front]: %(message)s")
    scrub_logs()
    loop = event_loop()
    try:
        loop.run_until_complete(_serve(config, sock, listeners, server_path))
    finally:
        loop.close()


async def _serve(config: Config, sock: socket.socket, listeners: list[socket.socket], server_path: str) -> None:
    from bot.channels import provider_channels
    from bot.runtime import quiet_libraries

    quiet_libraries()
    channels = provider_channels(config)
    for channel in channels.values():
        await channel.start_sending()  # no call to the provider: one that is down never stops the front
    reader, writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
    lines = JsonLines(writer)
    intake = RemoteIntake(lines)
    server = ClientSession(connector=UnixConnector(path=server_path), auto_decompress=False,
                           timeout=ClientTimeout(total=None, sock_connect=10))
    runner = web.AppRunner(front_app(channels, intake, server), access_log=None)
    await runner.setup()
    for listener in listeners:
        await web.SockSite(runner, listener, shutdown_timeout=CLOSE_SECONDS).start()
    lines.send({"ready": True})
    sending: set[asyncio.Task] = set()

    async def close() -> None:
        await runner.cleanup()  # stop listening; the requests being read finish first (their answers are read on)
        lines.send({"closed": True})

    try:
        async for line in read_lines(reader):  # until the server closes the socket, or is gone
            if "call" in line:
                intake.calls.answered(line)
            elif "id" in line:
                task = asyncio.create_task(_send(channels, line, lines))
                sending.add(task)
                task.add_done_callback(sending.discard)
            elif line.get("close"):
                task = asyncio.create_task(close())
                sending.add(task)
                task.add_done_callback(sending.discard)
    finally:
        # Webhooks waiting for the server get 503: not acknowledged, the provider tries again.
        intake.calls.fail_all({"unavailable": "the server stopped"})
        for task in list(sending):
            task.cancel()
        await runner.cleanup()
        await server.close()
        for channel in channels.values():
            await channel.close()
        writer.close()


def front_app(channels: dict, intake: RemoteIntake, server: ClientSession) -> web.Application:
    """The providers' message webhooks, read here; every other request passed to the server."""
    from bot.keys import INTAKE

    app = web.Application(client_max_size=64 * 1024, middlewares=[limit_per_ip])
    app[IP_LIMITERS] = {}
    app[INTAKE] = intake  # type: ignore[assignment]  # the same submit() as the Intake's
    for channel in channels.values():
        app.router.add_routes(channel.message_routes())

    async def pass_on(request: web.Request) -> web.StreamResponse:
        return await forward(server, request)

    app.router.add_route("*", "/{path:.*}", pass_on)
    return app


async def forward(server: ClientSession, request: web.Request) -> web.Response:
    """The request to the server as it came (method, path, query, headers, body), the answer back the same."""
    headers = CIMultiDict((name, value) for name, value in request.headers.items() if name.lower() not in NOT_PASSED)
    headers[FORWARDED_FOR] = request.remote or "?"
    body = await request.read()
    try:
        url = URL(f"http://helpline{request.raw_path}", encoded=True)  # path and query exactly as received
        async with server.request(request.method, url, headers=headers, data=body or None, allow_redirects=False,
                                  skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type")) as answer:
            content = await answer.read()
            passed = CIMultiDict((name, value) for name, value in answer.headers.items()
                                 if name.lower() not in NOT_PASSED)
            return web.Response(status=answer.status, reason=answer.reason, headers=passed, body=content)
    except (ClientError, OSError) as error:
        log.warning("passing %s %s to the server: %r", request.method, request.path, error)
        raise web.HTTPServiceUnavailable(text="try again", headers={"Retry-After": "5"}) from None


class RemoteIntake:
    """The front's stand-in for the server's :class:`~bot.intake.Intake`: the same ``submit``, which returns
    once the server has the message on disk."""

    def __init__(self, lines: JsonLines):
        self.lines = lines
        self.calls = Requests("call")

    async def submit(self, inbound: Inbound) -> Reply:
        answer = await self.calls.ask(self.lines, {"inbound": inbound_fields(inbound)})
        if "unavailable" in answer:
            raise Unavailable(answer["unavailable"])
        if "invalid" in answer:
            raise ValueError(answer["invalid"])
        return Reply(duplicate=answer["reply"]["duplicate"], notice=answer["reply"]["notice"])


async def _send(channels: dict, request: dict, lines: JsonLines) -> None:
    try:
        sent = await channels[request["channel"]].send(Pending(**request["pending"]))
        answer: dict = {"id": request["id"], "sent": sent}
    except SendError as error:
        answer = {"id": request["id"], "error": {"message": str(error), "permanent": error.permanent,
                                                 "retry_after": error.retry_after, "code": error.code,
                                                 "opted_out": error.opted_out, "down": error.down,
                                                 "in_doubt": error.in_doubt}}
    except Exception as error:  # a bug or an unexpected library error: retried, never dropped
        log.exception("send of message %s raised", request["pending"].get("message_id"))
        answer = {"id": request["id"], "error": {"message": repr(error), "in_doubt": True}}
    lines.send(answer)


# Both sides --------------------------------------------------------------------------------------


class Requests:
    """Requests sent as JSON lines, each answered by a line with its number under ``key`` (the server's sends
    to the front, and the front's messages to the server)."""

    def __init__(self, key: str):
        self.key = key
        self._numbers = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}

    async def ask(self, lines: JsonLines, message: dict) -> dict:
        number = next(self._numbers)
        future = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        lines.send({self.key: number, **message})
        try:
            return await future
        finally:
            self._waiting.pop(number, None)

    def answered(self, line: dict) -> None:
        future = self._waiting.get(line[self.key])
        if future is not None and not future.done():
            future.set_result(line)

    def fail_all(self, answer: dict) -> None:
        """The other side is gone: every request waiting gets ``answer``."""
        for future in self._waiting.values():
            if not future.done():
                future.set_result(answer)


class JsonLines:
    """JSON lines to a stream, written once per turn of the event loop: one system call for a window of
    lines rather than one each."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self._buffer: list[bytes] = []

    def send(self, message: dict) -> None:
        if not self._buffer:
            asyncio.get_running_loop().call_soon(self._flush)
        self._buffer.append(orjson.dumps(message))

    def _flush(self) -> None:
        lines, self._buffer = self._buffer, []
        if not self.writer.is_closing():
            lines.append(b"")
            self.writer.write(b"\n".join(lines))


async def read_lines(reader: asyncio.StreamReader) -> AsyncIterator[dict]:
    """JSON lines from a stream until it ends, read a chunk at a time."""
    rest = b""
    while chunk := await reader.read(LINE_LIMIT):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            yield orjson.loads(line)
