"""How the helpline is doing, for `/healthz` and `/metrics`: each provider channel's state, and whether the outbox
moves.

A provider's channel is set up here in the background (Telegram: the token and the webhook; Twilio: a look at
the account), tried again until it works, so a provider that is down or refuses its credentials at start takes
nothing else down. Until then its messages wait in the outbox (the delivery worker asks :meth:`Health.usable`).
The senders' outcomes say whether a channel still works afterwards, and the delivery worker says whether it can
read the outbox. One log line when a channel starts failing, one when it works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.outbox import Sender, SendError
from bot.store.sqlite import Pending, iso

log = logging.getLogger(__name__)

SETUP_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0)  # between tries of a channel's setup; then every minute
SETUP_SECONDS = 60.0  # one try that takes longer failed (a name that never resolves has no timeout of its own)
FAILED_SENDS = 3  # sends in a row that fail for the channel's sake (network, 5xx, credentials): it is failing
STUCK_SECONDS = 60.0  # a due message this long with nothing delivered on its working channel: the outbox is stuck


class ChannelDown(Exception):
    """A provider cannot be used now. ``reason`` is short and safe to show on /healthz (no token, no number);
    ``check`` tells the operator what to look at; ``retry_after`` is the provider's own wish, in seconds."""

    def __init__(self, reason: str, check: str = "", retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.check = check
        self.retry_after = retry_after


@dataclass
class ChannelHealth:
    """One provider's channel: its setup (``starting``, ``ok``, ``failing``) and its recent sends."""

    name: str
    since: datetime
    settings: str = ""  # what an operator checks when its sends fail, e.g. "[twilio] account_sid, ..."
    setup: str = "starting"
    setup_reason: str = ""
    failed_sends: int = 0
    send_reason: str = ""

    @property
    def state(self) -> str:
        if self.setup == "failing" or self.failed_sends >= FAILED_SENDS:
            return "failing"
        return self.setup

    @property
    def reason(self) -> str:
        return self.setup_reason if self.setup == "failing" else self.send_reason

    def shown(self) -> dict:
        """As /healthz shows it."""
        shown = {"state": self.state, "since": iso(self.since)}
        if self.state == "failing":
            shown["reason"] = self.reason
        return shown


class Health:
    """What the channels, the senders and the delivery worker report, and the verdict /healthz gives."""

    def __init__(self, clock: Clock, stuck_seconds: float = STUCK_SECONDS):
        self.clock = clock
        self.stuck_seconds = stuck_seconds
        self.channels: dict[str, ChannelHealth] = {}
        self.on_usable: Callable[[], None] | None = None  # the delivery worker's wake-up: a channel's messages may go
        self._started = clock.now()
        self._delivered: dict[str, datetime] = {}
        self._unreadable_since: datetime | None = None
        self._setups: set[asyncio.Task] = set()
        self._stuck: str | None = None  # the last verdict on the outbox, so that a change is logged once

    # Setting channels up ---------------------------------------------------------------------------

    def set_up(self, name: str, attempt: Callable[[], Awaitable[None]], settings: str = "") -> None:
        """Set a provider's channel up in the background: ``attempt`` (which raises :class:`ChannelDown` with what
        to check) is tried until it works, after 1, 2, 5, 15, 60 s, then every minute. ``settings`` name the
        config keys to check when its sends fail later."""
        self.channels[name] = ChannelHealth(name, self.clock.now(), settings)
        task = asyncio.get_running_loop().create_task(self._keep_trying(name, attempt), name=f"helpline-setup-{name}")
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    async def _keep_trying(self, name: str, attempt: Callable[[], Awaitable[None]]) -> None:
        channel = self.channels[name]
        for tries in itertools.count(1):
            try:
                await asyncio.wait_for(attempt(), SETUP_SECONDS)
            except ChannelDown as error:
                trouble = error
            except TimeoutError:
                trouble = ChannelDown(f"no answer within {SETUP_SECONDS:.0f} s", "the network and the api_base_url")
            except Exception as error:  # a bug or a library's surprise: its text may hold a token, so only its kind
                log.debug("setting up %s raised", name, exc_info=True)
                trouble = ChannelDown(f"unexpected {type(error).__name__} while setting it up",
                                      "the log at DEBUG level (--log-level DEBUG)")
            else:
                self._setup_worked(channel, tries)
                return
            delay = SETUP_DELAYS[min(tries, len(SETUP_DELAYS)) - 1]
            self._setup_failed(channel, trouble)
            await asyncio.sleep(max(delay, trouble.retry_after or 0.0))

    def _setup_failed(self, channel: ChannelHealth, trouble: ChannelDown) -> None:
        if channel.setup == "failing" and channel.setup_reason == trouble.reason:
            return  # the same trouble again: said already
        if channel.state != "failing":
            channel.since = self.clock.now()
        channel.setup, channel.setup_reason = "failing", trouble.reason
        check = f" Check {trouble.check}." if trouble.check else ""
        log.error("%s is failing: %s.%s Its messages wait in the outbox and the other channels go on; its setup is "
                  "tried again in the background (after 1, 2, 5, 15, 60 s, then every minute).",
                  channel.name, trouble.reason, check)

    def _setup_worked(self, channel: ChannelHealth, tries: int) -> None:
        was = channel.state
        channel.setup, channel.setup_reason = "ok", ""
        self._now_usable(channel, was)
        if was == "failing":
            log.warning("%s works again (set up after %d tries); the messages waiting for it go now",
                        channel.name, tries)

    def _now_usable(self, channel: ChannelHealth, was: str) -> None:
        if channel.state == "ok" and was != "ok":
            channel.since = self.clock.now()
            self._delivered[channel.name] = channel.since  # its backlog has a minute to start moving
            if self.on_usable is not None:
                self.on_usable()

    async def stop(self) -> None:
        for task in list(self._setups):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # What the delivery worker and the senders report -------------------------------------------------

    def usable(self, name: str) -> bool:
        """May messages be sent on this channel now? (Not while its setup has not worked: they wait.)"""
        channel = self.channels.get(name)
        return channel is None or channel.setup == "ok"

    def outbox_read(self, worked: bool) -> None:
        if worked:
            self._unreadable_since = None
        elif self._unreadable_since is None:
            self._unreadable_since = self.clock.now()

    def sent(self, name: str) -> None:
        """The provider accepted a message."""
        channel = self.channels.get(name)
        if channel is None or channel.failed_sends == 0:
            return
        was = channel.state
        channel.failed_sends, channel.send_reason = 0, ""
        self._now_usable(channel, was)
        if was == "failing" and channel.state == "ok":
            log.warning("%s works again: the provider accepted a message", name)

    def send_failed(self, name: str, reason: str) -> None:
        """A send failed for the channel's sake (the network, the provider's 5xx, credentials refused)."""
        channel = self.channels.get(name)
        if channel is None:
            return
        was = channel.state
        channel.failed_sends += 1
        channel.send_reason = reason
        if was != "failing" and channel.state == "failing":
            channel.since = self.clock.now()
            log.error("%s is failing: %d sends in a row failed (%s). Check the network, the provider's status and "
                      "%s. Its messages wait in the outbox and are tried again; the other channels go on.",
                      name, channel.failed_sends, reason, channel.settings or "its settings")

    def delivered(self, name: str) -> None:
        """A message on this channel was sent and marked so."""
        self._delivered[name] = self.clock.now()

    # The verdict ----------------------------------------------------------------------------------

    def shown(self) -> dict[str, dict]:
        return {name: channel.shown() for name, channel in sorted(self.channels.items())}

    def outbox_trouble(self, oldest_due: dict[str, datetime]) -> str | None:
        """Why the outbox is stuck, or None. Stuck: it could not be read for :data:`STUCK_SECONDS`, or a message
        has been due that long on a channel that works (by its own account) with nothing delivered on it.
        ``oldest_due`` is the oldest message due now on each channel that can send. A channel that is failing
        or starting is left out: its messages wait for it, and /healthz shows it."""
        now = self.clock.now()
        limit = now - timedelta(seconds=self.stuck_seconds)
        trouble = None
        if self._unreadable_since is not None and self._unreadable_since <= limit:
            trouble = f"the outbox could not be read for {(now - self._unreadable_since).total_seconds():.0f} s"
        else:
            for name, due in sorted(oldest_due.items()):
                channel = self.channels.get(name)
                if channel is not None and channel.state != "ok":
                    continue
                delivered = self._delivered.get(name, self._started)
                if due <= limit and delivered <= limit:
                    trouble = (f"a message on {name} has waited {(now - due).total_seconds():.0f} s and nothing was "
                               f"delivered on {name} for {(now - delivered).total_seconds():.0f} s")
                    break
        if (trouble is None) != (self._stuck is None):
            if trouble is not None:
                log.error("the outbox is stuck: %s; /healthz answers 503", trouble)
            else:
                log.warning("the outbox moves again")
        self._stuck = trouble
        return trouble


class WatchedSender:
    """A provider's sender as the delivery worker sees it: each outcome is reported to :class:`Health`."""

    def __init__(self, name: str, sender: Sender, health: Health):
        self.name = name
        self.sender = sender
        self.health = health

    async def send(self, pending: Pending) -> str | None:
        try:
            sent = await self.sender.send(pending)
        except SendError as error:
            if error.down:
                self.health.send_failed(self.name, error.down)
            raise
        self.health.sent(self.name)
        return sent
