"""Shared fixtures: a bot on a fresh SQLite file, a clock the test moves, a simulated worker, and the provider
fakes on loopback (the helpers they use are in tests/helpers.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from bot.app import create_app
from bot.config import Config, load_config
from tests.fakes import FakeTelegram, FakeTwilio
from tests.helpers import FakeClock, SeededRandomness, Worker, helpline_config


@pytest.fixture
def config(tmp_path) -> Config:
    return load_config(None, environ={}).replace(storage={"database": str(tmp_path / "helpline.db")})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(aiohttp_client, config, clock):
    app = create_app(config, clock=clock, randomness=SeededRandomness())
    return await aiohttp_client(app)


@pytest.fixture
async def fakes():
    """Twilio and Telegram on loopback (tests/fakes.py), each with its ``url``."""
    twilio, telegram = FakeTwilio(), FakeTelegram()
    twilio.url, telegram.url = await twilio.start(), await telegram.start()
    yield twilio, telegram
    await twilio.close()
    await telegram.close()


@pytest.fixture
async def twilio():
    """Twilio alone on loopback, with its ``url``."""
    fake = FakeTwilio()
    fake.url = await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def telegram():
    """Telegram's Bot API alone on loopback, with its ``url``."""
    fake = FakeTelegram()
    fake.url = await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def helpline(aiohttp_client, config, clock, fakes):
    """The bot with both channels at the fakes, a staff group and an on-call phone (`helpline_config`)."""
    return await aiohttp_client(create_app(helpline_config(config, fakes), clock=clock,
                                           randomness=SeededRandomness()))


@pytest.fixture
def worker(client) -> Worker:
    return Worker(client)


@pytest.fixture
def telegram_worker(client) -> Worker:
    return Worker(client, channel="telegram", address="5550001")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB file system of its own (tmpfs), when this machine lets the tests mount one (root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture
def no_helpline_environment(monkeypatch):
    """The developer's own HELPLINE_* variables (a data key!) must not leak into tests that read the
    environment; a test module opts in with ``pytestmark = pytest.mark.usefixtures("no_helpline_environment")``."""
    for name in list(os.environ):
        if name.startswith("HELPLINE_"):
            monkeypatch.delenv(name)
