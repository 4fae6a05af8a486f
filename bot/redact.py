"""Scrubbing error texts: what a provider or a library says when something fails may quote a worker's phone
number, a Telegram id, an account or a token. :func:`scrub` takes them out where an error text enters the bot
(:class:`~bot.outbox.SendError`, delivery reports), so every log line, stored error and staff message built
from it is clean; :func:`scrub_logs` does the same for tracebacks in the logs of `helpline serve`.
"""

from __future__ import annotations

import logging
import re

NUMBER = "[number]"
# Twilio's SIDs: two letters and 32 hex digits (AC account, SM/MM message, MG messaging service, PN number...).
_SID = re.compile(r"\b[A-Z]{2}[0-9a-fA-F]{32}\b")
_BOT_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}")  # a Telegram bot token: bot id, colon, secret
_AUTHORIZATION = re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._-]{16,}")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Long runs of letters and digits together (hex keys, base64 secrets): never words a person wrote.
_TOKEN = re.compile(r"(?<![\w+=-])(?=[\w+=-]*\d)(?=[\w+=-]*[A-Za-z])[\w+=-]{24,}")
# A written number: digits (any script) with the separators people and providers put between groups
# (spaces, dashes, dots, slashes, parentheses, also percent-encoded in a URL: %20, %2B), a leading + or (.
_SEPARATOR = r"(?:[\s.\-\u2010-\u2015()/]|%2[0-9A-Fa-f])"
_DIGITS = re.compile(rf"(?:[+(]|%2[Bb8])?\d(?:{_SEPARATOR}{{0,3}}\d)*\)?")
MIN_DIGITS = 6  # error codes (Twilio's 21211) and HTTP statuses stay; phone numbers and Telegram ids go


def scrub(text: str) -> str:
    """``text`` without phone numbers (in any common written form), Telegram chat and user ids, Twilio SIDs,
    e-mail addresses, tokens and credentials. Short numbers (error codes, statuses, seconds) stay."""
    if not text:
        return text
    text = _AUTHORIZATION.sub(r"\1 [secret]", text)
    text = _BOT_TOKEN.sub("[token]", text)
    text = _SID.sub("[sid]", text)
    text = _EMAIL.sub("[email]", text)
    text = _TOKEN.sub("[token]", text)
    return _DIGITS.sub(_number, text)


def _number(match: re.Match) -> str:
    written = match.group(0)
    if sum(c.isdigit() for c in written) < MIN_DIGITS:
        return written
    # Keep a parenthesis that frames the number rather than belongs to it: "(to +60 12 345 6789)".
    opened, closed = written.startswith("("), written.endswith(")")
    if closed and written.count(")") > written.count("("):
        return NUMBER + ")"
    if opened and written.count("(") > written.count(")"):
        return "(" + NUMBER
    return NUMBER


class _Scrubbed:
    """An exception as a log line shows it (``%s`` or ``%r``), scrubbed."""

    def __init__(self, error: BaseException):
        self.text, self.representation = scrub(str(error)), scrub(repr(error))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.representation


class ScrubErrors(logging.Filter):
    """Scrubs what a log record carries from outside the bot: exceptions given as arguments, and tracebacks.
    Ids and counts the bot logs itself stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, BaseException):
            record.msg = _Scrubbed(record.msg)
        if isinstance(record.args, tuple) and any(isinstance(arg, BaseException) for arg in record.args):
            record.args = tuple(_Scrubbed(arg) if isinstance(arg, BaseException) else arg for arg in record.args)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = scrub(_FORMATTER.formatException(record.exc_info))
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_FORMATTER = logging.Formatter()


def scrub_logs() -> None:
    """Every handler of the root logger (as ``logging.basicConfig`` made them) scrubs errors: both processes
    of `helpline serve` call this once their logging is set up."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubErrors) for f in handler.filters):
            handler.addFilter(ScrubErrors())
