"""Tests for bot.sms: segment counts as Twilio's calculator gives them, normalisation, pagination."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM_REPLACEMENTS,
    Segments,
    _clusters,
    _graphemes,
    _layout,
    fit,
    gsm_normalise,
    is_gsm7,
    paginate,
    segment_info,
)

DATA = json.loads((Path(__file__).parent / "data" / "sms_segment_cases.json").read_text(encoding="utf-8"))
CASES = DATA["cases"]


def _case_id(index: int, case: dict) -> str:
    snippet = case["text"][:12].encode("unicode_escape").decode("ascii")
    return f"{index:02d}-{case['description'][:40]}-{snippet}"


def test_reference_has_all_cases() -> None:
    assert len(CASES) == 72
    assert {"_about", "rules", "cases"} <= DATA.keys()


@pytest.mark.parametrize("case", CASES, ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_matches_twilio_calculator(case: dict) -> None:
    text = case["text"]
    info = segment_info(text)
    assert info.encoding == case["encoding"]
    assert info.segments == case["segments"]
    if info.encoding == "UCS-2":
        assert info.units == case["utf16_code_units"]
    else:
        septets = case.get("characters", len(text) + sum(ch in GSM7_EXTENSION for ch in text))
        assert info.units == septets
    if "segment_char_counts" in case:
        # Characters (graphemes; an escape pair is one) placed in each segment.
        _, segments = _layout(text)
        assert [len(seg) for seg in segments] == case["segment_char_counts"]
    assert is_gsm7(text) == (case["encoding"] == "GSM-7")


def test_gsm_tables_match_calculator_map() -> None:
    assert set(DATA["gsm7_basic_chars_in_calculator_map"]) == GSM7_BASIC
    assert set(DATA["gsm7_extension_chars_in_calculator_map"]) == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_segments_is_frozen() -> None:
    info = segment_info("Hello")
    assert info == Segments(encoding="GSM-7", segments=1, units=5)
    with pytest.raises(AttributeError):
        info.segments = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 152 + "€" + "a" * 9, (2, [152, 10])),  # an escape pair is never split across segments
        ("a" * 66 + "👍🏽" + "a" * 10, (2, [66, 11])),  # nor is an emoji with its skin tone
        ("a" * 65 + "🇹🇭" + "a" * 10, (2, [65, 11])),  # nor a flag (two regional indicators)
        ("line\r\nbreak", (1, [11])),  # CR LF counts as two characters
    ],
)
def test_clusters_move_whole(text: str, expected: tuple[int, list[int]]) -> None:
    _, segments = _layout(text)
    assert (len(segments), [len(seg) for seg in segments]) == expected
    assert segment_info(text).segments == expected[0]


# --- properties ---------------------------------------------------------------------------

GSM_CHARS = "".join(sorted(GSM7_BASIC | GSM7_EXTENSION))
MIXED_CHARS = GSM_CHARS + "áçíúÁ😀👍🏽\u200d👩\u0301\u0308ကြ်ာবাংলাไทย้ำ\U0001f1f9\U0001f1ed中\t"


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300))
@example("a\r\nb\r\r\n\x00\x7f")
def test_ascii_shortcut_splits_as_the_full_rules_do(text: str) -> None:
    assert _graphemes(text) == _clusters(text)


@settings(max_examples=300)
@given(st.text(alphabet=MIXED_CHARS, max_size=400), st.sampled_from(MIXED_CHARS))
def test_segments_monotonic_when_appending(text: str, char: str) -> None:
    assert segment_info(text + char).segments >= segment_info(text).segments


@settings(max_examples=200)
@given(st.text(alphabet=GSM_CHARS, max_size=240))
@example("a" * 160)
@example("€" * 80)
@example("a" * 159 + "€")
def test_gsm7_up_to_160_septets_is_one_segment(text: str) -> None:
    info = segment_info(text)
    assert info.encoding == "GSM-7"
    assert info.units == len(text) + sum(ch in GSM7_EXTENSION for ch in text)
    if info.units <= 160:
        assert info.segments == 1
    else:
        assert info.segments >= 2


@settings(max_examples=200)
@given(st.text(alphabet=MIXED_CHARS, max_size=90).filter(lambda t: not is_gsm7(t)))
@example("😀" * 35)
@example("ç" * 70)
def test_ucs2_up_to_70_units_is_one_segment(text: str) -> None:
    info = segment_info(text)
    assert info.encoding == "UCS-2"
    assert info.units == len(text.encode("utf-16-le")) // 2
    if info.units <= 70:
        assert info.segments == 1
    else:
        assert info.segments >= 2


LATIN_PUNCTUATION = [
    *"abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,;:!?'\"-()\n",
    *GSM_REPLACEMENTS,
    "e\u0301",  # decomposed é, à, ö, Ü, ñ: GSM-7 once composed
    "a\u0300",
    "o\u0308",
    "U\u0308",
    "n\u0303",
]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(LATIN_PUNCTUATION), max_size=200).map("".join))
def test_normalised_latin_punctuation_is_gsm7(text: str) -> None:
    normalised = gsm_normalise(text)
    assert is_gsm7(normalised)
    assert fit(text) == normalised


def test_replacement_table_targets_are_gsm7() -> None:
    for source, target in GSM_REPLACEMENTS.items():
        assert source not in GSM7_BASIC | GSM7_EXTENSION
        assert is_gsm7(target), (source, target)


def test_normalise_examples() -> None:
    assert gsm_normalise("“Hi” — it’s 5\u00a0pm…") == '"Hi" - it\'s 5 pm...'
    assert gsm_normalise("caf" + "e\u0301") == "café"  # precomposed é is GSM-7
    assert gsm_normalise("más") == "más"  # á has no GSM-7 equivalent: unchanged
    assert gsm_normalise("ကျေးဇူး “ok”") == 'ကျေးဇူး "ok"'


def test_fit_keeps_non_latin_text_untouched() -> None:
    burmese = "“အကူအညီ” — ဖုန်းဆက်ပါ…"
    assert fit(burmese) == burmese
    assert fit("Call us — we’re here…") == "Call us - we're here..."
    assert fit("Precio: más") == "Precio: más"
    assert fit("") == ""


# --- pagination ---------------------------------------------------------------------------

HINTS = ["Reply MORE", "ဆက်ဖတ်ရန် MORE ပို့ပါ", "", "মোর লিখুন"]


def _content(pages: list[str], hint: str) -> list[str]:
    """The pages' own text: every page but the last ends with the hint on its own line."""
    suffix = "\n" + hint if hint else ""
    for page in pages[:-1]:
        assert page.endswith(suffix)
    return [page[: len(page) - len(suffix)] for page in pages[:-1]] + pages[-1:]


