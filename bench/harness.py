"""Processes and measurements shared by bench/run.py and bench/soak.py: the fake providers, `helpline serve`
and the baselines as subprocesses on loopback, their memory and CPU, and the numbers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable

ACCOUNT = "AC" + "0" * 32
TWILIO_TOKEN = "12345678901234567890123456789012"
FROM_NUMBER = "+15550006666"
PUBLIC_URL = "https://helpline.bench.invalid"  # only ever used in signatures: nothing is sent there
TELEGRAM_TOKEN = "123456:BENCH-token"
SECRET = "bench-secret"
STAFF_GROUP = -1001234567890


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, port: int, provider_url: str, *, claim_timeout_minutes: int = 10,
                 telegram_per_second: int = 30) -> Path:
    """A serve config: Twilio and Telegram pointing at the fake providers, staff alerts to a group, the
    per-worker limit raised (simulated workers send fast), a fresh database and key file in ``folder``."""
    path = folder / "helpline.toml"
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\npublic_url = "{PUBLIC_URL}"\n'
        f'[storage]\ndatabase = "{folder / "helpline.db"}"\n'
        f'[twilio]\naccount_sid = "{ACCOUNT}"\nauth_token = "{TWILIO_TOKEN}"\nfrom_number = "{FROM_NUMBER}"\n'
        f'api_base_url = "{provider_url}"\n'
        f'[telegram]\ntoken = "{TELEGRAM_TOKEN}"\nwebhook_secret = "{SECRET}"\napi_base_url = "{provider_url}"\n'
        f'messages_per_second = {telegram_per_second}\n'
        f'[escalation]\ntelegram_chat_id = {STAFF_GROUP}\nclaim_timeout_minutes = {claim_timeout_minutes}\n'
        f'[security]\nmessages_per_minute = 100000\nkey_file = "{folder / "helpline.key"}"\n'
    )
    return path


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Proc:
    """A subprocess we started, stopped by its own pid only."""

    name: str
    popen: subprocess.Popen
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def tail(self, lines: int = 20) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _spawn(name: str, args: list[str], folder: Path) -> Proc:
    log_path = folder / f"{name}.log"
    handle = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
    popen = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=_env(), cwd=folder,
                             start_new_session=True)
    handle.close()
    return Proc(name, popen, log_path)


async def start_providers(folder: Path, max_seconds: float) -> tuple[Proc, str, int]:
    ready = folder / "providers.json"
    ready.unlink(missing_ok=True)
    proc = _spawn("providers", [PYTHON, str(BENCH / "providers.py"), "--ready-file", str(ready),
                                "--max-seconds", str(max_seconds)], folder)
    for _ in range(200):
        if ready.exists() and ready.read_text():
            ports = json.loads(ready.read_text())
            return proc, f"http://127.0.0.1:{ports['http']}", ports["events"]
        if not proc.alive():
            break
        await asyncio.sleep(0.05)
    raise RuntimeError(f"fake providers did not start:\n{proc.tail()}")


def start_serve(folder: Path, config: Path, *, log_level: str = "WARNING") -> Proc:
    """`helpline serve` (``python -m bot serve``), unchanged."""
    args = [PYTHON, "-m", "bot", "serve", "--config", str(config), "--log-level", log_level]
    return _spawn("serve", args, folder)


def start_baseline(folder: Path, kind: str, port: int, api: str = "", rate_limiter: bool = False,
                   max_seconds: float = 900.0) -> Proc:
    args = [PYTHON, str(BENCH / "baselines.py"), kind, "--port", str(port), "--api", api, "--token", TELEGRAM_TOKEN,
            "--secret", SECRET, "--data", str(folder), "--max-seconds", str(max_seconds)]
    if rate_limiter:
        args.append("--rate-limiter")
    return _spawn(f"baseline-{kind}", args, folder)


async def wait_healthy(session: aiohttp.ClientSession, base: str, proc: Proc, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:  # through helpline's front process: its senders are up too
                    return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer /healthz within {timeout:.0f} s:\n{proc.tail()}")


def family(process: psutil.Process) -> list[psutil.Process]:
    """A process and its descendants: `helpline serve` sends from a child process of its own."""
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def family_cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its descendants, the ones that ended included (once reaped)."""
    total = 0.0
    for member in family(process):
        try:
            times = member.cpu_times()
        except psutil.Error:
            if member is process:
                return math.nan
            continue
        total += times.user + times.system
        if member is process:
            total += times.children_user + times.children_system
    return total


