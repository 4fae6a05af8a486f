"""Case references: 8 characters of Crockford's base32, written ``XXXX-XXXX`` (e.g. ``K7F3-QP9M``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.clock import Randomness
from bot.i18n import _

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})
_REFERENCE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")

STATUSES = ("new", "acknowledged", "in_progress", "referred", "resolved", "closed")
# What a worker is told of each status.
STATUS_NAMES = {
    "new": _("received, waiting for a staff member"),
    "acknowledged": _("seen by a staff member"),
    "in_progress": _("being worked on"),
    "referred": _("passed to a partner organisation"),
    "resolved": _("resolved"),
    "closed": _("closed"),
}



def new_reference(randomness: Randomness) -> str:
    """A fresh random reference (40 bits: unguessable; the caller checks it was never issued)."""
    raw = "".join(randomness.choice(ALPHABET) for _position in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def parse_reference(text: str) -> str | None:
    """The reference a worker typed, read the way Crockford's base32 intends (``k7f3 qp9m``, ``K7F3-QP9M``,
    ``O`` for ``0``, ``I``/``L`` for ``1``), or None when it cannot be one."""
    raw = re.sub(r"[\s\-_.]", "", text).upper().translate(_READ_AS)
    return f"{raw[:4]}-{raw[4:]}" if _REFERENCE.match(raw) else None


# Lifecycle -------------------------------------------------------------------------------------------

OPEN_STATUSES = ("new", "acknowledged", "in_progress", "referred")
FINAL_STATUSES = ("resolved", "closed")


def can_move(current: str, new: str) -> bool:
    """new -> acknowledged -> in progress -> referred -> resolved or closed; a finished case may reopen
    (to acknowledged or in progress); moving back among open statuses is allowed for corrections."""
    if new not in STATUSES or new == current:
        return False
    if current in FINAL_STATUSES:
        return new in ("acknowledged", "in_progress") or new in FINAL_STATUSES
    return True


# Safe hours ------------------------------------------------------------------------------------------

# The time zone of each destination country the flows offer; a worker's safe hours are in local time.
COUNTRY_ZONES = {
    "MY": "Asia/Kuala_Lumpur", "SG": "Asia/Singapore", "TH": "Asia/Bangkok", "AE": "Asia/Dubai",
    "SA": "Asia/Riyadh", "QA": "Asia/Qatar", "KW": "Asia/Kuwait",
}
SAFE_WINDOWS = {"morning": (time(6, 0), time(9, 0)), "evening": (time(18, 0), time(22, 0))}


def next_safe_moment(safe_time: str | None, country: str | None, now: datetime) -> datetime | None:
    """When a message on the bot's own initiative may reach this worker: ``now`` when any time is safe,
    the start of their next safe window (in their country's local time), or None when they said never."""
    if safe_time == "never":
        return None
    window = SAFE_WINDOWS.get(safe_time or "any")
    if window is None:
        return now
    zone = ZoneInfo(COUNTRY_ZONES.get(country or "", "UTC"))
    local = now.astimezone(zone)
    start, end = window
    if start <= local.time() < end:
        return now
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
