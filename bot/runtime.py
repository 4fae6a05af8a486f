"""What every process of the bot sets up the same way: its event loop, and quiet provider libraries."""

from __future__ import annotations

import asyncio
import logging


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux and macOS): the same asyncio, with less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def quiet_libraries() -> None:
    """Provider libraries log request bodies (numbers, texts) at DEBUG, and the access log has addresses in
    query strings: keep them at WARNING, so no personal data reaches a log at any level."""
    for name in ("twilio", "telegram", "httpx", "httpcore", "aiohttp.access", "hpack"):
        logging.getLogger(name).setLevel(logging.WARNING)