def family_rss(process: psutil.Process) -> int:
    total = 0
    for member in family(process):
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


class Sampler:
    """RSS and CPU of a process and its children, sampled every ``interval`` seconds in the background."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.last_rss = 0
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task | None = None

    def start(self) -> Sampler:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def sample(self) -> int:
        if not self.process.is_running():
            return self.last_rss
        rss = family_rss(self.process)
        self.last_rss = rss
        self.peak_rss = max(self.peak_rss, rss)
        self.samples.append((time.monotonic(), rss))
        return rss

    def cpu_seconds(self) -> float:
        return family_cpu(self.process)

    def reset_peak(self) -> None:
        self.peak_rss = self.sample()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class CpuWindow:
    """CPU seconds used by some processes between ``start()`` and ``stop()``; ``serve`` counts its children
    (the delivery process)."""

    def __init__(self, **pids: int):
        self.processes = {}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.processes[name] = psutil.Process(pid)
        self.begin: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0

    @staticmethod
    def _cpu(process: psutil.Process, name: str) -> float:
        if name == "serve":
            return family_cpu(process)
        try:
            times = process.cpu_times()
            return times.user + times.system
        except psutil.Error:
            return math.nan

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def start(self) -> CpuWindow:
        self.t0 = time.monotonic()
        self.begin = {name: self._cpu(p, name) for name, p in self.processes.items()}
        self.busy0 = self._busy()
        return self

    def stop(self) -> dict[str, float]:
        self.wall = time.monotonic() - self.t0
        self.used = {name: self._cpu(p, name) - self.begin[name] for name, p in self.processes.items()}
        # Everything else on the machine (other people's test runs, say): noise to report with the figures.
        self.used["others"] = max(0.0, self._busy() - self.busy0 - sum(v for v in self.used.values()
                                                                         if not math.isnan(v)))
        return self.used

    def share(self) -> dict[str, float]:
        """Cores used on average (1.0 = one core busy all the time); ``others``: every other process."""
        return {name: used / self.wall for name, used in self.used.items()} if self.wall else {}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summary_ms(values_s: list[float]) -> dict:
    return {"n": len(values_s), "p50_ms": round(percentile(values_s, 50) * 1000, 1),
            "p95_ms": round(percentile(values_s, 95) * 1000, 1), "p99_ms": round(percentile(values_s, 99) * 1000, 1),
            "max_ms": round(max(values_s) * 1000, 1) if values_s else math.nan}


def mb(value: int | float) -> float:
    return round(value / 1e6, 1)


def new_workdir(prefix: str = "helpline-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


@dataclass
class Machine:
    cores: int = field(default_factory=lambda: os.cpu_count() or 0)

    @staticmethod
    def describe() -> dict:
        model = "?"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        import platform
        return {"nproc": os.cpu_count(), "cpu": model, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "python": platform.python_version(), "platform": platform.platform(), **code_version()}


def code_version() -> dict:
    """The commit the benchmark ran, and whether bot/ had uncommitted changes (others edit it meanwhile)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    return {"commit": git("rev-parse", "--short", "HEAD"), "commit_subject": git("log", "-1", "--format=%s")[:100],
            "bot_uncommitted": bool(git("status", "--porcelain", "--", "bot", "flows", "locales"))}
