"""Error texts are scrubbed of numbers, ids, accounts and tokens before anything keeps or shows them."""

from __future__ import annotations

import logging
import time

from hypothesis import given
from hypothesis import strategies as st

from bot.redact import ScrubErrors, scrub

# Digits as a provider or a person may write them: ASCII, and the scripts workers type (Burmese, Bengali,
# Arabic-Indic, Devanagari, Thai).
SCRIPTS = ["0123456789", "၀၁၂၃၄၅၆၇၈၉", "০১২৩৪৫৬৭৮৯", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "๐๑๒๓๔๕๖๗๘๙"]
SEPARATORS = ["", " ", "-", ".", " - ", "/", "\u00a0", "\u2011", "–", ". "]


@st.composite
def phone_numbers(draw) -> str:
    """A phone number in one of the common written forms: +CC groups, 00CC, (area) local, local alone."""
    country = draw(st.text("0123456789", min_size=1, max_size=3).filter(lambda c: c[0] != "0"))
    subscriber = draw(st.text("0123456789", min_size=6, max_size=12))
    groups, rest = [], subscriber
    while rest:
        size = draw(st.integers(1, 4))
        groups.append(rest[:size])
        rest = rest[size:]
    separator = draw(st.sampled_from(SEPARATORS))
    local = separator.join(groups) if draw(st.booleans()) else "".join(
        group + draw(st.sampled_from(SEPARATORS)) for group in groups[:-1]) + groups[-1]
    form = draw(st.sampled_from(["plus", "zeros", "area", "local", "plus_area"]))
    if form == "plus":
        written = f"+{country}{draw(st.sampled_from(SEPARATORS))}{local}"
    elif form == "zeros":
        written = f"00{country} {local}"
    elif form == "area":
        written = f"({subscriber[:3]}) {subscriber[3:6]}-{subscriber[6:] or '0'}"
    elif form == "plus_area":
        written = f"+{country} ({subscriber[:2]}) {local}"
    else:
        written = local
    script = draw(st.sampled_from(SCRIPTS))
    return written.translate(str.maketrans("0123456789", script))


telegram_ids = st.one_of(st.integers(100_000, 10**13).map(str),
                         st.integers(100_000, 10**10).map(lambda n: f"-100{n}"),
                         st.integers(100_000, 10**10).map(lambda n: f"-{n}"))
# Words around a number, with no digit of their own: any digit left after scrubbing is part of the number.
words = st.text(st.characters(exclude_categories=("Nd", "Nl", "No", "Cs")), max_size=30)


@given(words, st.one_of(phone_numbers(), telegram_ids), words)
def test_no_number_survives_in_any_written_form(before, number, after):
    scrubbed = scrub(f"{before}{number}{after}")
    assert not any(character.isdigit() for character in scrubbed), (number, scrubbed)


@given(phone_numbers(), phone_numbers())
def test_every_number_of_a_provider_error_goes_and_its_codes_stay(first, second):
    text = f"Twilio 400, error 21211: The 'To' number {first} is not a valid phone number (from {second})."
    assert scrub(text) == "Twilio 400, error 21211: The 'To' number [number] is not a valid phone number (from " \
                          "[number])."


def test_twilio_telegram_accounts_addresses_and_tokens_go():
    sid, account = "SM" + "a1" * 16, "AC" + "0f" * 16
    cases = {
        "Twilio 400, error 21211: The 'To' number +15005550001 is not a valid phone number.":
            "Twilio 400, error 21211: The 'To' number [number] is not a valid phone number.",
        f"Twilio 404, error 20404: The requested resource /2010-04-01/Accounts/{account}/Messages/{sid}.json "
        "was not found": "Twilio 404, error 20404: The requested resource /[number]/Accounts/[sid]/Messages/"
                         "[sid].json was not found",  # a date looks like a number: better lost than a number kept
        "Telegram 400: Bad Request: group chat was upgraded to a supergroup chat, new id -1001234567890":
            "Telegram 400: Bad Request: group chat was upgraded to a supergroup chat, new id -[number]",
        "network: ClientConnectorError(https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/"
        "sendMessage)": "network: ClientConnectorError(https://api.telegram.org/bot[token]/sendMessage)",
        "To=%2B60%2012%20345%206789 refused": "To=[number] refused",
        "write to aye.lin+help@example.org": "write to [email]",
        "Authorization: Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDA6c2VjcmV0": "Authorization: Basic [secret]",
        "auth token 5f4dcc3b5aa765d61d8327deb882cf99 refused": "auth token [token] refused",
        "Telegram 429: retry after 30": "Telegram 429: retry after 30",
        "the worker opted out (21610)": "the worker opted out (21610)",
        "call (+60 12-345 6789) now": "call ([number]) now",
        "": "",
    }
    for text, expected in cases.items():
        assert scrub(text) == expected, text


def test_log_records_carrying_errors_are_scrubbed_and_ids_stay():
    class Collect(logging.Handler):
        lines: list[str] = []

        def emit(self, record):
            self.lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(ScrubErrors())
    log = logging.getLogger("tests.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("send of message %s failed (%s); %r", 1234567, ValueError("to +60123456789"),
                    OSError("chat 777123456"))
        try:
            raise RuntimeError("The 'To' number +60 12 345 6789 is not valid")
        except RuntimeError:
            log.exception("send of message %s raised", 1234568)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    logged = "\n".join(handler.lines)
    assert "1234567" in logged and "1234568" in logged  # the bot's own ids are not error texts
    assert "[number]" in logged and "Traceback" in logged
    for secret in ["60123456789", "777123456", "345 6789"]:
        assert secret not in logged


def test_scrubbing_a_long_hostile_text_takes_linear_time():
    for text in ["1-" * 30_000 + "x", "a1" * 30_000 + "!", "1" * 60_000 + ":", "x." * 30_000 + "@", "1 " * 30_000]:
        started = time.perf_counter()
        scrub(text)
        assert time.perf_counter() - started < 1.0, text[:10]
