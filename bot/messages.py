"""The channel-neutral shapes of what comes in and what goes out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Inbound:
    """A worker's message as a channel received it.

    Attributes:
        channel: ``sms``, ``telegram`` or ``simulator-sms`` / ``simulator-telegram``.
        address: where replies go (a phone number, a Telegram chat id).
        provider_id: the provider's id for the message (MessageSid, update_id); unique per channel.
        text: the text as received (may be empty).
        received_at: when our server received it (UTC).
        media: URLs or file ids of attached media.
        choice: the value of a pressed button, when the worker pressed one.
        language_hint: the language the client reports (Telegram's ``language_code``), if any.
        name: the display name the channel reports, if any.
        kind: ``message``; ``edited`` (a corrected message); ``blocked`` / ``unblocked`` (the worker blocked
            or unblocked the bot: no text, no reply); ``staff`` (from the staff group).
        sender_id: who wrote it, when that is not the address (a staff member in the staff group).
        reply_to: the provider id of the message this one replies to, if any.
    """

    channel: str
    address: str
    provider_id: str
    text: str
    received_at: datetime
    media: tuple[str, ...] = ()
    choice: str | None = None
    language_hint: str | None = None
    name: str | None = None
    kind: str = "message"
    sender_id: str | None = None
    reply_to: str | None = None


def clean_text(value: object) -> str:
    """Text as it can be stored: a non-string is no text, a lone surrogate (broken UTF-16) becomes U+FFFD."""
    if not isinstance(value, str):
        return ""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")  # fails on a lone surrogate, and on nothing else
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def scrubbed(inbound: Inbound) -> Inbound:
    """The inbound with every field of the type the pipeline expects, whatever a channel was sent."""
    def optional(value: object) -> str | None:
        return clean_text(value) or None

    cleaned = {
        "address": clean_text(inbound.address), "provider_id": clean_text(inbound.provider_id),
        "text": clean_text(inbound.text), "media": tuple(clean_text(m) for m in inbound.media if clean_text(m)),
        "choice": None if inbound.choice is None else clean_text(inbound.choice),
        "language_hint": optional(inbound.language_hint), "name": optional(inbound.name),
        "sender_id": optional(inbound.sender_id), "reply_to": optional(inbound.reply_to),
    }
    if all(value is getattr(inbound, name) for name, value in cleaned.items()):
        return inbound  # the usual case: every field was already what the pipeline expects
    return dataclasses.replace(inbound, **cleaned)


@dataclass(frozen=True, slots=True)
class Button:
    """One choice offered to the worker: ``label`` shown, ``value`` sent back when pressed."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Outbound:
    """A reply ready for a channel: text already translated and fitted, plus buttons where supported."""

    text: str
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can show, so rendering adapts to it.

    Attributes:
        buttons: choices can be buttons (Telegram) rather than numbered lines (SMS).
        max_length: the longest text one message may carry.
        sms: texts are paid per SMS segment, so they are fitted to GSM-7 and a segment budget.
    """

    buttons: bool
    max_length: int
    sms: bool = False


SMS = Capabilities(buttons=False, max_length=1600, sms=True)
TELEGRAM = Capabilities(buttons=True, max_length=4096)

CAPABILITIES: dict[str, Capabilities] = {
    "sms": SMS,
    "telegram": TELEGRAM,
    "simulator-sms": SMS,
    "simulator-telegram": TELEGRAM,
}
SIMULATED_CHANNELS = frozenset({"simulator-sms", "simulator-telegram"})  # no real worker: cases are marked


@dataclass(slots=True)
class Reply:
    """What the pipeline decided for one inbound message (returned to the caller that submitted it)."""

    duplicate: bool = False
    outbound_ids: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    notice: str | None = None  # a short answer for the person who pressed a button (staff)
