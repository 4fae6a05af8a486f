"""The delivery worker: sends what the pipeline put in the outbox, in order per worker, with retries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.clock import Clock
from bot.redact import scrub
from bot.store.sqlite import Database, Pending, Store

if TYPE_CHECKING:
    from bot.health import Health

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 25  # with backoff capped at 10 minutes: about 3 hours of trying
MAX_BACKOFF_SECONDS = 600.0
WINDOW = 64  # requests at each provider at once
# A send in doubt (a crash, a lost answer) is looked up at the provider before it is sent again:
SETTLE_SECONDS = 5.0  # not sooner than this after the doubt arose: a request from then may still be on its way
CLOCK_SKEW = timedelta(seconds=10)  # the provider's clock against ours (and its whole seconds): see README
LOOKUP_RETRY_SECONDS = 10.0  # while the provider cannot be asked, ask again this often...
LOOKUP_GIVE_UP = timedelta(minutes=2)  # ...and send again without knowing once it could not be asked this long


class SendError(Exception):
    """A send that failed. ``permanent`` ones are not retried; ``retry_after`` is the provider's wish; ``down``
    says, short and safe to show, why the whole channel seems down (network, 5xx, credentials), not only this
    message. Its text is scrubbed (:func:`bot.redact.scrub`): a provider's error may quote the worker's number,
    and this text is logged, stored and shown to staff."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None,
                 code: str | None = None, opted_out: bool = False, down: str | None = None,
                 in_doubt: bool = False):
        super().__init__(scrub(message))
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code
        self.opted_out = opted_out
        self.down = down
        self.in_doubt = in_doubt  # the request may have reached the provider: whether it took it is unknown


class Sender(Protocol):
    async def send(self, pending: Pending) -> str | None:
        """Send one message; return the provider's id for it, or raise :class:`SendError`."""


@runtime_checkable
class Lookup(Protocol):
    async def accepted_since(self, pending: Pending, since: datetime) -> list[str]:
        """The provider's ids of the messages it took since ``since`` that are this one (same recipient, same
        text), oldest first; raise :class:`SendError` when the provider cannot be asked."""


def backoff(attempts: int) -> float:
    """Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at 10 minutes."""
    return random.uniform(0.5, 1.0) * min(MAX_BACKOFF_SECONDS, 2.0**attempts)


