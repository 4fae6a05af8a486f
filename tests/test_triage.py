"""Danger triage: recall and false alarms over the labelled set, and the behaviours staff rely on.

Run with ``-s`` to see recall and false-positive rate overall and per language, and the speed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.lexicon import load_lexicon
from bot.triage import CATEGORIES, Assessment, Triage, expand, normalise

DATA = Path(__file__).parent / "data" / "triage_labelled.jsonl"
LANGUAGES = ("en", "id", "ms", "tl", "vi", "th", "my", "km", "lo", "ne", "bn", "hi", "ur", "si", "ta", "ar")
FPR_LIMIT = 0.10


def load_rows() -> list[dict]:
    with DATA.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


ROWS = load_rows()
TRIAGE = Triage()  # built once, as the pipeline does


@pytest.fixture(scope="module")
def triage() -> Triage:
    return TRIAGE


def figures(rows: list[dict], triage: Triage) -> tuple[int, int, int, int, list[tuple[dict, Assessment]]]:
    """(urgent, caught, not urgent, false alarms, [(row, assessment) for every mistake])."""
    urgent = caught = calm = alarms = 0
    mistakes = []
    for row in rows:
        result = triage.assess(row["text"])
        if row["urgent"]:
            urgent += 1
            caught += result.urgent
        else:
            calm += 1
            alarms += result.urgent
        if result.urgent != row["urgent"]:
            mistakes.append((row, result))
    return urgent, caught, calm, alarms, mistakes


# --- the labelled set ---------------------------------------------------------------------------------------------


def test_labelled_set_is_well_formed():
    assert len(ROWS) >= 240
    for row in ROWS:
        assert set(row) == {"text", "language", "urgent", "note"}, row
        assert isinstance(row["text"], str) and row["text"].strip(), row
        assert row["language"] in LANGUAGES, row
        assert isinstance(row["urgent"], bool), row
    per_language = Counter(row["language"] for row in ROWS)
    assert set(per_language) == set(LANGUAGES)
    assert min(per_language.values()) >= 8, per_language
    share = sum(row["urgent"] for row in ROWS) / len(ROWS)
    assert 0.35 <= share <= 0.65, share


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_urgent_and_calm_examples(language):
    labels = {row["urgent"] for row in ROWS if row["language"] == language}
    assert labels == {True, False}


def test_labelled_set_has_zawgyi_burmese():
    detector = TRIAGE.zawgyi
    zawgyi = [row for row in ROWS if row["language"] == "my" and detector.get_zawgyi_probability(row["text"]) > 0.95]
    assert len(zawgyi) >= 3
    assert {row["urgent"] for row in zawgyi} == {True, False}


def test_recall_and_false_positive_rate(triage):
    urgent, caught, calm, alarms, mistakes = figures(ROWS, triage)
    recall, fpr = caught / urgent, alarms / calm
    print(f"\ntriage over {len(ROWS)} labelled messages: recall {recall:.3f} ({caught}/{urgent}), "
          f"false-positive rate {fpr:.3f} ({alarms}/{calm})")
    for language in LANGUAGES:
        u, c, n, a, _ = figures([row for row in ROWS if row["language"] == language], triage)
        print(f"  {language}: recall {c / u:.3f} ({c}/{u})  false positives {a / n:.3f} ({a}/{n})")
    for row, result in mistakes:
        kind = "MISSED" if row["urgent"] else "FALSE ALARM"
        why = f" ({result.category}: {result.matched!r}, {result.language})" if result.urgent else ""
        print(f"  {kind} [{row['language']}] {row['text']!r}{why} - {row['note']}")
    missed = [f"[{row['language']}] {row['text']!r}" for row, _ in mistakes if row["urgent"]]
    assert not missed, f"every labelled urgent message must be caught; missed: {missed}"
    assert fpr <= FPR_LIMIT


def test_whole_set_twenty_times_is_fast(triage):
    started = time.perf_counter()
    for _ in range(20):
        for row in ROWS:
            triage.assess(row["text"])
    elapsed = time.perf_counter() - started
    print(f"\nassessed {20 * len(ROWS)} messages in {elapsed:.2f}s ({20 * len(ROWS) / elapsed:.0f}/s)")


# --- the API ------------------------------------------------------------------------------------------------------


def test_api_shape(triage):
    assert CATEGORIES == ("violence", "sexual_violence", "confinement", "threat_to_life", "self_harm",
                          "no_food_water", "medical", "trafficking", "sos")
    calm = triage.assess("thank you")
    assert calm == Assessment(False, None, None, None)
    urgent = triage.assess("they beat me")
    assert urgent.urgent and urgent.category == "violence" and urgent.language == "en" and urgent.matched == "beat"
    with pytest.raises(dataclasses.FrozenInstanceError):
        urgent.urgent = False  # type: ignore[misc]
    assert not hasattr(urgent, "__dict__")  # slots


def test_every_urgent_answer_says_why(triage):
    for row in ROWS:
        result = triage.assess(row["text"])
        if result.urgent:
            assert result.category in CATEGORIES
            assert result.language in LANGUAGES
            assert result.matched
        else:
            assert (result.category, result.language, result.matched) == (None, None, None)


def test_empty_messages_are_not_urgent(triage):
    for text in ("", " ", "\n", "...", "👍"):
        assert triage.assess(text) == Assessment(False, None, None, None)


def test_lexicon_is_readable_data():
    lexicon = {language.code: language.danger_words for language in load_lexicon().languages}
    assert set(lexicon) == set(LANGUAGES)
    for language, categories in lexicon.items():
        assert set(categories) <= set(CATEGORIES), language
        for category, terms in categories.items():
            assert isinstance(terms, tuple) and terms, (language, category)
            for term in terms:
                assert isinstance(term, str) and term == term.strip(), (language, term)
                for variant in expand(term):
                    assert normalise(variant.lstrip("^!").rstrip("*")), (language, variant)


# --- categories ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "category"), [
    ("my boss beat me", "violence"),
    ("saya dipukul majikan", "violence"),
    ("sir raped me", "sexual_violence"),
    ("ถูกข่มขืน", "sexual_violence"),
    ("they locked me in the room", "confinement"),
    ("i cant leave the house", "confinement"),
    ("em không được ra ngoài", "confinement"),
    ("he will kill me", "threat_to_life"),
    ("papatayin daw ako", "threat_to_life"),
    ("i want to die", "self_harm"),
    ("saya mau bunuh diri", "self_harm"),
    ("no food for 3 days", "no_food_water"),
    ("khana nahi mila", "no_food_water"),
    ("my friend is unconscious", "medical"),
    ("she is bleeding", "medical"),
    ("the agent sold me", "trafficking"),
    ("মানব পাচার", "trafficking"),
    ("sos", "sos"),
    ("help me", "sos"),
    ("malai bachau", "sos"),
])
def test_categories(triage, text, category):
    result = triage.assess(text)
    assert result.urgent and result.category == category, result


def test_most_severe_category_wins(triage):
    result = triage.assess("help me, he raped me and locked me in")
    assert result.category == "sexual_violence"
    assert triage.assess("tolong saya mau bunuh diri").category == "self_harm"


# --- normalisation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["heeeelp", "HEEELP!!", "tolooong", "tolong tolong", "plzzz hellllp meee",
                                  "bachaooo", "cuuu toiii", "ช่วยด้วยยยย", "saklolooo", "tulonggg"])
def test_repeated_letters(triage, text):
    assert triage.assess(text).urgent, text


def test_normalise():
    assert normalise("Cứu TÔI với!!!") == "cu toi voi"                # accents, đ, case, punctuation, doubled u
    assert normalise("Đánh") == "danh"
    assert normalise("can't  leave") == "cant leave"
    assert normalise("ＳＯＳ") == "sos"                                   # NFKC: full-width letters
    assert normalise("tlg2") == "tlg tlg"                              # Malay/Indonesian reduplication
    assert normalise("২ ३ ٣ ۲ ๒ ၂") == "2 3 3 2 2 2"                   # native digits
    assert normalise("ช่วย ด้วย") == normalise("ช่วยด้วย")              # no-space scripts: spaces don't matter
    assert normalise("ශ්\u200dරී") == normalise("ශ්රී")                   # zero-width joiners dropped


def test_native_digits_and_menu_numbers_are_not_urgent(triage):
    for text in ("1", "2", "3", "4", "০", "२", "٣", "۴", "๑", "၁", "១", "໑"):
        assert not triage.assess(text).urgent, text


# --- Zawgyi -------------------------------------------------------------------------------------------------------


def test_zawgyi_rows_are_read_as_unicode(triage):
    detector = TRIAGE.zawgyi
    zawgyi = [row for row in ROWS if row["language"] == "my" and detector.get_zawgyi_probability(row["text"]) > 0.95]
    for row in zawgyi:
        assert triage.assess(row["text"]).urgent == row["urgent"], row


def test_zawgyi_and_unicode_give_the_same_answer(triage):
    unicode_text = "ကယ်ပါ သူဌေးက ရိုက်နေတယ်"
    zawgyi_text = "ကယ္ပါ သူေဌးက ႐ိုက္ေနတယ္"                         # the same words in Zawgyi encoding
    assert TRIAGE.zawgyi.get_zawgyi_probability(zawgyi_text) > 0.95
    assert triage.assess(zawgyi_text) == triage.assess(unicode_text)
    assert triage.assess(zawgyi_text).category == "violence"


# --- boundaries and hard negatives --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["this app is very helpful", "my skills", "white shirt", "heartbeat monitor",
                                  "kerja mulai pukul 7 pagi", "HELP", "help", "menu", "I need help with my contract",
                                  "can you help me understand my payslip", "ayudame"])
def test_word_boundaries_and_keywords(triage, text):
    assert not triage.assess(text).urgent, text


@pytest.mark.parametrize("text", ["beating", "he beats me", "dipukuli", "dipukulin terus", "help!", "Help!!!"])
def test_endings_and_prefixes(triage, text):
    assert triage.assess(text).urgent, text


@pytest.mark.parametrize("text", ["can my employer keep my passport?", "how many hours can I work",
                                  "what is the minimum wage", "is it legal to not give me a day off?",
                                  "majikan boleh tahan paspor saya?", "न्यूनतम तलब कति हो?",
                                  "নিয়োগকর্তা কি আমার পাসপোর্ট রাখতে পারে?", "ค่าแรงขั้นต่ำเท่าไหร่"])
def test_rights_questions_are_not_urgent(triage, text):
    assert not triage.assess(text).urgent, text


def test_a_rights_question_naming_danger_is_urgent(triage):
    assert triage.assess("can my employer hit me?").urgent


@pytest.mark.parametrize("text", ["sos", "SOS", "Sos", "sOs", "S.O.S", "SOS!!!", "🆘", "sos pls", "pls SOS now"])
def test_sos_in_any_case(triage, text):
    result = triage.assess(text)
    assert result.urgent and result.category == "sos", (text, result)


# --- robustness ---------------------------------------------------------------------------------------------------

_ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
_LONG_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64).map(
    lambda s: (s * (10_240 // len(s) + 1))[:10_240])
_MIXED = st.lists(st.one_of(st.sampled_from([row["text"] for row in ROWS]), _ANY_TEXT), max_size=6).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_ANY_TEXT, _MIXED, st.text(alphabet=st.characters(whitelist_categories=("Cc", "Cf", "Zs", "Mn")))))
def test_assess_never_raises(text):
    result = TRIAGE.assess(text)
    assert isinstance(result, Assessment)
    assert result.urgent == (result.category is not None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LONG_TEXT)
def test_assess_never_raises_on_10_kb(text):
    assert isinstance(TRIAGE.assess(text), Assessment)


@given(text=st.text(alphabet="0123456789 .,;:#*+-()", min_size=1, max_size=16))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_remembered_menu_answer_is_read_as_it_would_be_afresh(triage, text):
    assert triage.assess(text) == triage.assess(text) == triage._assess(text)


def test_only_menu_answers_are_remembered(triage):
    for text in ["1", "2 3", "999", "they beat me", "1 help me"]:
        triage.assess(text)
    remembered = triage._assess_menu_answer.cache_parameters()
    assert remembered["maxsize"] == 1024
    assert triage._assess_menu_answer.cache_info().currsize >= 3
    triage._assess_menu_answer.cache_clear()
    triage.assess("they beat me")
    assert triage._assess_menu_answer.cache_info().currsize == 0
