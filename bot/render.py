"""The one place that turns what a flow says into what a channel sends: translate, fill, fit the channel."""

from __future__ import annotations

from collections.abc import Sequence

from bot import sms
from bot.flows.engine import Say
from bot.i18n import Catalogs, _, fill
from bot.messages import Button, Capabilities, Outbound

MORE_HINT = _("Reply 0 for more.")


def render(
    said: Sequence[Say], caps: Capabilities, catalogs: Catalogs, language: str | None, sms_budget: int
) -> list[Outbound]:
    """One turn's texts joined into one message, as pages: on SMS each page fits the segment budget and
    all but the last end with "Reply 0 for more" (the pipeline sends the first and keeps the rest until the
    worker asks); elsewhere pages split at the channel's length limit and are all sent. Choices become
    numbered lines on SMS and buttons where the channel has them."""
    if not said:
        return []
    paragraphs: list[str] = []
    buttons: tuple[Button, ...] = ()
    for say in said:
        text = fill(catalogs.gettext(say.language, say.text), say.params)
        labels = [catalogs.gettext(say.language, label) if translate else label for label, translate in say.choices]
        if labels and caps.buttons:
            buttons = tuple(Button(label, str(number)) for number, label in enumerate(labels, start=1))
        elif labels:
            text += "\n" + "\n".join(f"{number}. {label}" for number, label in enumerate(labels, start=1))
        paragraphs.append(text.strip())
    body = "\n\n".join(p for p in paragraphs if p)
    if caps.sms:
        hint = catalogs.gettext(language, MORE_HINT)
        return [Outbound(page) for page in sms.paginate(sms.fit(body), sms_budget, sms.fit(hint))]
    pages = split_paragraphs(body, caps.max_length)
    return [Outbound(page, buttons if index == len(pages) - 1 else ()) for index, page in enumerate(pages)]


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
