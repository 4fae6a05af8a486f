"""``helpline chat``: a worker in the terminal, on the same pipeline and database as the server."""

from __future__ import annotations

import asyncio
import sys

from bot.app import build_bot
from bot.channels.simulator import make_inbound
from bot.config import Config
from bot.store.sqlite import Store

REPLY_TIMEOUT = 10.0


async def run_chat(config: Config, kind: str, address: str, language: str | None,
                   lines=None, out=None) -> None:
    lines = lines if lines is not None else sys.stdin
    out = out or sys.stdout
    interactive = lines is sys.stdin and sys.stdin.isatty()
    bot = build_bot(config)
    await bot.start()
    try:
        if interactive:
            print(f"Talking to the helpline as a {kind} worker ({address}). Ctrl-D to quit.", file=sys.stderr)
        loop = asyncio.get_running_loop()
        while True:
            if interactive:
                print("> ", end="", flush=True, file=sys.stderr)
            line = await loop.run_in_executor(None, lines.readline)
            if not line:
                break
            reply = await bot.intake.submit(make_inbound(kind, address, line.rstrip("\r\n"), language_hint=language))
            await bot.simulator.wait_sent(reply.outbound_ids, REPLY_TIMEOUT)
            bodies = await bot.database.call(Store.bodies, reply.outbound_ids)
            if len(bodies) < len(reply.outbound_ids):  # the worker erased their data: only the last words are left
                bodies = bot.simulator.farewell(make_inbound(kind, address, "").channel, address)
            for body in bodies:
                print(show(kind, body), file=out, flush=True)
    finally:
        await bot.stop()


def show(kind: str, body: dict) -> str:
    """A reply as the channel shows it: SMS text as is; Telegram text with its buttons underneath."""
    text = body.get("text", "")
    buttons = body.get("buttons") or []
    if kind == "telegram" and buttons:
        text += "\n" + "  ".join(f"[{label}]" for label, _value in buttons)
    return f"{text}\n{'─' * 20}"

