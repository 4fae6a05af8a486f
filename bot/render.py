"""The one place that turns what a flow says into what a channel sends: translate, fill, fit the channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot import sms
from bot.flows.engine import Say
from bot.i18n import Catalogs, _, fill
from bot.messages import Button, Capabilities, Outbound

MORE_HINT = _("Reply 0 for more.")


@dataclass(frozen=True, slots=True)
class Rendered:
    """What to send now, and SMS pages kept until the worker replies 0."""

    now: list[Outbound]
    later: list[str]


def render(
    said: Sequence[Say], caps: Capabilities, catalogs: Catalogs, language: str | None, sms_budget: int
) -> Rendered:
    """One turn's texts joined into one message. Choices become numbered lines on SMS and buttons where the
    channel has them. On SMS a reply over the segment budget is paged ("Reply 0 for more" on every page but
    the last) and only the first page goes now, except that a closing question always goes too, so a worker
    is never left without the choices. Elsewhere long texts split at the channel's limit and all go now."""
    if not said:
        return Rendered([], [])
    paragraphs: list[str] = []
    buttons: tuple[Button, ...] = ()
    for say in said:
        text = fill(catalogs.gettext(say.language, say.text), say.params)
        labels = [catalogs.gettext(say.language, label) if translate else label for label, translate in say.choices]
        if labels and caps.buttons:
            buttons = tuple(Button(label, str(number)) for number, label in enumerate(labels, start=1))
        elif labels:
            text += "\n" + "\n".join(f"{number}. {label}" for number, label in enumerate(labels, start=1))
        if text.strip():
            paragraphs.append(text.strip())
    body = "\n\n".join(paragraphs)
    if not caps.sms:
        pages = split_paragraphs(body, caps.max_length)
        return Rendered([Outbound(page, buttons if i == len(pages) - 1 else ()) for i, page in enumerate(pages)], [])
    hint = sms.fit(catalogs.gettext(language, MORE_HINT))
    pages = sms.paginate(sms.fit(body), sms_budget, hint)
    question = said[-1].choices and len(paragraphs) > 1
    if len(pages) == 1 or not question:
        return Rendered([Outbound(pages[0])], pages[1:])
    lead = sms.paginate(sms.fit("\n\n".join(paragraphs[:-1])), sms_budget, hint)
    asked = sms.paginate(sms.fit(paragraphs[-1]), sms_budget, hint)
    return Rendered([Outbound(lead[0]), Outbound(asked[0])], lead[1:] + asked[1:])


def split_paragraphs(text: str, limit: int) -> list[str]:
    """Split a long text into messages of at most ``limit`` characters, on paragraph, then line, then word
    boundaries."""
    if len(text) <= limit:
        return [text]
    pages: list[str] = []
    current = ""
    for piece in text.split("\n\n"):
        candidate = f"{current}\n\n{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pages.append(current)
        while len(piece) > limit:
            cut = max(piece.rfind("\n", 0, limit), piece.rfind(" ", 0, limit))
            cut = cut if cut > 0 else limit
            pages.append(piece[:cut].rstrip())
            piece = piece[cut:].lstrip()
        current = piece
    if current:
        pages.append(current)
    return pages
