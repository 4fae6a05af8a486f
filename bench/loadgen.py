"""The load generator: simulated workers walking the flows through the real webhooks, replies matched at the
fake providers by recipient and order.

One aiohttp ``ClientSession`` sends Twilio-signed SMS webhooks (``RequestValidator.compute_signature`` over
``public_url`` + path, as Twilio does) and Telegram updates with the secret header. The fake providers
(bench/providers.py) stream every reply's arrival with its CLOCK_MONOTONIC time; a worker's n-th reply is the
answer to the message that brought its expected reply count to n (counts from :class:`bench.walks.Calibration`,
which are all 1 with the current flows). Latency = reply arrival at the fake provider - webhook sent.

Two drivers, both bounded in count and time:

- :func:`closed_loop`: ``concurrency`` workers, each sends, waits for its reply, sends the next step (saturation).
- :func:`open_loop`: messages at a fixed ``rate`` for ``duration`` whatever the server does; each is sent by a
  worker whose previous reply came (after a think time), or by a new worker when none is ready. Latency counts
  from the *scheduled* send time, so a late generator shows up rather than hiding (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiohttp
from twilio.request_validator import RequestValidator

from bench import harness
from bench.prepopulate import address_for
from bench.walks import DISTRESS_TEXT, Calibration, Mix, Walk

_ids = itertools.count(1)
_addresses = itertools.count(20_000_000)
_tokens = itertools.count(1)


def new_address_index() -> int:
    return next(_addresses)


class Arrivals:
    """Replies seen by the fake providers, by recipient, and staff alerts, by the token they quote."""

    def __init__(self) -> None:
        self.times: dict[str, list[int]] = defaultdict(list)
        self.waiters: dict[str, tuple[int, asyncio.Future]] = {}
        self.alerts: dict[str, int] = {}
        self.alert_times: list[int] = []
        self.alert_waiters: dict[str, asyncio.Future] = {}
        self.on_alert = None  # called with a case reference for each alert with a Claim button (staff play)
        self.kinds: Counter = Counter()
        self._task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, port: int) -> None:
        reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._task = asyncio.get_running_loop().create_task(self._read(reader))
        await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            parts = line.decode().split()
            kind, recipient, moment = parts[0], parts[1], int(parts[2])
            self.kinds[kind] += 1
            if kind == "a":
                self.alert_times.append(moment)
                token = parts[3] if len(parts) > 3 else "-"
                reference = parts[4] if len(parts) > 4 else "-"
                if reference != "-" and self.on_alert is not None:
                    self.on_alert(reference)
                if token != "-" and token not in self.alerts:
                    self.alerts[token] = moment
                    waiter = self.alert_waiters.pop(token, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(moment)
                continue
            times = self.times[recipient]
            times.append(moment)
            waiter = self.waiters.get(recipient)
            if waiter is not None and len(times) >= waiter[0] and not waiter[1].done():
                waiter[1].set_result(None)

    async def wait(self, recipient: str, count: int, timeout: float) -> int | None:
        """The arrival time (ns) of the ``count``-th reply to ``recipient``, or None after ``timeout`` seconds."""
        times = self.times[recipient]
        if len(times) >= count:
            return times[count - 1]
        future = asyncio.get_running_loop().create_future()
        self.waiters[recipient] = (count, future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self.waiters.pop(recipient, None)
        return times[count - 1]

    async def wait_alerts(self, tokens: list[str], timeout: float) -> None:
        missing = [t for t in tokens if t not in self.alerts]
        if not missing:
            return
        loop = asyncio.get_running_loop()
        futures = [self.alert_waiters.setdefault(t, loop.create_future()) for t in missing]
        await asyncio.wait(futures, timeout=timeout)

    def extra_replies(self, expected: dict[str, int]) -> int:
        """Replies beyond what each worker expected (a wrong calibration, or a reply sent twice)."""
        return sum(max(0, len(self.times.get(r, ())) - n) for r, n in expected.items())


class Target:
    """Where the webhooks go: the helpline, or a baseline with the same routes."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session = session
        self.base = base
        self.validator = RequestValidator(harness.TWILIO_TOKEN)
        self.sms_url = f"{base}/twilio/sms"
        self.telegram_url = f"{base}/telegram/webhook"
        self.signed_url = harness.PUBLIC_URL + "/twilio/sms"

    async def sms(self, address: str, text: str) -> int:
        params = {
            "MessageSid": f"SM{next(_ids):032d}", "SmsSid": "x", "AccountSid": harness.ACCOUNT, "From": address,
            "To": harness.FROM_NUMBER, "Body": text, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
            "ApiVersion": "2010-04-01", "FromCountry": "MY",
        }
        headers = {"X-Twilio-Signature": self.validator.compute_signature(self.signed_url, params)}
        try:
            async with self.session.post(self.sms_url, data=params, headers=headers) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0

    async def staff_press(self, data: str, staff_id: int = 4242) -> int:
        """A staff member in the staff group presses a button under an alert (``claim:REF``, ``resolve:REF``)."""
        update_id = next(_ids)
        update = {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "chat_instance": "7", "data": data,
            "from": {"id": staff_id, "is_bot": False, "first_name": "Aye"},
            "message": {"message_id": 1, "date": 1767225600, "text": "alert",
                        "chat": {"id": harness.STAFF_GROUP, "type": "supergroup", "title": "Staff"}}}}
        return await self._post_update(update)

    async def _post_update(self, update: dict) -> int:
        try:
            async with self.session.post(self.telegram_url, data=json.dumps(update),
                                         headers={"X-Telegram-Bot-Api-Secret-Token": harness.SECRET,
                                                  "Content-Type": "application/json"}) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0

    async def telegram(self, chat: int, text: str, press: bool) -> int:
        update_id = next(_ids)
        user = {"id": chat, "is_bot": False, "first_name": "Worker", "language_code": "en"}
        if press:
            update = {"update_id": update_id, "callback_query": {
                "id": f"cb{update_id}", "chat_instance": "42", "data": text, "from": user,
                "message": {"message_id": 5, "date": 1767225600, "chat": {"id": chat, "type": "private"},
                            "text": "menu"}}}
        else:
            update = {"update_id": update_id, "message": {
                "message_id": update_id, "date": 1767225600, "text": text,
                "chat": {"id": chat, "type": "private", "first_name": "Worker"}, "from": user}}
        return await self._post_update(update)


