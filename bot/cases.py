"""Case references: 8 characters of Crockford's base32, written ``XXXX-XXXX`` (e.g. ``K7F3-QP9M``)."""

from __future__ import annotations

import re

from bot.clock import Randomness

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})
_REFERENCE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")

STATUSES = ("new", "acknowledged", "in_progress", "referred", "resolved", "closed")


def new_reference(randomness: Randomness) -> str:
    """A fresh random reference (40 bits: unguessable; the caller checks it was never issued)."""
    raw = "".join(randomness.choice(ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def parse_reference(text: str) -> str | None:
    """The reference a worker typed, read the way Crockford's base32 intends (``k7f3 qp9m``, ``K7F3-QP9M``,
    ``O`` for ``0``, ``I``/``L`` for ``1``), or None when it cannot be one."""
    raw = re.sub(r"[\s\-_.]", "", text).upper().translate(_READ_AS)
    return f"{raw[:4]}-{raw[4:]}" if _REFERENCE.match(raw) else None
