"""Benchmark of the helpline: `helpline serve` end to end, on loopback, against fake Twilio and Telegram.

Starts the fake providers (bench/providers.py) and, for each measurement, a fresh `helpline serve` (new temp
database and key file, Twilio and Telegram pointing at the fakes, staff alerts to a fake Telegram group,
``[security] messages_per_minute = 100000``). Simulated workers walk the real flows through the real webhooks
(Twilio-signed SMS, Telegram updates with the secret header); a reply counts when it reaches the fake provider.

Measures: (a) messages/s end to end at saturation (closed loop); (b) latency at 300 msg/s offered (open loop);
(c) staff-alert latency, alerts spaced for Telegram's group pacing, and a burst; (d) peak RSS of serve;
(e) database bytes per conversation; (f) the cost curve with 1,000 / 10,000 / 100,000 stored conversations, and
RSS with 10,000 active conversations. Baselines with the same generator: a bare aiohttp handler (the ceiling)
and a python-telegram-bot ConversationHandler bot with PicklePersistence. Prints PASS/MISS against the targets
(a benchmark, not a test: it exits 0 whatever the figures) and writes bench/results-{quick,full}.json.

Every request goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from bench import harness  # noqa: E402
from bench.loadgen import Arrivals, Load, Target  # noqa: E402
from bench.prepopulate import channel_for, database_bytes, prepopulate  # noqa: E402
from bench.walks import Calibration, Mix, distress  # noqa: E402

DISTRESS_SHARE = 0.05
FIXED_RATE = 300.0

PLANS = {
    "quick": dict(warmup=0.5, ceiling=2.5, saturation=3.0, saturation_distress=2.5, open_seconds=4.0,
                  open_distress_seconds=2.5, drain=3.0, spaced=2, spacing=3.2, burst=5, background=50.0,
                  hol_seconds=2.0, telegram=2.0, ptb_rate_limited=False, stages=(1000, 10000), real_max=200,
                  cost_seconds=2.5, cost_rate=150.0, active=1000, profile=0.0, concurrency=128,
                  telegram_workers=1600, telegram_ptb_workers=(400, 1600), quiet_wait=1.0),
    "full": dict(warmup=2.0, ceiling=15.0, saturation=30.0, saturation_distress=20.0, open_seconds=60.0,
                 open_distress_seconds=20.0, drain=15.0, spaced=15, spacing=3.2, burst=30, background=50.0,
                 hol_seconds=10.0, telegram=20.0, ptb_rate_limited=True, stages=(1000, 10000, 100000), real_max=1000,
                 cost_seconds=20.0, cost_rate=150.0, active=10000, profile=20.0, concurrency=128,
                 telegram_workers=1600, telegram_ptb_workers=(400, 1600), quiet_wait=10.0),
}


@dataclass
class Server:
    name: str
    base: str
    proc: harness.Proc
    sampler: harness.Sampler
    folder: Path
    config: Path
    startup: float


def log(message: str) -> None:
    print(message, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.plan = dict(PLANS[self.mode])
        if args.profile_seconds is not None:
            self.plan["profile"] = args.profile_seconds
        self.work = harness.new_workdir()
        self.results: dict = {"mode": self.mode, "machine": harness.Machine.describe(),
                              "command": " ".join([Path(sys.executable).name, *sys.argv])}
        self.peak_rss: dict[str, int] = {}
        self.started = time.monotonic()
        previous = self.path()
        if args.merge and previous.exists():  # re-run some phases into an earlier run's results
            earlier = json.loads(previous.read_text())
            for key, value in earlier.items():
                if key not in ("machine", "command", "mode"):
                    self.results.setdefault(key, value)
            self.results["merged_from"] = {"command": earlier.get("command"),
                                           "machine": earlier.get("machine"), "seconds": earlier.get("seconds")}
            self.peak_rss = {k: int(v * 1e6) for k, v in earlier.get("peak_rss_mb", {}).items()}

    # Processes -----------------------------------------------------------------------------------

    async def setup(self) -> None:
        self.providers, self.provider_url, events_port = await harness.start_providers(self.work, 1800)
        self.arrivals = Arrivals()
        await self.arrivals.connect(events_port)
        config = harness.write_config(self.work, 1, self.provider_url)
        t = time.monotonic()
        self.calibration = Calibration(config)
        self.calibration.run()
        counts = Counter(n for counts in self.calibration.expected.values() for n in counts)
        log(f"calibration: {len(self.calibration.expected)} walks x channels through the bot's own pipeline in "
            f"{time.monotonic() - t:.1f} s; replies per step: {dict(counts)}")
        connector = aiohttp.TCPConnector(limit=2000, force_close=False)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.close()
        with contextlib.suppress(Exception):
            await self.arrivals.close()
        self.providers.stop()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def helpline(self, name: str, *, folder: Path | None = None,
                       config: Path | None = None, port: int | None = None, stop_timeout: float = 20.0):
        folder = folder or self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        if config is None:
            port = harness.free_port()
            config = harness.write_config(folder, port, self.provider_url)
        self.results.setdefault("others_cores_at_start", {})[name] = await self.quiet()
        proc = harness.start_serve(folder, config)
        try:
            async with self.watched(name, f"http://127.0.0.1:{port}", proc, folder, config) as server:
                try:
                    yield server
                finally:
                    self.peak_rss[name] = server.sampler.peak_rss
        finally:
            code = proc.stop(stop_timeout)  # a short timeout where alerts are left queued: no 5 s flush wait
            if code not in (0, None, -15, -9):
                log(f"  ! {name}: serve exited with {code}:\n{proc.tail()}")

    @contextlib.asynccontextmanager
    async def baseline(self, kind: str, rate_limiter: bool = False):
        folder = self.work / f"baseline-{kind}{'-rl' if rate_limiter else ''}"
        folder.mkdir(parents=True, exist_ok=True)
        port = harness.free_port()
        self.results.setdefault("others_cores_at_start", {})[folder.name] = await self.quiet()
        proc = harness.start_baseline(folder, kind, port, self.provider_url, rate_limiter=rate_limiter)
        try:
            async with self.watched(kind, f"http://127.0.0.1:{port}", proc, folder, folder) as server:
                yield server
        finally:
            proc.stop()

    @contextlib.asynccontextmanager
    async def watched(self, name: str, base: str, proc: harness.Proc, folder: Path, config: Path):
        """A started server, once it answers /healthz, with its memory sampled until the block ends."""
        startup = await harness.wait_healthy(self.session, base, proc)
        sampler = harness.Sampler(proc.pid).start()
        try:
            yield Server(name, base, proc, sampler, folder, config, startup)
        finally:
            await sampler.stop()

    def load(self, server: Server, mix: Mix, **kwargs) -> Load:
        return Load(Target(self.session, server.base), self.arrivals, self.calibration, mix, **kwargs)

    # Measurements --------------------------------------------------------------------------------

    async def quiet(self) -> float:
        """Wait (a bounded time) until other processes on the machine use under 0.3 cores: other people's test
        runs share these 2 cores. Returns the cores they used in the last look."""
        deadline = time.monotonic() + self.plan["quiet_wait"]
        mine = [p for p in (self.providers.pid, os.getpid())]
        while True:
            window = harness.CpuWindow(**{f"p{i}": pid for i, pid in enumerate(mine)}).start()
            await asyncio.sleep(0.3)
            window.stop()
            others = window.share().get("others", 0.0)
            if others < 0.3 or time.monotonic() >= deadline:
                return round(others, 2)

    async def closed(self, server: Server, load: Load, concurrency: int, seconds: float,
                     think: tuple[float, float] | None = None) -> dict:
        warmup = self.plan["warmup"] + (think[1] * 2 if think else 0.0)  # until the paced workers are all going
        cpu = harness.CpuWindow(serve=server.proc.pid, providers=self.providers.pid, generator=os.getpid())
        task = asyncio.get_running_loop().create_task(load.closed_loop(concurrency, warmup + seconds, think=think))
        await asyncio.sleep(warmup)
        start = time.monotonic_ns()
        cpu.start()
        server.sampler.reset_peak()
        await asyncio.sleep(seconds)
        end = time.monotonic_ns()
        cpu.stop()
        await task
        window = load.stats.window(start, end)
        staff = self.staff_messages_since(start)
        replies = window["replies_per_s"] * window["seconds"] if load.mode == "reply" else \
            window["acks_per_s"] * window["seconds"]
        result = {**window, "concurrency": concurrency, "errors": load.stats.errors, "timeouts": load.stats.timeouts,
                  "cores": {k: round(v, 2) for k, v in cpu.share().items()},
                  "serve_cpu_ms_per_msg": round(cpu.used["serve"] * 1000 / replies, 3) if replies else math.nan,
                  "peak_rss_mb": harness.mb(server.sampler.peak_rss), "walks": dict(load.stats.walks),
                  "staff_messages": staff}
        self.check_on_script(load, staff)
        return result

    def staff_messages_since(self, start_ns: int) -> int:
        return sum(1 for t in self.arrivals.alert_times if t >= start_ns)

    @staticmethod
    def check_on_script(load: Load, staff_messages: int) -> None:
        """Walks without distress bring no staff message: if some came, a walk went off its script (a worker
        who was not where the walk assumed), and the figures include staff-group pacing."""
        if staff_messages and not load.stats.distress:
            log(f"  ! {staff_messages} staff-group messages during walks without distress: some walk went off script")

    async def open(self, server: Server, load: Load, rate: float, seconds: float) -> dict:
        warmup = min(1.0, seconds / 4)
        cpu = harness.CpuWindow(serve=server.proc.pid, providers=self.providers.pid, generator=os.getpid())
        cpu.start()
        server.sampler.reset_peak()
        start = time.monotonic_ns()
        info = await load.open_loop(rate, seconds, drain=self.plan["drain"])
        cpu.stop()
        staff = self.staff_messages_since(start)
        self.check_on_script(load, staff)
        measured_from = start + int(warmup * 1e9)
        measured_to = start + int(seconds * 1e9)
        latencies = [lat for sent, lat in load.stats.latencies if measured_from <= sent <= measured_to]
        sent_in_window = info["scheduled"] * (seconds - warmup) / seconds if seconds else 0
        lost = load.stats.timeouts + info["unanswered_after_drain"]
        lags = sorted(load.stats.lags)
        done = len(load.stats.latencies)
        return {"rate": rate, **info, **harness.summary_ms(latencies), "lost": lost,
                "achieved_send_rate": round(info["scheduled"] / info["seconds"], 1) if info["seconds"] else 0,
                "generator_lag_p99_ms": round(harness.percentile(lags, 99) * 1000, 1) if lags else math.nan,
                "errors": load.stats.errors, "cores": {k: round(v, 2) for k, v in cpu.share().items()},
                "serve_cpu_ms_per_msg": round(cpu.used["serve"] * 1000 / done, 3) if done else math.nan,
                "peak_rss_mb": harness.mb(server.sampler.peak_rss), "answered_in_window": len(latencies),
                "sent_in_window": round(sent_in_window), "staff_messages": staff}

    async def backlog(self, server: Server) -> int | None:
        with contextlib.suppress(Exception):
            async with self.session.get(f"{server.base}/healthz") as response:
                return (await response.json()).get("outbox_backlog")
        return None

    # Phases --------------------------------------------------------------------------------------

    async def ceiling(self) -> None:
        log("\n[1] ceiling: bare aiohttp handler, empty TwiML, same signed SMS webhooks (closed loop, acks)")
        async with self.baseline("bare") as server:
            load = self.load(server, Mix(0.0), mode="ack")
            result = await self.closed(server, load, self.plan["concurrency"], self.plan["ceiling"])
        self.results["ceiling"] = result
        log(f"  {result['acks_per_s']} webhooks/s, ack p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms; cores "
            f"{result['cores']}")

    async def saturation(self) -> None:
        for key, share, seconds, label in (
                ("saturation_flows", 0.0, self.plan["saturation"], "flows only (menu, rights, complaint)"),
                ("saturation_distress", DISTRESS_SHARE, self.plan["saturation_distress"],
                 f"flows + {DISTRESS_SHARE:.0%} distress messages")):
            log(f"\n[2] helpline SMS at saturation, {label}: closed loop, {self.plan['concurrency']} workers")
            async with self.helpline(key, stop_timeout=2.0 if share else 20.0) as server:
                load = self.load(server, Mix(share))
                result = await self.closed(server, load, self.plan["concurrency"], seconds)
                result["outbox_backlog_after"] = await self.backlog(server)
                if share:
                    result["alerts"] = await load.alerts(2.0)
                result["database"] = database_bytes(server.folder / "helpline.db")
            self.results[key] = result
            log(f"  {result['replies_per_s']} msg/s end to end (acks {result['acks_per_s']}/s), latency p50 "
                f"{result['p50_ms']} p95 {result['p95_ms']} p99 {result['p99_ms']} ms; errors {result['errors']}, "
                f"timeouts {result['timeouts']}; serve {result['serve_cpu_ms_per_msg']} ms CPU/msg; cores "
                f"{result['cores']}; outbox after {result['outbox_backlog_after']}")
            if share:
                log(f"  staff alerts during it: {result['alerts']} (past Telegram's 20 a minute to a group, alerts "
                    "come as digests of case references without the worker's words, which this cannot match: "
                    "'missing' counts those)")

    async def fixed_rate(self) -> None:
        for key, share, seconds in (("open_flows", 0.0, self.plan["open_seconds"]),
                                    ("open_distress", DISTRESS_SHARE, self.plan["open_distress_seconds"])):
            if not seconds:
                continue
            label = "flows only" if not share else f"flows + {share:.0%} distress"
            log(f"\n[3] helpline SMS at {FIXED_RATE:.0f} msg/s offered for {seconds:.0f} s, {label} (open loop)")
            async with self.helpline(key, stop_timeout=2.0 if share else 20.0) as server:
                load = self.load(server, Mix(share), reply_timeout=seconds + self.plan["drain"])
                result = await self.open(server, load, FIXED_RATE, seconds)
                result["outbox_backlog_after"] = await self.backlog(server)
                if share:
                    result["alerts"] = await load.alerts(1.0)
            self.results[key] = result
            log(f"  sent {result['achieved_send_rate']}/s; latency p50 {result['p50_ms']} p95 {result['p95_ms']} p99 "
                f"{result['p99_ms']} max {result['max_ms']} ms; answered {result['answered_in_window']} of "
                f"~{result['sent_in_window']} in the window, lost {result['lost']}; generator lag p99 "
                f"{result['generator_lag_p99_ms']} ms; cores {result['cores']}; outbox after "
                f"{result['outbox_backlog_after']}")

    async def alerts(self) -> None:
        plan = self.plan
        log(f"\n[4] staff alerts: {plan['spaced']} spaced {plan['spacing']} s apart, then a burst of {plan['burst']}, "
            f"with {plan['background']:.0f} msg/s of ordinary SMS traffic")
        async with self.helpline("alerts", stop_timeout=2.0) as server:
            spaced = self.load(server, Mix(0.0), reply_timeout=120)
            burst = self.load(server, Mix(0.0), reply_timeout=120)
            background = self.load(server, Mix(0.0), reply_timeout=60)
            spaced_workers = [spaced.new_worker(walk=distress()) for _ in range(plan["spaced"])]
            burst_workers = [burst.new_worker(walk=distress()) for _ in range(plan["burst"])]

            async def prepare(load, worker):  # hi, English: the distress message is their third
                for _ in range(2):
                    await load.step(worker)

            await asyncio.gather(*(prepare(spaced, w) for w in spaced_workers),
                                 *(prepare(burst, w) for w in burst_workers))
            burst_wait = 20 + (plan["burst"] - 20) * 3.5 if plan["burst"] > 20 else 5 + plan["burst"] * 1.2
            total = 1.0 + plan["spaced"] * plan["spacing"] + 2.0 + burst_wait
            done = asyncio.Event()
            bg_task = asyncio.get_running_loop().create_task(background.open_loop(plan["background"], total,
                                                                                 drain=30, stop=done))
            await asyncio.sleep(1.0)
            t0 = time.monotonic()
            tasks = []
            for i, worker in enumerate(spaced_workers):
                await asyncio.sleep(max(0.0, t0 + i * plan["spacing"] - time.monotonic()))
                tasks.append(asyncio.get_running_loop().create_task(spaced.step(worker)))
            await asyncio.gather(*tasks)
            spaced_result = await spaced.alerts(10.0)
            await asyncio.sleep(max(0.0, t0 + plan["spaced"] * plan["spacing"] + 1.0 - time.monotonic()))
            burst_start = time.monotonic_ns()
            await asyncio.gather(*(burst.step(w) for w in burst_workers))
            burst_result = await burst.alerts(burst_wait)
            burst_end = max([self.arrivals.alerts.get(t, burst_start) for t in burst.stats.distress] or [burst_start])
            await asyncio.sleep(0.5)
            done.set()
            await bg_task
            before = [lat for sent, lat in background.stats.latencies if sent < burst_start]
            during = [lat for sent, lat in background.stats.latencies if burst_start <= sent <= burst_end]
            burst_replies = [lat for sent, lat in burst.stats.latencies if sent >= burst_start]
            result = {"spaced": spaced_result, "burst": burst_result,
                      "burst_seconds_to_last_alert": round((burst_end - burst_start) / 1e9, 1),
                      "burst_worker_replies": harness.summary_ms(burst_replies),
                      "background_before_burst": harness.summary_ms(before),
                      "background_during_burst": harness.summary_ms(during),
                      "background_lost": background.stats.timeouts, "outbox_backlog_after": await self.backlog(server),
                      "peak_rss_mb": harness.mb(server.sampler.peak_rss)}
        self.results["alerts"] = result
        log(f"  spaced: alert latency p50 {spaced_result['p50_ms']} p95 {spaced_result['p95_ms']} p99 "
            f"{spaced_result['p99_ms']} ms ({spaced_result['n']} of {spaced_result['sent']})")
        log(f"  burst of {plan['burst']}: alert latency p50 {burst_result['p50_ms']} p95 {burst_result['p95_ms']} p99 "
            f"{burst_result['p99_ms']} ms, last alert {result['burst_seconds_to_last_alert']} s after the burst "
            f"({burst_result['missing']} missing); the workers' own replies p50 "
            f"{result['burst_worker_replies']['p50_ms']} p99 {result['burst_worker_replies']['p99_ms']} ms")
        log(f"  ordinary traffic: p50/p99 {result['background_before_burst']['p50_ms']}/"
            f"{result['background_before_burst']['p99_ms']} ms before the burst, "
            f"{result['background_during_burst']['p50_ms']}/{result['background_during_burst']['p99_ms']} ms while "
            f"the burst's alerts drain")

    async def head_of_line(self) -> None:
        seconds = self.plan["hol_seconds"]
        rate = 100.0
        log(f"\n[4b] head of line: ordinary SMS at {rate:.0f} msg/s; for {seconds:.0f} s one Telegram worker presses "
            "buttons as fast as its replies come (Telegram paces a chat to ~1 message/s)")
        async with self.helpline("head_of_line") as server:
            background = self.load(server, Mix(0.0), reply_timeout=30)
            tapper = self.load(server, Mix(0.0), telegram_share=1.0, reply_timeout=30)
            lead = 2.0
            task = asyncio.get_running_loop().create_task(background.open_loop(rate, lead + seconds + 1.0, drain=10))
            await asyncio.sleep(lead)
            start = time.monotonic_ns()
            await tapper.closed_loop(1, seconds)
            end = time.monotonic_ns()
            await task
            before = [lat for sent, lat in background.stats.latencies if sent < start - int(0.5e9)]
            during = [lat for sent, lat in background.stats.latencies if start <= sent <= end]
            result = {"sms_before": harness.summary_ms(before), "sms_during": harness.summary_ms(during),
                      "telegram_worker": harness.summary_ms([lat for _, lat in tapper.stats.latencies]),
                      "telegram_messages": len(tapper.stats.latencies), "lost": background.stats.timeouts}
        self.results["head_of_line"] = result
        log(f"  SMS p50/p99 {result['sms_before']['p50_ms']}/{result['sms_before']['p99_ms']} ms before, "
            f"{result['sms_during']['p50_ms']}/{result['sms_during']['p99_ms']} ms while the Telegram worker taps "
            f"({result['telegram_messages']} Telegram replies, p50 {result['telegram_worker']['p50_ms']} ms)")

    async def telegram(self) -> None:
        """Telegram against python-telegram-bot. Workers read each reply and answer 1 to 2 s later (the
        pace Telegram asks bots to keep per chat, ~1 message a second), so what is compared is how many
        such workers one machine serves. Telegram also limits a bot to ~30 messages a second overall: as
        shipped (``[telegram] messages_per_second = 30``) both bots are capped there, so capacity is compared
        with the limit raised to 1,000 (a bot Telegram allows more, e.g. paid broadcasts) for ours and no
        limiter for PTB's. PTB slows down when overloaded, so it also runs with fewer workers and its best
        throughput is the baseline."""
        seconds, workers = self.plan["telegram"], self.plan["telegram_workers"]
        think = (1.0, 2.0)
        log(f"\n[5] Telegram, flows only, workers who answer each reply {think[0]:.0f}-{think[1]:.0f} s later, "
            f"{seconds:.0f} s each")
        variants = [("telegram_ours", "helpline, messages_per_second = 1000 (Telegram limit raised)", workers)]
        variants += [(f"telegram_ptb_{n}", "PTB ConversationHandler + PicklePersistence (no rate limiter)", n)
                     for n in self.plan["telegram_ptb_workers"]]
        variants.append(("telegram_ours_shipped", "helpline as shipped (Telegram's 30 messages/s overall)", workers))
        if self.plan["ptb_rate_limited"]:
            variants.append(("telegram_ptb_rate_limited", "PTB ConversationHandler + AIORateLimiter (30/s)",
                             workers))
        for key, label, count in variants:
            if key.startswith("telegram_ours"):
                folder = self.work / key
                folder.mkdir(parents=True, exist_ok=True)
                port = harness.free_port()
                config = harness.write_config(folder, port, self.provider_url,
                                              telegram_per_second=30 if key.endswith("shipped") else 1000)
                context = self.helpline(key, folder=folder, config=config, port=port)
            else:
                context = self.baseline("ptb", rate_limiter=key.endswith("rate_limited"))
            async with context as server:
                load = self.load(server, Mix(0.0), telegram_share=1.0, reply_timeout=60)
                result = await self.closed(server, load, count, seconds, think=think)
            result["label"] = f"{label}, {count:,} workers"
            self.results[key] = result
            log(f"  {result['label']}: {result['replies_per_s']} msg/s, p50 {result['p50_ms']} p99 "
                f"{result['p99_ms']} ms, {result['serve_cpu_ms_per_msg']} ms CPU/msg, peak RSS "
                f"{result['peak_rss_mb']} MB; errors {result['errors']}, timeouts {result['timeouts']}")
        runs = [self.results[f"telegram_ptb_{n}"] for n in self.plan["telegram_ptb_workers"]]
        self.results["telegram_ptb"] = max(runs, key=lambda run: run["replies_per_s"])

    async def cost_curve(self) -> None:
        plan = self.plan
        folder = self.work / "cost"
        folder.mkdir(parents=True, exist_ok=True)
        port = harness.free_port()
        config = harness.write_config(folder, port, self.provider_url)
        stored = 0
        curve = []
        log(f"\n[6] cost curve: stored conversations {', '.join(f'{n:,}' for n in plan['stages'])}; closed loop "
            f"{plan['concurrency']} workers and open loop {plan['cost_rate']:.0f} msg/s, {plan['cost_seconds']:.0f}"
            " s each; half the walks by returning workers")
        for stage in plan["stages"]:
            pre = prepopulate(config, stage - stored, real_max=plan["real_max"], real_seconds=60.0,
                              start_index=stored + 1, log=log)
            stored = stage
            size = database_bytes(folder / "helpline.db")
            # Returning workers on SMS only: a Telegram worker sending faster than ~1 message/s per chat is
            # paced, which holds up every other reply (see the head-of-line phase), not what this curve is about.
            pool = [i for i in range(1, stored + 1) if channel_for(i) == "sms"]
            random.Random(stage).shuffle(pool)

            def factory_for(load: Load, pool: list[int] = pool):
                def make():
                    if pool and load.random.random() < 0.5:
                        index = pool.pop()
                        return load.new_worker(walk=load.mix.returning(), channel="sms", index=index)
                    return load.new_worker(channel="sms")
                return make

            async def measure(server: Server) -> tuple[dict, dict]:
                closed_load = self.load(server, Mix(0.0))
                closed_load.factory = factory_for(closed_load)
                closed = await self.closed(server, closed_load, plan["concurrency"], plan["cost_seconds"])
                open_load = self.load(server, Mix(0.0), reply_timeout=plan["cost_seconds"] + plan["drain"])
                open_load.factory = factory_for(open_load)
                opened = await self.open(server, open_load, plan["cost_rate"], plan["cost_seconds"])
                return closed, opened

            async with self.helpline(f"cost-{stage}", folder=folder, config=config, port=port) as server:
                closed, opened = await measure(server)
                entry = {"stored": stage, "prepopulate": pre, "database": size, "closed": closed, "open": opened,
                         "startup_s": round(server.startup, 2)}
                if stage == 10000 or (stage == plan["stages"][-1] and "active" not in self.results):
                    entry["active"] = await self.active(server)
                    self.results["active"] = entry["active"]
                entry["rss_after_mb"] = harness.mb(server.sampler.sample())
                entry["peak_rss_mb"] = harness.mb(server.sampler.peak_rss)
            curve.append(entry)
            log(f"  {stage:>7,} stored ({harness.mb(size['bytes'])} MB, {size['bytes'] // max(1, size['workers'])} "
                f"B/conversation): {closed['replies_per_s']} msg/s at saturation, {closed['serve_cpu_ms_per_msg']} ms "
                f"CPU/msg, p50 {closed['p50_ms']} ms; at {plan['cost_rate']:.0f} msg/s p50 {opened['p50_ms']} p99 "
                f"{opened['p99_ms']} ms, lost {opened['lost']}; RSS {entry['rss_after_mb']} MB; cores "
                f"{closed['cores']} {opened['cores']}")
        self.results["cost_curve"] = curve

    async def active(self, server: Server) -> dict:
        count = self.plan["active"]
        rate = FIXED_RATE
        rss_before = server.sampler.sample()
        log(f"  {count:,} active conversations: {count:,} new workers (5% on Telegram) each start a conversation at "
            f"{rate:.0f} msg/s")
        load = self.load(server, Mix(0.0), telegram_share=0.05, reply_timeout=60)
        info = await load.open_loop(rate, count / rate, think=(1e9, 1e9), drain=30)
        await asyncio.sleep(1.0)
        rss_after = server.sampler.sample()
        result = {"workers": info["scheduled"], "answered": len(load.stats.latencies), "lost": load.stats.timeouts +
                  info["unanswered_after_drain"], "rss_before_mb": harness.mb(rss_before),
                  "rss_after_mb": harness.mb(rss_after), "peak_rss_mb": harness.mb(server.sampler.peak_rss),
                  **harness.summary_ms([lat for _, lat in load.stats.latencies])}
        log(f"  RSS {result['rss_before_mb']} MB before, {result['rss_after_mb']} MB after, peak "
            f"{result['peak_rss_mb']} MB ({result['answered']} answered, {result['lost']} lost)")
        return result

    async def profile(self) -> None:
        seconds = self.plan["profile"]
        if not seconds:
            return
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if not spy:
            log("\n[7] profile: py-spy is not installed (pip install py-spy); skipped")
            return
        log(f"\n[7] profile: py-spy record on serve and its front process for {seconds:.0f} s at saturation "
            f"(SMS flows + {DISTRESS_SHARE:.0%} distress, the mix of the throughput targets)")
        raw = self.work / "profile.raw"
        async with self.helpline("profile") as server:
            load = self.load(server, Mix(DISTRESS_SHARE))
            task = asyncio.get_running_loop().create_task(load.closed_loop(self.plan["concurrency"], seconds + 4))
            await asyncio.sleep(2)
            spy_proc = await asyncio.create_subprocess_exec(
                spy, "record", "--pid", str(server.proc.pid), "--duration", str(int(seconds)), "--rate", "100",
                "--format", "raw", "--full-filenames", "--threads", "--gil", "--subprocesses", "--output", str(raw),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            try:
                output, _ = await asyncio.wait_for(spy_proc.communicate(), seconds + 30)
            except TimeoutError:
                spy_proc.kill()
                output = b"timed out"
            await task
        if not raw.exists():
            log(f"  py-spy failed: {output.decode(errors='replace')[-500:]}")
            self.results["profile"] = {"error": output.decode(errors="replace")[-500:]}
            return
        profile = summarise_profile(raw.read_text())
        keep = Path(__file__).resolve().parent / f"profile-{self.mode}.txt"
        shutil.copyfile(raw, keep)
        profile["raw"] = str(keep.relative_to(harness.ROOT))
        self.results["profile"] = profile
        log(f"  {profile['samples']} samples; threads: {profile['threads']}")
        log("  self time by area: " + ", ".join(f"{k} {v}%" for k, v in profile["areas"].items()))
        log("  top functions (self):")
        for row in profile["self"][:15]:
            log(f"    {row['share']:5.1f}%  {row['function']}")
        log("  top bot functions (inclusive):")
        for row in profile["bot_inclusive"][:15]:
            log(f"    {row['share']:5.1f}%  {row['function']}")

    # Report --------------------------------------------------------------------------------------

    def verdicts(self) -> list[tuple[str, bool | None, str]]:
        r = self.results
        out: list[tuple[str, bool | None, str]] = []
        ceiling = r.get("ceiling", {}).get("acks_per_s", math.nan)
        for key, label in (("saturation_distress", "flows + 5% distress"), ("saturation_flows", "flows only")):
            if key in r:
                ours = r[key]["replies_per_s"]
                ratio = ours / ceiling if ceiling else math.nan
                out.append((f"SMS throughput >= 30% of bare aiohttp ({label})", ratio >= 0.30,
                            f"{ours} / {ceiling} = {ratio:.1%}"))
                out.append((f"SMS throughput >= 1,500 msg/s ({label})", ours >= 1500, f"{ours} msg/s"))
        for key, label in (("open_distress", "flows + 5% distress"), ("open_flows", "flows only")):
            if key in r:
                x = r[key]
                ok = x["p99_ms"] < 100 and x["lost"] == 0
                out.append((f"p99 < 100 ms at 300 msg/s ({label})", ok,
                            f"p99 {x['p99_ms']} ms, lost {x['lost']}, answered {x['answered_in_window']} of "
                            f"~{x['sent_in_window']}"))
        if "alerts" in r:
            s = r["alerts"]["spaced"]
            out.append(("staff-alert p99 < 500 ms (alerts spaced for Telegram's group pacing)",
                        s["p99_ms"] < 500 and s["missing"] == 0, f"p99 {s['p99_ms']} ms ({s['n']} alerts)"))
            b = r["alerts"]["burst"]
            out.append((f"staff-alert p99 < 500 ms (burst of {b['sent']}, paced by design: informative)",
                        b["p99_ms"] < 500 and b["missing"] == 0, f"p99 {b['p99_ms']} ms"))
        if "telegram_ptb" in r:
            ptb = r["telegram_ptb"]["replies_per_s"]
            if "telegram_ours" in r:
                ours = r["telegram_ours"]["replies_per_s"]
                out.append((">= 3x the PTB baseline on Telegram (both free of Telegram's 30/s; PTB at its best)",
                            ours >= 3 * ptb,
                            f"{ours} / {ptb} = {ours / ptb:.2f}x" if ptb else "baseline 0"))
        curve = r.get("cost_curve") or []
        if len(curve) >= 2:
            first, last = curve[0], curve[-1]
            cpu0, cpu1 = first["closed"]["serve_cpu_ms_per_msg"], last["closed"]["serve_cpu_ms_per_msg"]
            th0, th1 = first["closed"]["replies_per_s"], last["closed"]["replies_per_s"]
            p0, p1 = first["open"]["p50_ms"], last["open"]["p50_ms"]
            flat = cpu1 <= cpu0 * 1.25 and th1 >= th0 * 0.8
            out.append((f"flat per-message cost {first['stored']:,} -> {last['stored']:,} stored conversations "
                        "(CPU/msg within +25%, throughput within -20%)", flat,
                        f"CPU {cpu0} -> {cpu1} ms/msg, {th0} -> {th1} msg/s, p50 at {self.plan['cost_rate']:.0f}/s "
                        f"{p0} -> {p1} ms"))
        if "active" in r:
            a = r["active"]
            label = f"< 300 MB RSS with {a['workers']:,} active conversations"
            if a["workers"] < 10000:
                label += " (quick: fewer than 10,000)"
            out.append((label, a["peak_rss_mb"] < 300, f"peak {a['peak_rss_mb']} MB, after {a['rss_after_mb']} MB"))
        return out

    def report(self) -> None:
        r = self.results
        log("\n" + "=" * 100)
        m = r["machine"]
        log(f"machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}; mode {self.mode}; "
            f"{time.monotonic() - self.started:.0f} s")
        ceiling = r.get("ceiling", {}).get("acks_per_s")
        rows = []
        for key, label in (("saturation_flows", "SMS flows only"), ("saturation_distress", "SMS + 5% distress")):
            if key in r:
                x = r[key]
                rows.append((f"(a) {label}", f"{x['replies_per_s']} msg/s", f"p50 {x['p50_ms']} p99 {x['p99_ms']} ms",
                             f"{x['serve_cpu_ms_per_msg']} ms CPU/msg"))
        if ceiling:
            rows.append(("    ceiling: bare aiohttp", f"{ceiling} webhooks/s", "", ""))
        for key, label in (("open_flows", "SMS flows only"), ("open_distress", "SMS + 5% distress")):
            if key in r:
                x = r[key]
                rows.append((f"(b) 300 msg/s, {label}", f"p50 {x['p50_ms']} p95 {x['p95_ms']} p99 {x['p99_ms']} ms",
                             f"lost {x['lost']}", f"backlog after {x['outbox_backlog_after']}"))
        if "alerts" in r:
            a = r["alerts"]
            rows.append(("(c) staff alerts, spaced", f"p50 {a['spaced']['p50_ms']} p95 {a['spaced']['p95_ms']} p99 "
                         f"{a['spaced']['p99_ms']} ms", f"n {a['spaced']['n']}", ""))
            rows.append((f"(c) staff alerts, burst of {a['burst']['sent']}", f"p50 {a['burst']['p50_ms']} p95 "
                         f"{a['burst']['p95_ms']} p99 {a['burst']['p99_ms']} ms",
                         f"last after {a['burst_seconds_to_last_alert']} s",
                         f"others' p99 {a['background_during_burst']['p99_ms']} ms"))
        if "head_of_line" in r:
            h = r["head_of_line"]
            rows.append(("    one fast Telegram worker", f"SMS p99 {h['sms_before']['p99_ms']} -> "
                         f"{h['sms_during']['p99_ms']} ms", f"p50 {h['sms_before']['p50_ms']} -> "
                         f"{h['sms_during']['p50_ms']} ms", "head-of-line blocking"))
        ours_peaks = dict(self.peak_rss)
        if ours_peaks:
            name = max(ours_peaks, key=ours_peaks.get)
            rows.append(("(d) peak RSS of serve", f"{harness.mb(ours_peaks[name])} MB", f"in {name}", ""))
        for key in ("saturation_flows",):
            if key in r and "database" in r[key]:
                d = r[key]["database"]
                rows.append(("(e) database bytes/conversation", f"{d['bytes'] // max(1, d['workers'])} B",
                             f"{d['workers']} conversations, {d['messages']} messages", "after (a)"))
        for entry in r.get("cost_curve", []):
            d = entry["database"]
            rows.append((f"(f) {entry['stored']:>7,} stored", f"{entry['closed']['replies_per_s']} msg/s, "
                         f"{entry['closed']['serve_cpu_ms_per_msg']} ms CPU/msg",
                         f"p50/p99 {entry['open']['p50_ms']}/{entry['open']['p99_ms']} ms "
                         f"@ {self.plan['cost_rate']:.0f}/s",
                         f"{d['bytes'] // max(1, d['workers'])} B/conv, RSS {entry['rss_after_mb']} MB"))
        if "active" in r:
            a = r["active"]
            rows.append((f"(f) {a['workers']:,} active conversations", f"RSS {a['rss_after_mb']} MB",
                         f"peak {a['peak_rss_mb']} MB", ""))
        telegram_keys = ["telegram_ours", *(f"telegram_ptb_{n}" for n in self.plan["telegram_ptb_workers"]),
                         "telegram_ours_shipped", "telegram_ptb_rate_limited"]
        for key in telegram_keys:
            if key in r:
                x = r[key]
                rows.append((f"Telegram: {x['label'][:60]}", f"{x['replies_per_s']} msg/s",
                             f"p50 {x['p50_ms']} p99 {x['p99_ms']} ms", f"{x['serve_cpu_ms_per_msg']} ms CPU/msg"))
        width = max(len(row[0]) for row in rows) if rows else 10
        for row in rows:
            log(f"{row[0]:<{width}}  {row[1]:<36} {row[2]:<30} {row[3]}")
        ratios = []
        if ceiling and "saturation_distress" in r:
            ratios.append(f"ours/ceiling {r['saturation_distress']['replies_per_s'] / ceiling:.1%} (with distress)")
        if ceiling and "saturation_flows" in r:
            ratios.append(f"{r['saturation_flows']['replies_per_s'] / ceiling:.1%} (flows only)")
        if r.get("telegram_ptb", {}).get("replies_per_s"):
            ptb = r["telegram_ptb"]["replies_per_s"]
            if "telegram_ours" in r:
                ratios.append(f"ours/PTB {r['telegram_ours']['replies_per_s'] / ptb:.2f}x on Telegram")
        if ratios:
            log("ratios: " + "; ".join(ratios))
        log("-" * 100)
        verdicts = self.verdicts()
        self.results["verdicts"] = [{"target": t, "pass": ok, "figure": f} for t, ok, f in verdicts]
        for target, ok, figure in verdicts:
            log(f"{'PASS' if ok else 'MISS'}  {target}: {figure}")
        log("=" * 100)

    def path(self) -> Path:
        return Path(__file__).resolve().parent / f"results-{self.mode}.json"

    def save(self) -> Path:
        path = self.path()
        self.results["peak_rss_mb"] = {k: harness.mb(v) for k, v in self.peak_rss.items()}
        self.results["seconds"] = round(time.monotonic() - self.started, 1)
        path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        return path


def summarise_profile(text: str) -> dict:
    """py-spy raw stacks -> self and inclusive time per function, by thread and by area."""
    selfs: Counter = Counter()
    inclusive: Counter = Counter()
    threads: Counter = Counter()
    areas: Counter = Counter()
    total = 0
    frame_re = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")
    for line in text.splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = stack.split(";")
        if frames[0].startswith("process "):  # --subprocesses: serve's front process is sampled too
            frames = frames[1:]
        process = "front" if any("spawn_main" in frame for frame in frames[:5]) else "server"
        thread = frames[0]
        name = thread.split(":", 1)[1].strip() if ":" in thread else thread
        kind = "event loop" if name == "MainThread" else ("database" if "helpline-db" in name else name)
        threads[f"{process} {kind}"] += n
        frames = frames[1:] if thread.startswith("thread") else frames
        total += n
        seen = set()
        labels = []
        for frame in frames:
            match = frame_re.match(frame.strip())
            label = f"{match['func']} ({_short(match['file'])})" if match else frame.strip()
            labels.append(label)
        if labels:
            selfs[labels[-1]] += n
            areas[_area(frames[-1], frames)] += n
        for label in labels:
            if label not in seen:
                inclusive[label] += n
                seen.add(label)

    def table(counter: Counter, only=None) -> list[dict]:
        rows = [(f, c) for f, c in counter.most_common() if only is None or only(f)]
        return [{"function": f, "share": round(100 * c / total, 1)} for f, c in rows[:40]]

    return {"samples": total,
            "threads": {k: f"{100 * v / total:.0f}%" for k, v in threads.most_common()} if total else {},
            "areas": {k: round(100 * v / total, 1) for k, v in areas.most_common()} if total else {},
            "self": table(selfs), "inclusive": table(inclusive),
            "bot_inclusive": table(inclusive, lambda f: "(bot/" in f)}


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


AREAS = [("sqlite", ("sqlite_utils", "sqlite3", "bot/store/")), ("crypto (seal/unseal, HMAC)",
         ("cryptography", "bot/security.py", "hmac.py", "hashlib")),
         ("twilio client", ("twilio/",)), ("python-telegram-bot", ("telegram/",)),
         ("aiohttp", ("aiohttp/", "multidict", "yarl")), ("json", ("json/",)), ("logging", ("logging/",)),
         ("prometheus", ("prometheus_client",)), ("asyncio", ("asyncio/", "selectors.py", "concurrent/")),
         ("triage", ("bot/triage.py",)), ("flows & rendering", ("bot/flows/", "bot/render.py", "bot/sms.py",
                                                                "bot/i18n.py", "bot/pipeline.py", "gettext"))]


def _area(leaf: str, frames: list[str]) -> str:
    """The area a sample's time belongs to: by its leaf frame's file, else by the nearest known caller."""
    for frame in reversed(frames):
        for area, markers in AREAS:
            if any(marker in frame for marker in markers):
                return area
    return "other"


async def amain(args: argparse.Namespace) -> int:
    bench = Bench(args)
    log(f"helpline benchmark, {bench.mode} run; work folder {bench.work}")
    await bench.setup()
    try:
        phases = {"ceiling": bench.ceiling, "saturation": bench.saturation, "fixed": bench.fixed_rate,
                  "alerts": bench.alerts, "hol": bench.head_of_line, "telegram": bench.telegram,
                  "cost": bench.cost_curve, "profile": bench.profile}
        chosen = args.only.split(",") if args.only else list(phases)
        for name in chosen:
            began = time.monotonic()
            await phases[name]()
            bench.results.setdefault("phase_seconds", {})[name] = round(time.monotonic() - began, 1)
            bench.results.setdefault("phase_commits", {})[name] = harness.code_version()
    finally:
        await bench.teardown()
    bench.report()
    path = bench.save()
    log(f"results: {path.relative_to(harness.ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short phases, 1k and 10k stored conversations, 1,000 "
                                                             "active ones, no profile: under 2 minutes")
    parser.add_argument("--only", help="comma-separated phases: ceiling,saturation,fixed,alerts,hol,telegram,cost,"
                                       "profile")
    parser.add_argument("--profile-seconds", type=float, help="py-spy profile length (0: none; full run: 20)")
    parser.add_argument("--keep", action="store_true", help="keep the temp work folder (databases, logs)")
    parser.add_argument("--merge", action="store_true",
                        help="with --only: keep the other phases' figures from the last results file of this mode")
    args = parser.parse_args()
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