@dataclass
class Worker:
    channel: str
    index: int
    walk: Walk
    step: int = 0
    expected: int = 0

    @property
    def address(self) -> str:
        return address_for(self.channel, self.index)

    def done(self) -> bool:
        return self.step >= len(self.walk.steps)


@dataclass
class Stats:
    """What one run saw. Times are CLOCK_MONOTONIC nanoseconds."""

    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    latencies: list[tuple[int, float]] = field(default_factory=list)  # (sent at, seconds to the reply)
    completions: list[int] = field(default_factory=list)  # reply arrival times
    acks: list[int] = field(default_factory=list)  # 2xx answer times (ack mode)
    ack_latencies: list[float] = field(default_factory=list)
    timeouts: int = 0
    distress: dict[str, int] = field(default_factory=dict)  # token -> sent at
    expected: dict[str, int] = field(default_factory=dict)  # recipient -> replies expected in all
    lags: list[float] = field(default_factory=list)  # open loop: actual send - scheduled send, seconds
    walks: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def window(self, start_ns: int, end_ns: int) -> dict:
        """Throughput of completions in [start, end] and latency of messages sent in it."""
        seconds = (end_ns - start_ns) / 1e9
        done = sum(1 for t in self.completions if start_ns <= t <= end_ns)
        acked = sum(1 for t in self.acks if start_ns <= t <= end_ns)
        latencies = [lat for sent, lat in self.latencies if start_ns <= sent <= end_ns]
        return {"seconds": round(seconds, 2), "replies_per_s": round(done / seconds, 1) if seconds else 0.0,
                "acks_per_s": round(acked / seconds, 1) if seconds else 0.0, **harness.summary_ms(latencies)}


