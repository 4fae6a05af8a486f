"""Fake Twilio and Telegram Bot API servers for the benchmarks, in their own process, on loopback only.

Like ``tests/fakes.py`` (same request and answer shapes), with two additions a benchmark needs: every
arrival is timestamped with ``time.monotonic_ns()`` (CLOCK_MONOTONIC is system-wide on Linux, so it compares
with the load generator's clock in another process), and every arrival is streamed, one line each, to whoever
is connected to the events port:

    s <to> <t_ns>            an SMS accepted by the fake Twilio (to = the worker's number)
    t <chat_id> <t_ns>       a Telegram sendMessage to a private chat
    a <chat_id> <t_ns> <tok> <ref>  a Telegram sendMessage to a group: tok = the ``#token`` quoted in it, ref = the
                             case reference when it is an alert (it has a Claim button), else ``-``

``GET /stats`` on the HTTP port gives counters, including requests the fake refused as malformed (a provider-side
failure: no To, no Body, no text, wrong account, no auth).

Run: ``python bench/providers.py --ready-file FILE`` writes ``{"http": PORT, "events": PORT}`` to FILE once
listening. It stops on SIGTERM, or by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import signal
import time
from collections import Counter
from pathlib import Path

from aiohttp import web

TOKEN_RE = re.compile(r"#([a-z]\d+)")
REFERENCE_RE = re.compile(r"case ([0-9A-Z]{4}-[0-9A-Z]{4})")


class Events:
    """Subscribers on the events port get every arrival as a line."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            await reader.read()  # until the subscriber goes away
        finally:
            self.writers.discard(writer)
            writer.close()

    def emit(self, line: str) -> None:
        data = line.encode()
        for writer in list(self.writers):
            if writer.is_closing():
                self.writers.discard(writer)
                continue
            writer.write(data)


class Providers:
    def __init__(self, events: Events) -> None:
        self.events = events
        self.stats: Counter = Counter()
        self._sms_ids = itertools.count(1)
        self._tg_ids = itertools.count(100)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self.twilio_create)
        app.router.add_post("/bot{token}/{method}", self.telegram)
        app.router.add_get("/stats", self.get_stats)
        return app

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.stats))

    async def twilio_create(self, request: web.Request) -> web.Response:
        arrived = time.monotonic_ns()
        form = await request.post()
        to, body, account = form.get("To"), form.get("Body"), request.match_info["account"]
        if not to or body is None or not request.headers.get("Authorization") or not account.startswith("AC"):
            self.stats["twilio_refused"] += 1
            return web.json_response({"code": 21604, "message": "malformed", "status": 400}, status=400)
        self.stats["twilio_sms"] += 1
        self.events.emit(f"s {to} {arrived}\n")
        sid = f"SM{next(self._sms_ids):032d}"
        return web.json_response({
            "sid": sid, "status": "queued", "to": to, "from": form.get("From"), "body": body,
            "account_sid": account, "num_segments": "1", "direction": "outbound-api",
        }, status=201)

    async def telegram(self, request: web.Request) -> web.Response:
        arrived = time.monotonic_ns()
        method = request.match_info["method"]
        if request.content_type == "application/json":
            form = await request.json()
        else:
            form = dict(await request.post())
        self.stats[f"telegram_{method}"] += 1
        if method == "getMe":
            return _ok({"id": 999, "is_bot": True, "first_name": "Helpline", "username": "HelplineBenchBot"})
        if method == "sendMessage":
            chat_id, text = form.get("chat_id"), form.get("text")
            try:
                chat = int(chat_id)
            except (TypeError, ValueError):
                chat = None
            if chat is None or not text:
                self.stats["telegram_refused"] += 1
                return web.json_response({"ok": False, "error_code": 400,
                                          "description": "Bad Request: no chat or text"}, status=400)
            if chat < 0:
                found = TOKEN_RE.search(text)
                reference = REFERENCE_RE.search(text) if "claim:" in str(form.get("reply_markup", "")) else None
                self.stats["telegram_group"] += 1
                self.events.emit(f"a {chat} {arrived} {found.group(1) if found else '-'} "
                                 f"{reference.group(1) if reference else '-'}\n")
            else:
                self.events.emit(f"t {chat} {arrived}\n")
            kind = "supergroup" if chat < 0 else "private"
            return _ok({"message_id": next(self._tg_ids), "date": int(time.time()),
                        "chat": {"id": chat, "type": kind, **({"title": "Staff"} if chat < 0 else {})}, "text": text})
        return _ok(True)  # setWebhook, deleteWebhook, answerCallbackQuery, ...


def _ok(result) -> web.Response:
    return web.json_response({"ok": True, "result": result})


async def until_stopped(max_seconds: float) -> None:
    """Wait for SIGTERM or SIGINT, at most ``max_seconds`` (every bench process stops by itself)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)


async def serve(ready_file: Path, max_seconds: float) -> None:
    events = Events()
    providers = Providers(events)
    runner = web.AppRunner(providers.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    event_server = await asyncio.start_server(events.handle, "127.0.0.1", 0)
    events_port = event_server.sockets[0].getsockname()[1]
    ready_file.write_text(json.dumps({"http": http_port, "events": events_port}))
    await until_stopped(max_seconds)
    event_server.close()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = parser.parse_args()
    asyncio.run(serve(args.ready_file, args.max_seconds))


if __name__ == "__main__":
    main()
