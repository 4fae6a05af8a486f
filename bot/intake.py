"""Group commit: inbound messages wait briefly, are run through the pipeline in one transaction per batch,
and each submitter is answered only after its batch is committed to disk."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.messages import Inbound, Reply, scrubbed
from bot.pipeline import Pipeline
from bot.store.sqlite import Database, Store

log = logging.getLogger(__name__)

MAX_BATCH = 200


class Unavailable(Exception):
    """The message could not be stored; the provider should retry (HTTP 503)."""


class Intake:
    """Takes inbound messages from every channel into the one pipeline."""

    def __init__(self, database: Database, pipeline: Pipeline,
                 on_committed: Callable[[list[tuple[Inbound, Reply, float]]], None] | None = None):
        self.database = database
        self.pipeline = pipeline
        self.on_committed = on_committed
        self._queue: asyncio.Queue[tuple[Inbound, asyncio.Future[Reply], float]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="helpline-intake")

    async def submit(self, inbound: Inbound) -> Reply:
        """Store ``inbound`` and queue its replies; returns once that is committed. Raises :class:`Unavailable`."""
        return await self.enqueue(inbound)

    def enqueue(self, inbound: Inbound) -> asyncio.Future[Reply]:
        """`submit` without a coroutine: the returned future is done once ``inbound`` is committed (or has
        :class:`Unavailable` as its exception). For the front's messages, which need no task of their own."""
        if self._closing or self._task is None:
            raise Unavailable("shutting down")
        inbound = scrubbed(inbound)
        if not inbound.address or not inbound.provider_id:
            raise ValueError("an inbound message needs an address and a provider id")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((inbound, future, time.perf_counter()))  # the queue is unbounded: never full
        return future

    async def close(self) -> None:
        """Stop taking messages; finish those already taken."""
        self._closing = True
        if self._task is not None:
            await self._queue.put(None)  # type: ignore[arg-type]
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    await self._commit(batch)
                    return
                batch.append(more)
            await self._commit(batch)

    async def _commit(self, batch: list) -> None:
        inbounds = [inbound for inbound, _, _ in batch]
        try:
            replies = await self.database.call(self._process, inbounds)
        except Exception as error:  # the disk is full, the database is locked: nothing of the batch stored
            log.error("could not store %d inbound message(s): %s", len(batch), error)
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(Unavailable(str(error)))
            return
        done = []
        for (inbound, future, started), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(Unavailable(str(reply)))
            else:
                future.set_result(reply)
                done.append((inbound, reply, started))
        if self.on_committed:
            self.on_committed(done)

    def _process(self, store: Store, inbounds: list[Inbound]) -> list[Reply | Exception]:
        """One transaction for the batch, a savepoint per message: one message that cannot be stored does
        not hold back the others."""
        results: list[Reply | Exception] = []
        with store.transaction():
            for inbound in inbounds:
                try:
                    with store.transaction():
                        results.append(self.pipeline.handle(store, inbound))
                except Exception as error:
                    log.exception("could not store message %s on %s", inbound.provider_id, inbound.channel)
                    results.append(error)
        return results
