"""The simulator channel: a worker on SMS or Telegram, played in a browser page or in the terminal.

Messages go through the same pipeline and outbox as real ones; "sending" hands them to whoever watches
(the /simulator page long-polls, ``helpline chat`` waits for its replies).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bot.http_limits import MAX_JSON_DEPTH, too_deep
from bot.intake import Unavailable
from bot.keys import DATABASE, INTAKE, SIMULATOR
from bot.messages import Inbound
from bot.store.sqlite import Pending, Store

CHANNELS = {"sms": "simulator-sms", "telegram": "simulator-telegram"}
PAGE = Path(__file__).resolve().parent.parent / "static" / "simulator.html"
MAX_TEXT = 10_000
LAST_WORDS_KEPT = 1000
POLL_SECONDS = 20.0


class SimulatorSender:
    """Delivers at once, and wakes whoever waits for a change (a reply recorded as sent, a message stored)."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self.sent: set[int] = set()
        self.version = 0
        self._ids = itertools.count(1)
        # The last message to a worker who erased their data, as their phone would show it: once it is sent,
        # nothing of them is left in the database to show it from. In memory only, the few most recent.
        self.last_words: dict[tuple[str, str], list[dict]] = {}

    async def send(self, pending: Pending) -> str:
        if pending.body.get("erase_after"):
            if len(self.last_words) >= LAST_WORDS_KEPT:
                self.last_words.pop(next(iter(self.last_words)))
            self.last_words.setdefault((pending.channel, pending.address), []).append({
                "id": pending.message_id, "direction": "out", "text": pending.body.get("text", ""),
                "buttons": pending.body.get("buttons", []), "status": "sent"})
        return f"SIM{pending.message_id}-{next(self._ids)}"

    def farewell(self, channel: str, address: str) -> list[dict]:
        """What was said to this erased worker, shown once (message ids are no guide: with the worker's
        messages deleted, SQLite may give the last one an id lower than theirs were)."""
        return self.last_words.pop((channel, address), [])

    async def changed(self, sent_message_id: int | None = None) -> None:
        """Called once a change is committed, so a waiter that looks again finds it."""
        async with self._changed:
            if sent_message_id is not None:
                self.sent.add(sent_message_id)
            self.version += 1
            self._changed.notify_all()

    async def wait_sent(self, message_ids: list[int], timeout: float) -> bool:
        """Wait until every one of ``message_ids`` was delivered."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.sent.issuperset(message_ids)), timeout)
            except TimeoutError:
                return False
        return True

    async def wait_change(self, since: int, timeout: float) -> None:
        """Wait until something changed after ``version`` was ``since`` (or the timeout)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version != since), timeout)


def make_inbound(kind: str, address: str, text: str, choice: str | None = None,
                 language_hint: str | None = None, message_id: str | None = None) -> Inbound:
    now = datetime.now(UTC)
    return Inbound(
        channel=CHANNELS[kind], address=address, provider_id=message_id or uuid.uuid4().hex,
        text=text, received_at=now, choice=choice, language_hint=language_hint,
    )


def routes() -> list[web.RouteDef]:
    """The /simulator page and its small JSON API."""

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE, headers={"Cache-Control": "no-store"})

    async def send(request: web.Request) -> web.Response:
        if request.content_type != "application/json":  # a cross-site form cannot send JSON without CORS
            raise web.HTTPUnsupportedMediaType(text="expected application/json")
        try:
            raw = await request.read()
            data = json.loads(raw.decode(request.charset or "utf-8"))
        except (ValueError, LookupError, RecursionError, web.RequestPayloadError):
            raise web.HTTPBadRequest(text="expected a JSON body") from None
        if too_deep(raw, data):
            raise web.HTTPBadRequest(text=f"a message nests at most {MAX_JSON_DEPTH} levels deep")
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        kind, address = data.get("channel"), data.get("address")
        text, choice = data.get("text", ""), data.get("choice")
        if kind not in CHANNELS or not isinstance(address, str) or not 0 < len(address) <= 64:
            raise web.HTTPBadRequest(text="channel must be sms or telegram, address a short string")
        if not isinstance(text, str) or len(text) > MAX_TEXT or (choice is not None and not isinstance(choice, str)):
            raise web.HTTPBadRequest(text=f"text must be a string of at most {MAX_TEXT} characters")
        language = data.get("language")
        if language is not None and (not isinstance(language, str) or len(language) > 16):
            raise web.HTTPBadRequest(text="language, when given, must be a short language code")
        message_id = data.get("id")
        if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 64):
            raise web.HTTPBadRequest(text="id, when given, must be a short string")
        inbound = make_inbound(kind, address, text, choice, language or None, message_id)
        try:
            reply = await request.app[INTAKE].submit(inbound)
        except Unavailable:
            raise web.HTTPServiceUnavailable(text="not stored; try again", headers={"Retry-After": "5"}) from None
        return web.json_response({"stored": not reply.duplicate, "replies": len(reply.outbound_ids)})

    async def messages(request: web.Request) -> web.Response:
        kind, address = request.query.get("channel"), request.query.get("address", "")
        if kind not in CHANNELS or not address:
            raise web.HTTPBadRequest(text="channel and address are required")
        try:
            after = int(request.query.get("after", "0"))
            wait = float(request.query.get("wait", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="after and wait must be numbers") from None
        if not 0 <= after < 2**62:
            raise web.HTTPBadRequest(text="after must be a message id")
        if not math.isfinite(wait) or wait < 0:
            raise web.HTTPBadRequest(text="wait must be a number of seconds from 0 to 20")
        wait = min(wait, POLL_SECONDS)
        database, sender = request.app[DATABASE], request.app[SIMULATOR]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            version = sender.version
            try:
                found = await database.call(_conversation, CHANNELS[kind], address, after)
            except RuntimeError:  # shutting down: the database is closed
                raise web.HTTPServiceUnavailable(text="shutting down") from None
            found = found or sender.farewell(CHANNELS[kind], address)
            gone = request.transport is None or request.transport.is_closing()
            if found or gone or loop.time() >= deadline:
                return web.json_response({"messages": found})
            await sender.wait_change(version, deadline - loop.time())

    return [
        web.get("/simulator", page),
        web.post("/simulator/api/send", send),
        web.get("/simulator/api/messages", messages),
    ]


def _conversation(store: Store, channel: str, address: str, after: int) -> list[dict]:
    """The worker's delivered messages after id ``after``, both ways, as the page shows them."""
    key = store.sealer.lookup_key(channel, address)
    row = store.db.execute("SELECT id FROM contacts WHERE channel = ? AND address_key = ?", [channel, key]).fetchone()
    if row is None:
        return []
    result = []
    for message in store.messages_for(row[0], after):
        if message["direction"] == "out" and message["status"] in ("queued", "sending"):
            break  # keep the order: show nothing after a reply still in the outbox
        body = message["body"]
        result.append({
            "id": message["id"], "direction": message["direction"], "text": body.get("text", ""),
            "buttons": body.get("buttons", []), "status": message["status"],
        })
    return result
