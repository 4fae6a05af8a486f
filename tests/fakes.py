"""Fakes of the provider APIs: small aiohttp servers on loopback that record every call."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

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
    """Twilio's Messages API, and its Account resource (which the bot fetches at start). ``fail_next`` holds
    answers to give instead of success, in order."""

    calls: list[dict] = field(default_factory=list)
    account_fetches: int = 0
    fail_next: list[tuple[int, dict, dict]] = field(default_factory=list)
    server: TestServer | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event | None = None  # when set: each request is recorded, then answered once this is set
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
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

    async def _create(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        call = {"account": request.match_info["account"], "form": form, "auth": request.headers.get("Authorization")}
        self.calls.append(call)
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_next:
            status, body, headers = self.fail_next.pop(0)
            if isinstance(body.get("message"), str):  # Twilio quotes the request in some errors: "{To}"
                body = {**body, "message": body["message"].replace("{To}", form.get("To", ""))}
            call["accepted"] = False
            self.arrived.set()
            return web.json_response(body, status=status, headers=headers)
        call["accepted"] = True
        sid = f"SM{next(self._ids):032d}"
        call["sid"] = sid
        self.arrived.set()
        return web.json_response({
            "sid": sid, "status": "queued", "to": form.get("To"), "from": form.get("From"), "body": form.get("Body"),
            "account_sid": request.match_info["account"], "num_segments": "1", "direction": "outbound-api",
        }, status=201)


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
