"""The simulator channel: a worker on SMS or Telegram, played in a browser page or in the terminal.

Messages go through the same pipeline and outbox as real ones; "sending" hands them to whoever watches
(the /simulator page long-polls, ``helpline chat`` waits for its replies).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bot.keys import DATABASE, INTAKE, SIMULATOR
from bot.messages import Inbound
from bot.store.sqlite import Pending, Store

CHANNELS = {"sms": "simulator-sms", "telegram": "simulator-telegram"}
PAGE = Path(__file__).resolve().parent.parent / "static" / "simulator.html"
MAX_TEXT = 10_000
POLL_SECONDS = 20.0


class SimulatorSender:
    """Delivers at once, and wakes whoever waits for a reply."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self.sent: set[int] = set()
        self._ids = itertools.count(1)

    async def send(self, pending: Pending) -> str:
        async with self._changed:
            self.sent.add(pending.message_id)
            self._changed.notify_all()
        return f"SIM{pending.message_id}-{next(self._ids)}"

    async def wait_sent(self, message_ids: list[int], timeout: float) -> bool:
        """Wait until every one of ``message_ids`` was delivered."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.sent.issuperset(message_ids)), timeout)
            except TimeoutError:
                return False
        return True

    async def wait_any(self, timeout: float) -> None:
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)


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
        try:
            data = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON body") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        kind, address = data.get("channel"), data.get("address")
        text, choice = data.get("text", ""), data.get("choice")
        if kind not in CHANNELS or not isinstance(address, str) or not 0 < len(address) <= 64:
            raise web.HTTPBadRequest(text="channel must be sms or telegram, address a short string")
        if not isinstance(text, str) or len(text) > MAX_TEXT or (choice is not None and not isinstance(choice, str)):
            raise web.HTTPBadRequest(text=f"text must be a string of at most {MAX_TEXT} characters")
        message_id = data.get("id")
        if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 64):
            raise web.HTTPBadRequest(text="id, when given, must be a short string")
        inbound = make_inbound(kind, address, text, choice, data.get("language") or None, message_id)
        reply = await request.app[INTAKE].submit(inbound)
        return web.json_response({"stored": not reply.duplicate, "replies": len(reply.outbound_ids)})

    async def messages(request: web.Request) -> web.Response:
        kind, address = request.query.get("channel"), request.query.get("address", "")
        if kind not in CHANNELS or not address:
            raise web.HTTPBadRequest(text="channel and address are required")
        try:
            after = int(request.query.get("after", "0"))
            wait = min(float(request.query.get("wait", "0")), POLL_SECONDS)
        except ValueError:
            raise web.HTTPBadRequest(text="after and wait must be numbers") from None
        database, sender = request.app[DATABASE], request.app[SIMULATOR]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            found = await database.call(_conversation, CHANNELS[kind], address, after)
            if found or loop.time() >= deadline:
                return web.json_response({"messages": found})
            await sender.wait_any(deadline - loop.time())

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
        if message["direction"] == "out" and message["status"] not in ("sent", "delivered"):
            break  # keep the order: show nothing after a reply still in the outbox
        body = message["body"]
        result.append({
            "id": message["id"], "direction": message["direction"], "text": body.get("text", ""),
            "buttons": body.get("buttons", []), "status": message["status"],
        })
    return result
