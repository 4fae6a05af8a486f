"""Soak test of the helpline: bounded mixed traffic against `helpline serve` at a moderate rate, on loopback.

Starts the fake providers (bench/providers.py) and `helpline serve` (fresh temp database and key file). For
``--minutes``, simulated workers walk the flows (rights, complaint) at ``--rate`` messages/s, ``--telegram-share``
of them on Telegram, with a think time between messages; every ``--distress-every`` seconds a worker on SMS
sends a distress message, and a staff member claims the alert in the staff group 2 s after it arrives and
resolves the case 5 s later (as staff would: otherwise unclaimed urgent cases are alerted again and again).

Every ``--interval`` seconds it samples: serve's RSS (psutil), the outbox backlog (/healthz), messages in and out
and send failures (/metrics), webhook answers that were not 2xx, replies that never came, and requests the fake
providers refused as malformed; it prints a row, then a summary. Exit status 1 if memory grows steadily (more
than ``--max-growth``, default 20%, from just after warm-up to the end of the run) or any error appears.

Run: ``python bench/soak.py --minutes 30`` (``--minutes 1`` for a try). Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from bench import harness  # noqa: E402
from bench.loadgen import Arrivals, Load, Target  # noqa: E402
from bench.walks import Calibration, Mix, distress  # noqa: E402

METRIC_RE = re.compile(r'^(helpline_[a-z_]+?)(?:_total)?(?:\{channel="([a-z-]+)"\})? ([0-9.e+-]+)$')


def parse_metrics(text: str) -> dict:
    values: dict = {}
    for line in text.splitlines():
        match = METRIC_RE.match(line)
        if match:
            name, channel, value = match.groups()
            key = f"{name}:{channel}" if channel else name
            values[key] = values.get(key, 0.0) + float(value)
    return values


def total(metrics: dict, name: str) -> int:
    return int(sum(v for k, v in metrics.items() if k == name or k.startswith(name + ":")))


async def soak(args: argparse.Namespace) -> int:
    machine = harness.Machine.describe()  # the code as serve starts with it (others may commit meanwhile)
    work = harness.new_workdir("helpline-soak-")
    seconds = args.minutes * 60
    providers, provider_url, events_port = await harness.start_providers(work, seconds + 300)
    arrivals = Arrivals()
    await arrivals.connect(events_port)
    port = harness.free_port()
    config = harness.write_config(work, port, provider_url)
    calibration = Calibration(config)
    calibration.run()
    serve = harness.start_serve(work, config)
    base = f"http://127.0.0.1:{port}"
    rows: list[dict] = []
    staff_tasks: set[asyncio.Task] = set()
    staff_errors = 0
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=500),
                                    timeout=aiohttp.ClientTimeout(total=60))
    try:
        startup = await harness.wait_healthy(session, base, serve)
        print(f"helpline soak: {args.minutes:g} min at {args.rate:g} msg/s ({args.telegram_share:.0%} Telegram), a "
              f"distress message every {args.distress_every:g} s; serve pid {serve.pid} up in {startup:.1f} s; "
              f"work folder {work}", flush=True)
        target = Target(session, base)
        flows = Load(target, arrivals, calibration, Mix(0.0), telegram_share=args.telegram_share, reply_timeout=60)
        danger = Load(target, arrivals, calibration, Mix(0.0), reply_timeout=60)

        def on_alert(reference: str) -> None:
            async def play() -> None:
                nonlocal staff_errors
                await asyncio.sleep(2.0)
                if not 200 <= await target.staff_press(f"claim:{reference}") < 300:
                    staff_errors += 1
                await asyncio.sleep(5.0)
                if not 200 <= await target.staff_press(f"resolve:{reference}") < 300:
                    staff_errors += 1
            task = asyncio.get_running_loop().create_task(play())
            staff_tasks.add(task)
            task.add_done_callback(staff_tasks.discard)

        arrivals.on_alert = on_alert
        sampler = harness.Sampler(serve.pid, interval=1.0).start()
        started = time.monotonic()

        async def distress_loop() -> None:
            tasks = []
            n = 0
            while time.monotonic() - started < seconds - 5 and n < 100000:
                worker = danger.new_worker(walk=distress())

                async def walk(worker=worker) -> None:
                    while not worker.done():
                        if not await danger.step(worker):
                            return
                tasks.append(asyncio.get_running_loop().create_task(walk()))
                n += 1
                await asyncio.sleep(args.distress_every)
            await asyncio.gather(*tasks)

        traffic = asyncio.get_running_loop().create_task(
            flows.open_loop(args.rate, seconds, think=(2.0, 6.0), drain=30))
        alarms = asyncio.get_running_loop().create_task(distress_loop())
        last = {"in": 0, "out": 0, "t": started, "lat": 0}
        header = (f"{'time':>6} {'rss MB':>7} {'backlog':>7} {'in/s':>6} {'out/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
                  f"{'non-2xx':>7} {'lost':>5} {'send fail':>9} {'refused':>7} {'staff msgs':>10} {'others':>6}")
        print(header, flush=True)
        cpu = harness.CpuWindow(serve=serve.pid).start()
        while True:
            await asyncio.sleep(max(0.0, started + (len(rows) + 1) * args.interval - time.monotonic()))
            now = time.monotonic()
            backlog, metrics, refused = None, {}, 0
            with contextlib.suppress(Exception):
                async with session.get(f"{base}/healthz") as response:
                    backlog = (await response.json()).get("outbox_backlog")
            with contextlib.suppress(Exception):
                async with session.get(f"{base}/metrics") as response:
                    metrics = parse_metrics(await response.text())
            with contextlib.suppress(Exception):
                async with session.get(f"{provider_url}/stats") as response:
                    stats = await response.json()
                    refused = stats.get("twilio_refused", 0) + stats.get("telegram_refused", 0)
            cpu.stop()
            others = cpu.share().get("others", 0.0)
            cpu = harness.CpuWindow(serve=serve.pid).start()
            messages_in, messages_out = total(metrics, "helpline_messages_in"), total(metrics, "helpline_messages_out")
            latencies = [lat for _, lat in flows.stats.latencies[last["lat"]:]]
            row = {"t": round(now - started), "rss_mb": harness.mb(sampler.sample()), "backlog": backlog,
                   "in_per_s": round((messages_in - last["in"]) / (now - last["t"]), 1),
                   "out_per_s": round((messages_out - last["out"]) / (now - last["t"]), 1),
                   "p50_ms": harness.summary_ms(latencies)["p50_ms"], "p99_ms": harness.summary_ms(latencies)["p99_ms"],
                   "non_2xx": flows.stats.errors + danger.stats.errors + staff_errors,
                   "lost": flows.stats.timeouts + danger.stats.timeouts,
                   "send_failures": total(metrics, "helpline_send_failures"), "refused": refused,
                   "alerts": len(arrivals.alert_times), "others_cores": round(others, 2)}
            last = {"in": messages_in, "out": messages_out, "t": now, "lat": len(flows.stats.latencies)}
            rows.append(row)
            print(f"{row['t']:>6} {row['rss_mb']:>7} {str(row['backlog']):>7} {row['in_per_s']:>6} "
                  f"{row['out_per_s']:>6} "
                  f"{row['p50_ms']:>7} {row['p99_ms']:>7} {row['non_2xx']:>7} {row['lost']:>5} "
                  f"{row['send_failures']:>9} {row['refused']:>7} {row['alerts']:>10} {row['others_cores']:>6}",
                  flush=True)
            if traffic.done() and alarms.done() and not staff_tasks:
                break
            if now - started > seconds + 120:  # a bound whatever happens
                break
        open_info = await traffic
        await alarms
        await sampler.stop()
    finally:
        await session.close()
        await arrivals.close()
        code = serve.stop()
        providers.stop()

    # Summary ---------------------------------------------------------------------------------------
    warm = max(1, min(len(rows) // 5, max(1, int(60 // args.interval))))  # after the first minute, or 20% of it
    after = [r["rss_mb"] for r in rows[warm:]] or [r["rss_mb"] for r in rows]
    first = sorted(after[:3])[len(after[:3]) // 2]
    final = sorted(after[-3:])[len(after[-3:]) // 2]
    growth = (final - first) / first if first else 0.0
    rises = sum(1 for a, b in zip(after, after[1:], strict=False) if b > a)
    steady = growth > args.max_growth
    last_row = rows[-1]
    errors = {"non_2xx": last_row["non_2xx"], "lost_replies": last_row["lost"],
              "send_failures": last_row["send_failures"], "provider_refused": last_row["refused"],
              "unanswered_after_drain": open_info["unanswered_after_drain"], "serve_exit_code": code}
    bad = {k: v for k, v in errors.items() if v and not (k == "serve_exit_code" and v in (0, -15))}
    summary = {"minutes": args.minutes, "rate": args.rate, "samples": len(rows), "warmup_samples": warm,
               "rss_mb_after_warmup": first, "rss_mb_end": final, "rss_mb_peak": max(r["rss_mb"] for r in rows),
               "memory_growth": round(growth, 3), "rises": f"{rises} of {max(0, len(after) - 1)} intervals",
               "max_backlog": max((r["backlog"] or 0) for r in rows), "messages_in": last["in"],
               "messages_out": last["out"], "alerts": last_row["alerts"], "errors": errors,
               "latency_all": harness.summary_ms([lat for _, lat in flows.stats.latencies]),
               "max_others_cores": max(r["others_cores"] for r in rows)}
    print("-" * 100)
    print(f"memory: {first} MB after warm-up -> {final} MB at the end ({growth:+.1%}; rose in {summary['rises']}), "
          f"peak {summary['rss_mb_peak']} MB")
    print(f"outbox backlog: max {summary['max_backlog']}; messages in {summary['messages_in']}, out "
          f"{summary['messages_out']}; staff-group messages (alerts, claims, resolves) {summary['alerts']}")
    print(f"latency (webhook -> reply at the fake provider): p50 {summary['latency_all']['p50_ms']} p99 "
          f"{summary['latency_all']['p99_ms']} max {summary['latency_all']['max_ms']} ms")
    print(f"errors: {errors}")
    verdict = 1 if steady or bad else 0
    print(("FAIL: " + ", ".join(filter(None, [f"memory grew {growth:+.1%}" if steady else "",
                                               f"errors {bad}" if bad else ""])))
          if verdict else "OK: no steady memory growth, no errors")
    out = Path(args.output) if args.output else Path(__file__).resolve().parent / "soak-results.json"
    out.write_text(json.dumps({"summary": summary, "samples": rows, "machine": machine},
                              indent=2) + "\n")
    print(f"results: {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second of ordinary traffic")
    parser.add_argument("--telegram-share", type=float, default=0.2, help="share of workers on Telegram")
    parser.add_argument("--distress-every", type=float, default=15.0,
                        help="seconds between distress messages (Telegram allows a group ~20 messages/min; each "
                             "distress makes 3: alert, claimed, resolved)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--max-growth", type=float, default=0.20, help="memory growth that fails the soak")
    parser.add_argument("--keep", action="store_true", help="keep the temp work folder")
    parser.add_argument("--output", help="where to write the JSON results (default bench/soak-results.json)")
    args = parser.parse_args()
    if args.minutes <= 0 or args.minutes > 24 * 60 or args.rate <= 0 or args.rate > 2000:
        parser.error("--minutes must be in (0, 1440] and --rate in (0, 2000]")
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
