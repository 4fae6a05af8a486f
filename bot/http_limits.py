"""Per-address limits on the HTTP side, and who a request's address is (the front passes requests on)."""

from __future__ import annotations

import socket

from aiohttp import web
from aiolimiter import AsyncLimiter

IP_LIMITERS = web.AppKey("ip_limiters", dict)
SIMULATOR_PER_MINUTE = 120
AUTH_FAILURES_PER_MINUTE = 30
FORWARDED_FOR = "X-Helpline-Forwarded-For"  # the client's address, on requests the front process passes on
MAX_JSON_DEPTH = 32  # a Telegram update nests about 6 deep; PTB and our own code walk it recursively


def too_deep(raw: bytes, data: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON body nests objects and lists more than ``limit`` deep: code that walks it recursively
    (python-telegram-bot's parser, ours) would hit Python's recursion limit, a 500 with a traceback thousands of
    lines long. Walked without recursion, and only when the body has more brackets than ``limit`` at all."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def client_address(request: web.Request) -> str:
    """Who sent a request: the front process's word for requests it passed on (they come over the server's
    private Unix socket, which only the front can reach), else the peer's address."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None and sock.family == socket.AF_UNIX:
        return request.headers.get(FORWARDED_FOR, "?")
    return request.remote or "?"


@web.middleware
async def limit_per_ip(request: web.Request, handler):
    """Per-address limits where an address means something: the simulator (a browser), and requests that
    fail authentication (someone guessing). Providers' own signed webhooks are never throttled here: one
    Twilio or Telegram address carries every worker."""
    limiters: dict = request.app[IP_LIMITERS]
    address = client_address(request)
    if len(limiters) > 50_000:
        limiters.clear()
    if request.path.startswith("/simulator/api/"):
        limiter = limiters.setdefault(("sim", address), AsyncLimiter(SIMULATOR_PER_MINUTE, 60))
        if not limiter.has_capacity():
            raise web.HTTPTooManyRequests(text="slow down", headers={"Retry-After": "60"})
        await limiter.acquire()
    try:
        return await handler(request)
    except (web.HTTPUnauthorized, web.HTTPForbidden):
        # Someone guessing signatures or secrets is slowed down; a valid request is never refused for it
        # (behind a proxy, every request has the proxy's address).
        failures = limiters.setdefault(("auth", address), AsyncLimiter(AUTH_FAILURES_PER_MINUTE, 60))
        if not failures.has_capacity():
            raise web.HTTPTooManyRequests(text="too many refused requests", headers={"Retry-After": "60"}) from None
        await failures.acquire()
        raise
