"""What the simulated workers say: walks through the real flows (flows/*.yaml), and how many replies each step
gets, learnt by running the same steps through the bot's own pipeline in-process (calibration).

A walk is a list of steps; each step is typed text or, on Telegram, a pressed button. Every walk starts from
a new worker, except ``returning`` walks, which are for workers already in the database (the cost curve).

- ``rights``: hi, English, Know my rights, a country, a topic, Another topic, a second topic, Main menu.
- ``complaint``: the current flows/complaint.yaml: hi, English, Report a problem, contact me, what happened
  (``1 3``), country, sector, employer (free text), when, own words (free text), safe time, three consents:
  the last answer gives the case reference.
- ``distress``: hi, English, then "help they beat me #dNNN" (triage: violence); the ``#token`` comes back in
  the staff alert, which is how an alert is matched to the message that caused it.
- ``returning``: MENU, Know my rights, a country, a topic, Another topic, a second topic, Main menu.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DISTRESS_TEXT = "help they beat me #{token}"


@dataclass(frozen=True, slots=True)
class Step:
    text: str
    press: bool = False  # on Telegram, a button press (callback_query) rather than typed text
    distress: bool = False


@dataclass(frozen=True, slots=True)
class Walk:
    name: str
    params: tuple
    steps: tuple[Step, ...]

    @property
    def key(self) -> tuple:
        return (self.name, self.params)


def _choice(value: str) -> Step:
    return Step(value, press=True)


def rights(country: int, topic: int) -> Walk:
    second = topic % 6 + 1
    steps = (Step("hi"), _choice("1"), _choice("1"), _choice(str(country)), _choice(str(topic)), _choice("1"),
             _choice(str(second)), _choice("3"))
    return Walk("rights", (country, topic), steps)


def complaint(country: int) -> Walk:
    sector = country % 7 + 1
    steps = (Step("hi"), _choice("1"), _choice("2"), _choice("1"), Step("1 3"), _choice(str(country)),
             _choice(str(sector)), Step("Acme Manpower Sdn Bhd"), _choice("1"),
             Step("they did not pay me for three months and the agent keeps my passport"),
             _choice("1"), _choice("1"), _choice("1"), _choice("1"))
    return Walk("complaint", (country,), steps)


def distress() -> Walk:
    return Walk("distress", (), (Step("hi"), _choice("1"), Step(DISTRESS_TEXT, distress=True)))


def returning(country: int, topic: int) -> Walk:
    second = topic % 6 + 1
    steps = (Step("menu"), _choice("1"), _choice(str(country)), _choice(str(topic)), _choice("1"),
             _choice(str(second)), _choice("3"))
    return Walk("returning", (country, topic), steps)


def distress_weight(share: float) -> float:
    """The share of new walks that must be distress walks for ``share`` of all messages to be distress ones
    (rights and complaint walks 2:1, 8 and 14 messages; a distress walk is 3 messages, one of them distress)."""
    if share <= 0:
        return 0.0
    return 10 * share / (1 + 7 * share)


class Mix:
    """Draws new walks: rights and complaint 2:1, and distress walks so that ``distress_share`` of the messages
    are distress messages."""

    def __init__(self, distress_share: float = 0.0, seed: int = 1, flows: tuple[str, ...] = ("rights", "complaint")):
        self.random = random.Random(seed)
        self.distress = distress_weight(distress_share)
        self.flows = flows

    def next(self) -> Walk:
        if self.distress and self.random.random() < self.distress:
            return distress()
        if "complaint" in self.flows and (self.flows == ("complaint",) or self.random.random() < 1 / 3):
            return complaint(self.random.randint(1, 8))
        return rights(self.random.randint(1, 8), self.random.randint(1, 6))

    def returning(self) -> Walk:
        return returning(self.random.randint(1, 8), self.random.randint(1, 6))


def all_walks() -> list[Walk]:
    walks = [rights(c, t) for c in range(1, 9) for t in range(1, 7)]
    walks += [complaint(c) for c in range(1, 9)]
    walks += [distress()]
    walks += [returning(c, t) for c in range(1, 9) for t in range(1, 7)]
    return walks


class Calibration:
    """How many replies to the worker each step of each walk gets, on each channel, as the bot's own pipeline
    answers them (in-process, on a throw-away database, with the same flows and catalogs)."""

    def __init__(self, config_path: str | Path):
        self.config_path = str(config_path)
        self.expected: dict[tuple, list[int]] = {}

    def run(self, walks: list[Walk] | None = None) -> None:
        from bench.prepopulate import inbound_for, make_pipeline
        from bot.config import load_config
        from bot.security import sealer_for
        from bot.store.sqlite import Store

        walks = walks or all_walks()
        with tempfile.TemporaryDirectory() as folder:
            config = load_config(self.config_path, environ={}).replace(
                storage={"database": str(Path(folder) / "calibration.db")}, security={"key_file": ""})
            store = Store(config.storage.database, sealer_for(config, create=True))
            pipeline = make_pipeline(config)
            address = 0
            for channel in ("sms", "telegram"):
                for walk in walks:
                    address += 1
                    counts = []
                    if walk.name == "returning":  # someone who walked the rights flow before
                        for index, step in enumerate(rights(1, 1).steps):
                            pipeline.handle(store, inbound_for(channel, address, f"cal{address}p{index}", step))
                    for index, step in enumerate(walk.steps):
                        text = DISTRESS_TEXT.format(token="d0") if step.distress else step.text
                        reply = pipeline.handle(store, inbound_for(channel, address, f"cal{address}s{index}",
                                                                   Step(text, step.press)))
                        counts.append(len(reply.outbound_ids))
                    self.expected[(channel, walk.key)] = counts
            store.close()

    def replies(self, channel: str, walk: Walk) -> list[int]:
        return self.expected[(channel, walk.key)]


def now() -> datetime:
    return datetime.now(UTC)
