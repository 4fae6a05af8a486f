"""A problem found in a content file (flows, catalogs, triage word lists): where it is and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"

    def as_json(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message}
