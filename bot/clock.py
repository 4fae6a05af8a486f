"""Time and randomness, injected so that timers and references are testable without sleeping."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Randomness(Protocol):
    def choice(self, alphabet: str) -> str:
        """One character of ``alphabet``, unpredictable to an outsider."""


class SystemRandomness:
    def choice(self, alphabet: str) -> str:
        return secrets.choice(alphabet)