class Delivery:
    """Reads the outbox and hands each message to its channel's :class:`Sender` (under `helpline serve` the
    providers' senders run in a process of their own: :mod:`bot.front_process`)."""

    def __init__(self, database: Database, senders: dict[str, Sender], clock: Clock,
                 on_sent: Callable[[Pending], Awaitable[None]] | None = None,
                 on_failed: Callable[[Pending, str], Awaitable[None]] | None = None,
                 lookups: dict[str, Lookup] | None = None, health: Health | None = None):
        self.database = database
        self.senders = senders
        self.clock = clock
        self.on_sent = on_sent
        self.on_failed = on_failed
        self.health = health  # told whether the outbox reads; says which channels may send (set up)
        # Channels whose provider can say whether it took a message (Twilio): their sends are marked in doubt
        # before they go, and a send in doubt is looked up there before it goes again.
        self.lookups = lookups or {}
        self._marked = frozenset(self.lookups)
        self._started_at = clock.now()
        self._lookup_failing_since: dict[str, datetime] = {}
        # Sends the provider took whose "sent" mark is not on disk yet (a full disk): message id -> (contact,
        # provider id). Never handed to a sender again; the mark is retried until it is written.
        self._accepted: dict[int, tuple[int, str | None]] = {}
        self._unmarked_warned = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._writer: asyncio.Task | None = None
        self._writes: asyncio.Queue = asyncio.Queue()
        self._at_provider: dict[str, set[int]] = {channel: set() for channel in senders}  # message ids

    def start(self) -> None:
        self._started_at = self.clock.now()
        self._writes = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_batches(), name="helpline-delivery-writes")
        self._task = asyncio.create_task(self._run(), name="helpline-delivery")

    async def _write(self, fn: Callable, *args) -> object:
        """Record an outcome (sent, retry, failed). Outcomes that finish together share one commit, and each
        caller goes on only once its own is on disk."""
        future = asyncio.get_running_loop().create_future()
        await self._writes.put((fn, args, future))
        return await future

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._writes.get()]
            while not self._writes.empty():
                batch.append(self._writes.get_nowait())
            try:
                results = await self.database.call(_apply, [(fn, args) for fn, args, _ in batch])
            except Exception as error:
                results = [error] * len(batch)
            for (_, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def wake(self) -> None:
        """New messages are in the outbox."""
        self._wake.set()

    async def stop(self, flush_seconds: float = 5.0) -> None:
        """Send what is due for up to ``flush_seconds``, then stop; the rest stays for the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, flush_seconds)
            except TimeoutError:
                log.warning("outbox not flushed within %.0f s; the rest is sent at next start", flush_seconds)
            self._task = None
        if self._writer is not None:
            while not self._writes.empty():  # outcomes of sends that finished: record them before closing
                await asyncio.sleep(0.01)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def _run(self) -> None:
        """Start a send for every worker with a message due and none in flight, up to :data:`WINDOW` requests
        at each provider. A slow or paced send (a staff group at Telegram's 20 a minute) holds up only its
        own worker, and a backlog on one channel never holds up another. A worker's delivery lasts until its
        outcome is on disk (then their next message may go); the provider's room frees as soon as it answers."""
        await self._report_unconfigured()
        in_flight: dict[int, asyncio.Task] = {}
        while True:
            self._wake.clear()
            room = {channel: WINDOW - len(sending) for channel, sending in self._at_provider.items()
                    if len(sending) < WINDOW and (self.health is None or self.health.usable(channel))}
            due: list[Pending] = []
            if room:
                busy = frozenset(in_flight)
                if self._accepted:  # their "sent" mark is not on disk yet: not to be read (and sent) again
                    busy = busy.union(contact for contact, _ in self._accepted.values())
                try:
                    due, unmarked = await self.database.call(_due, self.clock.now(), room, busy, self._marked)
                except Exception:
                    log.exception("outbox read failed")
                    if self.health is not None:
                        self.health.outbox_read(False)
                else:
                    if self.health is not None:
                        self.health.outbox_read(True)
                    if unmarked is not None and time.monotonic() - self._unmarked_warned > 60:
                        self._unmarked_warned = time.monotonic()
                        log.error("cannot mark sends in doubt (%r); sending anyway: if the bot stops now, these "
                                  "few may go twice", unmarked)
            for pending in due:
                self._at_provider[pending.channel].add(pending.message_id)
                task = asyncio.create_task(self._deliver_logged(pending))
                in_flight[pending.contact_id] = task
                task.add_done_callback(lambda _t, p=pending: self._finished(in_flight, p))
            if self._stopping and not due and not in_flight:
                return
            if not due:  # until a new message, a finished send, or a retry's time
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def _finished(self, in_flight: dict[int, asyncio.Task], pending: Pending) -> None:
        in_flight.pop(pending.contact_id, None)
        self._answered(pending)  # (a no-op if the provider answered) wakes the loop: their next message may go

    def _answered(self, pending: Pending) -> None:
        self._at_provider[pending.channel].discard(pending.message_id)
        self._wake.set()  # room at the provider for another worker's message

    async def _report_unconfigured(self) -> None:
        try:
            waiting = await self.database.call(Store.outbox_channels)
        except Exception:
            log.exception("outbox read failed")
            return
        for channel, count in waiting.items():
            if channel not in self.senders:
                log.warning("%d messages wait in the outbox for channel %s, which is not configured; they are "
                            "sent once it is", count, channel)

    async def _deliver_logged(self, pending: Pending) -> None:
        try:
            await self._deliver(pending)
        except Exception as error:  # a database error: the message stays in the outbox and is tried again
            log.error("delivery of message %s: %r", pending.message_id, error)
            await asyncio.sleep(1.0)

    async def _deliver(self, pending: Pending) -> None:
        now = self.clock.now()
        if pending.message_id in self._accepted:  # taken by the provider already: only its mark is missing
            await self._sent(pending, self._accepted[pending.message_id][1])
            return
        if pending.in_doubt_since is not None and pending.channel in self.lookups and await self._settled(pending):
            return  # (first: a reply the worker got before opting out is recorded as sent)
        if pending.opted_out and not pending.body.get("opt_out_notice"):
            await self._fail(pending, "the worker opted out; not sent")
            return
        try:
            provider_id = await self._send(pending)
        except SendError as error:
            if error.opted_out:
                await self._write(Store.opt_out, pending.contact_id, "provider", self.clock.now())
            if error.permanent or pending.attempts + 1 >= MAX_ATTEMPTS:
                await self._fail(pending, str(error))
                return
            delay = error.retry_after if error.retry_after is not None else backoff(pending.attempts)
            if error.in_doubt and pending.channel in self.lookups:
                delay = max(delay, SETTLE_SECONDS)
                log.warning("send of message %s: no answer (%s); the provider is asked whether it took it in "
                            "%.1f s, and it is sent again only if it did not", pending.message_id, error, delay)
            else:
                log.warning("send of message %s failed (%s); retry in %.1f s", pending.message_id, error, delay)
            await self._write(Store.mark_retry, pending.message_id, str(error), now + timedelta(seconds=delay),
                              error.in_doubt)
            return
        except Exception as error:  # a bug or an unexpected library error: retry, never drop
            log.exception("send of message %s raised", pending.message_id)
            await self._write(Store.mark_retry, pending.message_id, scrub(repr(error)),
                              now + timedelta(seconds=max(backoff(pending.attempts), SETTLE_SECONDS)), True)
            return
        await self._sent(pending, provider_id)

    async def _sent(self, pending: Pending, provider_id: str | None) -> None:
        """Record that the provider took this message. Until that is on disk (a full disk), it is kept here as
        taken and never handed to a sender again; the mark is retried, and after a restart the mark in doubt and
        the provider's answer cover it."""
        self._accepted[pending.message_id] = (pending.contact_id, provider_id)
        delay, failing_since = 0.5, None
        while True:
            try:
                await self._write(Store.mark_sent, pending.message_id, provider_id, self.clock.now())
                break
            except Exception as error:
                if failing_since is None or time.monotonic() - failing_since > 60:
                    log.error("message %s was taken by the provider but cannot be marked sent (%r); it is not "
                              "sent again, and the mark is retried", pending.message_id, error)
                    failing_since = time.monotonic()
                if self._stopping:
                    return  # in doubt on disk: looked up at the provider at the next start
                await asyncio.sleep(delay)
                delay = min(2 * delay, 10.0)
        del self._accepted[pending.message_id]
        if pending.body.get("erase_after"):
            await self._write(Store.forget_contact, pending.contact_id)
        if self.on_sent:
            await self.on_sent(pending)

    async def _settled(self, pending: Pending) -> bool:
        """A send of this message may be at the provider: ask it. True when that settled the message (it was
        taken: marked sent; or the provider cannot be asked yet: asked again later); False to send it now."""
        now = self.clock.now()
        if now < self._started_at + timedelta(seconds=SETTLE_SECONDS):  # a request from before may be on its way
            await self._write(Store.hold_in_doubt, pending.message_id, "in doubt: the provider is asked shortly",
                              self._started_at + timedelta(seconds=SETTLE_SECONDS))
            return True
        since = datetime.fromisoformat(pending.in_doubt_since or "") - CLOCK_SKEW
        try:
            found = await self.lookups[pending.channel].accepted_since(pending, since)
        except SendError as error:
            failing_since = self._lookup_failing_since.setdefault(pending.channel, now)
            if now - failing_since < LOOKUP_GIVE_UP:
                log.warning("message %s is in doubt and the provider cannot be asked whether it took it (%s); "
                            "asking again in %.0f s", pending.message_id, error, LOOKUP_RETRY_SECONDS)
                await self._write(Store.hold_in_doubt, pending.message_id, f"in doubt: {error}",
                                  now + timedelta(seconds=LOOKUP_RETRY_SECONDS))
                return True
            log.error("message %s is in doubt and the provider could not be asked for %.0f s (%s): sent again, "
                      "so the worker is not left without it", pending.message_id,
                      (now - failing_since).total_seconds(), error)
            return False
        self._lookup_failing_since.pop(pending.channel, None)
        if not found:
            log.info("message %s was in doubt; the provider did not take it: sending it", pending.message_id)
            return False
        taken = await self.database.call(Store.first_unrecorded, pending.channel, found)
        if taken is None:  # each is another message of ours with the same text: this one was not taken
            log.info("message %s was in doubt; the provider did not take it: sending it", pending.message_id)
            return False
        log.info("message %s was in doubt; the provider had taken it: marked sent, not sent again",
                 pending.message_id)
        await self._sent(pending, taken)
        return True

    async def _send(self, pending: Pending) -> str | None:
        try:
            return await self.senders[pending.channel].send(pending)
        finally:
            self._answered(pending)

    async def _fail(self, pending: Pending, reason: str) -> None:
        log.error("message %s to contact %s failed: %s", pending.message_id, pending.contact_id, reason)
        await self._write(Store.mark_failed, pending.message_id, reason, self.clock.now())
        if pending.body.get("erase_after"):
            await self._write(Store.forget_contact, pending.contact_id)
        if self.on_failed:
            await self.on_failed(pending, reason)


def _due(store: Store, now: datetime, room: dict[str, int], busy: frozenset[int],
         marked: frozenset[str] = frozenset()) -> tuple[list[Pending], Exception | None]:
    """What each channel with room may start sending now, read in one trip to the database thread; those of
    ``marked`` channels are marked in doubt in the same trip, before any goes. If the mark cannot be written (a
    full disk), they are returned all the same, with the error: a hotline must not fall silent for it."""
    due = [pending for channel, limit in room.items() for pending in store.due(now, limit, busy, channel)]
    going = [pending.message_id for pending in due if pending.channel in marked]
    if going:
        try:
            with store.transaction():
                store.mark_in_doubt(going, now)
        except sqlite3.Error as error:
            return due, error
    return due, None


def _apply(store: Store, writes: list[tuple[Callable, tuple]]) -> list[object]:
    """Run several outcome writes in one transaction, a savepoint each, so one failure spoils no other."""
    results: list[object] = []
    with store.transaction():
        for fn, args in writes:
            try:
                with store.transaction():
                    results.append(fn(store, *args))
            except Exception as error:
                results.append(error)
    return results