class Load:
    """Drives workers against one target."""

    def __init__(self, target: Target, arrivals: Arrivals, calibration: Calibration, mix: Mix, *,
                 telegram_share: float = 0.0, mode: str = "reply", reply_timeout: float = 30.0, seed: int = 7):
        self.target = target
        self.arrivals = arrivals
        self.calibration = calibration
        self.mix = mix
        self.telegram_share = telegram_share
        self.mode = mode  # "reply": wait for the reply at the fake provider; "ack": only the HTTP answer
        self.reply_timeout = reply_timeout
        self.random = random.Random(seed)
        self.stats = Stats()
        self.factory = None  # makes new workers instead of new_worker(), e.g. returning ones

    def new_worker(self, walk: Walk | None = None, channel: str | None = None, index: int | None = None) -> Worker:
        if self.factory is not None and walk is None and channel is None and index is None:
            return self.factory()
        if channel is None:
            channel = "telegram" if self.random.random() < self.telegram_share else "sms"
        walk = walk or self.mix.next()
        self.stats.walks[walk.name] += 1
        return Worker(channel, new_address_index() if index is None else index, walk)

    async def step(self, worker: Worker, scheduled_ns: int | None = None) -> bool:
        """Send the worker's next step and (in reply mode) wait for its reply. False: the walk cannot go on."""
        step = worker.walk.steps[worker.step]
        worker.step += 1
        text = step.text
        token = None
        if step.distress:
            token = f"d{next(_tokens)}"
            text = DISTRESS_TEXT.format(token=token)
        sent = time.monotonic_ns()
        if scheduled_ns is not None:
            self.stats.lags.append((sent - scheduled_ns) / 1e9)
        start = scheduled_ns if scheduled_ns is not None else sent
        if token:
            self.stats.distress[token] = start
        self.stats.sent += 1
        if worker.channel == "sms":
            status = await self.target.sms(worker.address, text)
        else:
            status = await self.target.telegram(int(worker.address), text, step.press)
        self.stats.statuses[status] += 1
        if not 200 <= status < 300:
            return False
        if self.mode == "ack":
            now = time.monotonic_ns()
            self.stats.acks.append(now)
            self.stats.ack_latencies.append((now - start) / 1e9)
            self.stats.latencies.append((start, (now - start) / 1e9))
            self.stats.completions.append(now)
            return True
        worker.expected += self.calibration.replies(worker.channel, worker.walk)[worker.step - 1]
        self.stats.expected[worker.address] = worker.expected
        self.stats.acks.append(time.monotonic_ns())
        arrived = await self.arrivals.wait(worker.address, worker.expected, self.reply_timeout)
        if arrived is None:
            self.stats.timeouts += 1
            return False
        self.stats.latencies.append((start, (arrived - start) / 1e9))
        self.stats.completions.append(arrived)
        return True

    async def closed_loop(self, concurrency: int, seconds: float, walks=None,
                          think: tuple[float, float] | None = None) -> None:
        """``concurrency`` workers for ``seconds``: each walk from a new worker, each step as soon as the last
        one's replies arrived, or a ``think`` time (seconds, uniform) after them."""
        deadline = time.monotonic() + seconds

        async def one() -> None:
            if think:  # people do not all start at once
                await asyncio.sleep(self.random.uniform(0, think[1]))
            while time.monotonic() < deadline:
                worker = self.new_worker(walk=walks()) if walks else self.new_worker()
                while not worker.done() and time.monotonic() < deadline:
                    if not await self.step(worker):
                        break
                    if think:
                        await asyncio.sleep(self.random.uniform(*think))

        await asyncio.gather(*(one() for _ in range(concurrency)))

    async def open_loop(self, rate: float, seconds: float, think: tuple[float, float] = (0.5, 1.5),
                        drain: float = 15.0, max_in_flight: int = 20000, stop: asyncio.Event | None = None) -> dict:
        """``rate`` messages a second for ``seconds`` (or until ``stop`` is set), then up to ``drain`` seconds for
        the last replies."""
        ready: list[tuple[float, int, Worker]] = []  # (ready at, tie, worker)
        tie = itertools.count()
        in_flight: set[asyncio.Task] = set()
        skipped = 0
        loop = asyncio.get_running_loop()

        async def one(worker: Worker, scheduled: int) -> None:
            if await self.step(worker, scheduled) and not worker.done():
                heapq.heappush(ready, (time.monotonic() + self.random.uniform(*think), next(tie), worker))

        start = time.monotonic()
        start_ns = time.monotonic_ns()
        k = 0
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds or (stop is not None and stop.is_set()):
                break
            due = min(int(elapsed * rate) + 1, int(seconds * rate))
            now = time.monotonic()
            while k < due:
                if len(in_flight) >= max_in_flight:  # a bound on memory and sockets: counted, not sent
                    skipped += due - k
                    k = due
                    break
                worker = heapq.heappop(ready)[2] if ready and ready[0][0] <= now else self.new_worker()
                task = loop.create_task(one(worker, start_ns + int(k / rate * 1e9)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                k += 1
            await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
        offered = time.monotonic() - start
        if in_flight:
            _done, pending = await asyncio.wait(set(in_flight), timeout=drain)
            for task in pending:
                task.cancel()
            unanswered = len(pending)
        else:
            unanswered = 0
        return {"scheduled": k, "seconds": round(offered, 2), "skipped": skipped, "unanswered_after_drain": unanswered}

    async def alerts(self, timeout: float) -> dict:
        """Staff-alert latency for every distress message sent, waiting up to ``timeout`` for missing ones."""
        await self.arrivals.wait_alerts(list(self.stats.distress), timeout)
        latencies = [(self.arrivals.alerts[t] - sent) / 1e9 for t, sent in self.stats.distress.items()
                     if t in self.arrivals.alerts]
        return {**harness.summary_ms(latencies), "sent": len(self.stats.distress),
                "missing": len(self.stats.distress) - len(latencies)}
