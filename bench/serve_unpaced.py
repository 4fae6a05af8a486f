"""`helpline serve` with Telegram pacing turned off: a DIAGNOSTIC for the benchmark only, never for use.

The helpline paces Telegram sends (python-telegram-bot's ``AIORateLimiter``: 30 messages/s overall, 20/min per
group; and about 1 message/s per chat), as Telegram requires. That caps its Telegram throughput at 30 replies/s
whatever the machine. To compare the bot's own per-message cost with a python-telegram-bot baseline that has no
pacing, this launcher patches, in this process only, the limits to "unlimited" and then runs the unchanged
``helpline serve``. Nothing in bot/ is changed.

Run: ``python bench/serve_unpaced.py --config C [--log-level L]`` (the same options as ``helpline serve``).
"""

from __future__ import annotations

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


def main() -> None:
    unpace()
    from bot.cli import main as helpline

    helpline(["serve", *sys.argv[1:]], prog_name="helpline")


if __name__ == "__main__":
    main()
