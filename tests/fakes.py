"""Fakes of the provider APIs: small aiohttp servers on loopback that record every call."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer


class _FakeServer:
    """A loopback aiohttp server that records calls; subclasses add their routes and say what was sent."""

    server: TestServer | None
    arrived: asyncio.Event

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def sent(self) -> list:
        raise NotImplementedError

    async def start(self, port: int | None = None) -> str:
        app = web.Application()
        self.routes(app)
        self.server = TestServer(app, host="127.0.0.1", port=port)
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self.server:
            await self.server.close()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list:
        """What was sent, once at least ``count`` messages were."""
        async def enough() -> None:
            while len(self.sent()) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.sent()


@dataclass
class FakeTwilio(_FakeServer):
    """Twilio's Messages API: create (POST) and the list (GET, filtered and paged as Twilio does), and its Account
    resource (which the bot fetches at start). ``fail_next`` holds answers to give instead of success, in order;
    ``list_fail_next`` the same for the list."""

    calls: list[dict] = field(default_factory=list)
    account_fetches: int = 0
    fail_next: list[tuple[int, dict, dict]] = field(default_factory=list)
    server: TestServer | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event | None = None  # when set: each request is recorded, then answered once this is set
    latency: float = 0.0  # seconds between taking a message and answering (Twilio's own time, the network's)
    lost_answers: int = 0  # the next N messages are taken, but the connection breaks before the answer
    lost_requests: int = 0  # the next N requests break the connection before Twilio takes the message
    queued: bool = False  # taken messages stay queued (no date_sent yet), as behind a number's rate
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # Twilio's clock
    history: list[dict] = field(default_factory=list)  # every message Twilio holds, as its list shows them
    lists: list[dict] = field(default_factory=list)  # the list requests' queries
    list_fail_next: list[tuple[int, dict, dict]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
        app.router.add_get("/2010-04-01/Accounts/{account}/Messages.json", self._list)
        app.router.add_get("/2010-04-01/Accounts/{account}.json", self._account)

    async def _account(self, request: web.Request) -> web.Response:
        self.account_fetches += 1
        if not request.headers.get("Authorization", "").startswith("Basic "):
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        account = request.match_info["account"]
        return web.json_response({"sid": account, "owner_account_sid": account, "friendly_name": "Helpline",
                                  "status": "active", "type": "Full"})

    def sent(self) -> list[dict]:
        """The messages Twilio accepted."""
        return [call for call in self.calls if call["accepted"]]

    def message(self, to: str, body: str, sender: str = "+15550006666", created: datetime | None = None,
                sent: bool = True, service: str | None = None) -> dict:
        """Put a message in Twilio's records as if sent earlier (or by someone else); returns it."""
        created = created or self.now()
        sid = f"SM{next(self._ids):032d}"
        record = {"sid": sid, "account_sid": "", "to": to, "from": sender, "body": body,
                  "messaging_service_sid": service, "direction": "outbound-api", "num_segments": "1",
                  "status": "sent" if sent else "queued", "date_created": format_datetime(created, usegmt=True),
                  "date_updated": format_datetime(created, usegmt=True),
                  "date_sent": format_datetime(created, usegmt=True) if sent else None,
                  "_created": created, "_sent": created if sent else None}
        self.history.append(record)
        return record

    async def _create(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        call = {"account": request.match_info["account"], "form": form, "auth": request.headers.get("Authorization"),
                "accepted": False}
        self.calls.append(call)
        if self.hold is not None:
            await self.hold.wait()
        if self.lost_requests:
            self.lost_requests -= 1
            self.arrived.set()
            return _broken(request)
        if self.fail_next:
            status, body, headers = self.fail_next.pop(0)
            if isinstance(body.get("message"), str):  # Twilio quotes the request in some errors: "{To}"
                body = {**body, "message": body["message"].replace("{To}", form.get("To", ""))}
            self.arrived.set()
            return web.json_response(body, status=status, headers=headers)
        record = self.message(form.get("To", ""), form.get("Body", ""), form.get("From"), sent=not self.queued,
                              service=form.get("MessagingServiceSid"))
        record["account_sid"] = request.match_info["account"]
        call["accepted"] = True
        call["sid"] = record["sid"]
        self.arrived.set()
        if self.lost_answers:
            self.lost_answers -= 1
            return _broken(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        return web.json_response({**_shown(record), "status": "queued", "date_sent": None}, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        """`Read multiple Message resources`: To, From, DateSent (a date; ``DateSent<`` and
        ``DateSent>`` for on-or-before and on-or-after, which leave out messages not sent yet), PageSize (50 by
        default, at most 1,000), Page and PageToken, and ``next_page_uri`` while more remain."""
        query = request.query
        self.lists.append(dict(query))
        if self.list_fail_next:
            status, body, headers = self.list_fail_next.pop(0)
            return web.json_response(body, status=status, headers=headers)
        chosen = [m for m in self.history
                  if query.get("To", m["to"]) == m["to"] and query.get("From", m["from"]) == m["from"]]
        for name, keep in (("DateSent", lambda day, date: day == date), ("DateSent<", lambda day, date: day <= date),
                           ("DateSent>", lambda day, date: day >= date)):
            if name in query:
                chosen = [m for m in chosen if m["_sent"] is not None
                          and keep(m["_sent"].date().isoformat(), query[name][:10])]
        # Sorted by DateSent, newest first, as Twilio documents; where it puts messages not sent yet it does not
        # say: here last, the worst case for a reader that stops early.
        chosen.sort(key=lambda m: (m["_sent"] is not None, m["_sent"] or m["_created"], m["sid"]), reverse=True)
        size = min(int(query.get("PageSize", 50)), 1000)
        number = int(query.get("Page", 0))
        page = chosen[number * size:(number + 1) * size]
        path = request.path
        filters = {name: value for name, value in query.items() if name not in ("Page", "PageSize", "PageToken")}

        def uri(n: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': size, 'Page': n, 'PageToken': f'PA{n}'})}"

        return web.json_response({
            "messages": [_shown(m) for m in page], "page": number, "page_size": size, "start": number * size,
            "end": number * size + max(len(page) - 1, 0), "uri": uri(number), "first_page_uri": uri(0),
            "next_page_uri": uri(number + 1) if (number + 1) * size < len(chosen) else None,
            "previous_page_uri": uri(number - 1) if number else None,
        })


def _shown(record: dict) -> dict:
    return {key: value for key, value in record.items() if not key.startswith("_")}


def _broken(request: web.Request) -> web.Response:
    """The connection breaks: the client gets no answer."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=500)


def twilio_error(status: int, code: int, message: str) -> tuple[int, dict, dict]:
    return status, {"code": code, "message": message, "more_info": "", "status": status}, {}


def invalid_number() -> tuple[int, dict, dict]:
    """Twilio's real answer to a message for a number it cannot send to: it quotes the number."""
    return 400, {"code": 21211, "message": "The 'To' number {To} is not a valid phone number.",
                 "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}, {}


@dataclass
class FakeTelegram(_FakeServer):
    """The Telegram Bot API (python-telegram-bot posts form-encoded bodies). ``fail_next`` holds
    (status, description, parameters) answers to give to sendMessage instead of success."""

    calls: list[tuple[str, dict]] = field(default_factory=list)
    fail_next: list[tuple[int, str, dict]] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    stalled: asyncio.Event | None = None  # while set to an unset Event, sendMessage answers only once it is set
    rejects_token: bool = False  # while True, every method answers 401 Unauthorized, as for a revoked token
    server: TestServer | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(100))

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bot{token}/{method}", self._method)

    def called(self, method: str) -> list[dict]:
        return [form for name, form in self.calls if name == method]

    def sent(self) -> list[dict]:
        return [form for form in self.called("sendMessage") if form.get("_accepted")]

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = dict(await request.post())
        self.calls.append((method, form))
        self.arrived.set()
        if self.rejects_token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if method == "getMe":
            return _ok({"id": 999, "is_bot": True, "first_name": "Helpline", "username": "HelplineTestBot"})
        if method == "getUpdates":
            updates, self.updates = self.updates, []
            if not updates:
                await asyncio.sleep(0.05)
            return _ok(updates)
        if method == "sendMessage":
            if self.stalled is not None:
                await self.stalled.wait()
            if self.fail_next:
                status, description, parameters = self.fail_next.pop(0)
                return web.json_response({"ok": False, "error_code": status, "description": description,
                                          "parameters": parameters}, status=status)
            form["_accepted"] = True
            form["_message_id"] = next(self._ids)
            return _ok({"message_id": form["_message_id"], "date": 1767225600,
                        "chat": {"id": int(form["chat_id"]), "type": "private"}, "text": form.get("text", "")})
        return _ok(True)


def _ok(result) -> web.Response:
    return web.json_response({"ok": True, "result": result})