def _check_budget(pages: list[str], budget: int, hint: str) -> list[str]:
    for page in pages:
        assert segment_info(page).segments <= budget
    content = _content(pages, hint)
    for text in content:
        assert text == text.strip()
        assert text
    return content


# fmt: off
CLUSTERS = [
    "😀", "👍🏽", "👩\u200d👩\u200d👧", "❤\ufe0f\u200d🔥", "🇲🇲", "🇧🇩", "1\ufe0f\u20e3",
    "e\u0301", "n\u0303", "a\u0301\u0323",
    "မြ", "န်", "ကျေ", "မာ", "ငံ", "သ", "က္က",
    "বা", "ক্ষ", "কং", "লি", "ষ্ট্র",
    "น้ำ", "ที่", "ไ", "ก", "ค่า",
    "a", "b", "Z", "7",
]
# fmt: on

# Words of at most 5 clusters always fit on a page with any hint, so no word is ever split.
WORD = st.lists(st.sampled_from([*CLUSTERS, "€", "{", "ñ", "á", "ç", ".", "!", "?"]), min_size=1, max_size=5).map(
    "".join
)
SEPARATOR = st.sampled_from([" ", " ", " ", "\n", "\n\n", " \n "])


@st.composite
def prose(draw: st.DrawFn) -> str:
    words = draw(st.lists(WORD, min_size=0, max_size=120))
    out = ""
    for word in words:
        out += (draw(SEPARATOR) if out else "") + word
    return out


