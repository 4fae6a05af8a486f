"""`helpline serve` with one thing changed in this process: DIAGNOSTICS for the benchmark only, never for use.

Each variant patches, in this process only, one behaviour the benchmark found limiting, then runs the unchanged
``helpline serve``, so the benchmark can measure what that behaviour costs. Nothing in bot/ is changed.

``--unpaced``: Telegram pacing off. The helpline paces Telegram sends (python-telegram-bot's ``AIORateLimiter``:
30 messages/s overall, 20/min per group; and about 1 message/s per chat), as Telegram requires; that caps its
Telegram throughput at 30 replies/s whatever the machine. Unpaced, its per-message cost can be compared with a
python-telegram-bot baseline that has no pacing.

``--fix-wakeup``: the delivery worker's wake-up is not lost. ``Delivery._run`` reads the outbox and, when it is
empty, clears its wake-up event and waits up to 1 s; a message committed *while* that read was running sets the
event before the clear, so its wake-up is lost and it waits for the 1 s poll. This variant makes ``clear()`` a
no-op and consumes the event when ``wait()`` returns instead.

Run: ``python bench/serve_variant.py [--unpaced] [--fix-wakeup] --config C [--log-level L]``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def unpace() -> None:
    import telegram.ext

    import bot.channels.telegram as channel

    class Unpaced(telegram.ext.AIORateLimiter):
        def __init__(self, *args, **kwargs):
            kwargs.update(overall_max_rate=0, group_max_rate=0)
            super().__init__(*args, **kwargs)

    channel.AIORateLimiter = Unpaced
    channel.PER_CHAT_BURST = 10**9  # AsyncLimiter(1e9, 1e9): a bucket that never fills


class KeptWakeUp(asyncio.Event):
    """An event whose wake-up survives a ``clear()`` made after it was set: it is consumed by ``wait()``."""

    def clear(self) -> None:
        pass

    async def wait(self) -> bool:
        await super().wait()
        super().clear()
        return True


def fix_wakeup() -> None:
    import bot.outbox as outbox

    original = outbox.Delivery.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._wake = KeptWakeUp()

    outbox.Delivery.__init__ = __init__


def main() -> None:
    args = sys.argv[1:]
    if "--unpaced" in args:
        args.remove("--unpaced")
        unpace()
    if "--fix-wakeup" in args:
        args.remove("--fix-wakeup")
        fix_wakeup()
    from bot.cli import main as helpline

    helpline(["serve", *args], prog_name="helpline")


if __name__ == "__main__":
    main()
