"""Shared fixtures: a bot on a fresh SQLite file, a clock the test moves, and a simulated worker."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import create_app
from bot.config import Config, load_config


class FakeClock:
    """A clock that only moves when the test says so."""

    def __init__(self) -> None:
        # Starts at the real time, so that commands run beside the bot (which use the real clock) agree.
        self.moment = datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class SeededRandomness:
    def __init__(self, seed: int = 7) -> None:
        self.random = random.Random(seed)

    def choice(self, alphabet: str) -> str:
        return self.random.choice(alphabet)


def unsealed(config: Config, sql: str, params=()) -> list:
    """Rows of a query with every sealed value opened, as staff tools would see them (values are encrypted
    on disk)."""
    from bot.security import PREFIX, sealer_for

    sealer = sealer_for(config)
    with sqlite3.connect(config.storage.database) as db:
        rows = db.execute(sql, params).fetchall()
    return [tuple(sealer.unseal(v) if isinstance(v, str) and v.startswith(PREFIX) else v for v in row)
            for row in rows]


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


class Worker:
    """A worker texting the bot through the simulator's HTTP API; ``say`` returns the bot's replies."""

    def __init__(self, client, channel: str = "sms", address: str = "+60123456789", language: str | None = None):
        self.client = client
        self.channel = channel
        self.address = address
        self.language = language
        self.last_id = 0

    async def say(self, text: str, choice: str | None = None, message_id: str | None = None) -> list[dict]:
        payload = {"channel": self.channel, "address": self.address, "text": text}
        if choice is not None:
            payload["choice"] = choice
        if self.language:
            payload["language"] = self.language
        if message_id:
            payload["id"] = message_id
        response = await self.client.post("/simulator/api/send", json=payload)
        assert response.status == 200, await response.text()
        sent = await response.json()
        return await self.replies(expect=sent["replies"])

    async def replies(self, expect: int) -> list[dict]:
        found: list[dict] = []
        while len(found) < expect:
            response = await self.client.get(
                "/simulator/api/messages",
                params={"channel": self.channel, "address": self.address, "after": self.last_id, "wait": 5},
            )
            messages = (await response.json())["messages"]
            assert messages, f"expected {expect} replies, got {len(found)}"
            self.last_id = messages[-1]["id"]
            found += [m for m in messages if m["direction"] == "out"]
        return found

    async def text(self, text: str, **kwargs) -> str:
        """The text of the bot's reply (all pages joined)."""
        return "\n".join(m["text"] for m in await self.say(text, **kwargs))


@pytest.fixture
async def fakes():
    """Twilio and Telegram on loopback (tests/fakes.py), each with its ``url``."""
    from tests.fakes import FakeTelegram, FakeTwilio

    twilio, telegram = FakeTwilio(), FakeTelegram()
    twilio.url, telegram.url = await twilio.start(), await telegram.start()
    yield twilio, telegram
    await twilio.close()
    await telegram.close()


@pytest.fixture
def worker(client) -> Worker:
    return Worker(client)


@pytest.fixture
def telegram_worker(client) -> Worker:
    return Worker(client, channel="telegram", address="5550001")