@settings(max_examples=150, deadline=None)
@given(prose(), st.integers(min_value=1, max_value=4), st.sampled_from(HINTS))
def test_paginate_within_budget_and_keeps_words(text: str, budget: int, hint: str) -> None:
    pages = paginate(text, budget, hint)
    if not text.strip():
        assert pages == [""]
        return
    content = _check_budget(pages, budget, hint)
    assert " ".join(content).split() == text.split()
    if segment_info(text.strip()).segments <= budget:
        assert pages == [text.strip()]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcxyz€😀ก", min_size=200, max_size=600), st.integers(min_value=1, max_value=3))
def test_paginate_splits_long_words(text: str, budget: int) -> None:
    pages = paginate(text, budget, "MORE")
    assert "".join(_check_budget(pages, budget, "MORE")) == text


def _starts_attached(page: str) -> bool:
    first = page[0]
    return (
        unicodedata.category(first) in ("Mn", "Mc", "Me")
        or unicodedata.combining(first) != 0
        or first == "\u200d"
        or "\U0001f3fb" <= first <= "\U0001f3ff"
    )


@st.composite
def clustered_text(draw: st.DrawFn) -> tuple[str, list[int]]:
    """Text made of known clusters, with the offsets (whitespace removed) where cuts are allowed."""
    words = draw(st.lists(st.lists(st.sampled_from(CLUSTERS), min_size=1, max_size=40), min_size=1, max_size=12))
    text, squeezed, allowed = "", "", {0}
    for word in words:
        if text:
            text += draw(SEPARATOR)
        for cluster in word:
            text += cluster
            squeezed += cluster
            allowed.add(len(squeezed))
    return text, sorted(allowed)


@settings(max_examples=150, deadline=None)
@given(clustered_text(), st.integers(min_value=1, max_value=3), st.sampled_from(HINTS))
def test_paginate_never_splits_clusters(sample: tuple[str, list[int]], budget: int, hint: str) -> None:
    text, allowed = sample
    content = _check_budget(paginate(text, budget, hint), budget, hint)
    squeeze = "".join(text.split())
    assert "".join("".join(page.split()) for page in content) == squeeze
    offset = 0
    for page in content:
        assert offset in allowed
        assert not _starts_attached(page)
        assert not page.endswith("\u200d")
        offset += len("".join(page.split()))
    assert offset == len(squeeze)


def test_paginate_empty_and_short() -> None:
    assert paginate("", 1, "MORE") == [""]
    assert paginate(" \n\n ", 2, "MORE") == [""]
    assert paginate("  Hello  ", 1, "MORE") == ["Hello"]


def test_paginate_prefers_paragraphs() -> None:
    first = "Your employer must pay you at least the minimum wage for every hour you work."
    second = "You have the right to keep your own passport and your phone. Nobody may take them."
    text = f"{first}\n\n{second}"
    assert segment_info(text).segments == 2
    assert paginate(text, 1, "Reply 0 for more.") == [first + "\nReply 0 for more.", second]


def test_paginate_rejects_impossible_budget() -> None:
    with pytest.raises(ValueError):
        paginate("word " * 100, 1, "x" * 200)
    with pytest.raises(ValueError):
        paginate("text", 0, "MORE")


def test_paginate_does_not_waste_a_page_on_a_short_paragraph() -> None:
    body = " ".join(["You can complain to the labour office in your district."] * 4)
    pages = paginate(f"Rights\n\n{body}", 1, "Reply 0 for more.")
    assert pages[0].startswith("Rights\n\nYou can complain")
    assert all(segment_info(page).segments == 1 for page in pages)
