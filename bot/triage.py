"""Danger triage: is a worker in danger? Checked on every inbound message, before the conversation flow.

The worst failure of the helpline is a worker in danger whose message sits unseen, so triage is built for
recall: a false alarm costs a staff member a minute, a miss can cost a life. It is a lexicon matcher, not a
model: every decision can be explained ("matched 'dipukul', violence, id") and an NGO can add words without
a programmer: the words are data, one file a language in ``triage/`` (read and checked by :mod:`bot.lexicon`),
and only the reading of them is here.

How a message is read (see docs/TRIAGE.md):

1. Zawgyi-encoded Burmese (Google's ``myanmartools`` detector) is converted to Unicode (``paraencoder``).
2. It is normalised: NFKC, case fold, Latin diacritics stripped (Vietnamese đ→d), native digits to ASCII,
   apostrophes dropped and other punctuation/symbols to spaces, doubled letters collapsed ("heeelp" →
   "help", on both sides: the lexicon is normalised the same way), "tlg2" → "tlg tlg", and spaces removed
   between characters of scripts written without spaces (Thai, Lao, Burmese, Khmer).
3. Phrases that contain a danger word but are not about danger (``safe_phrases``: "help me with", "ฆ่าเชื้อ")
   are cut out.
4. Each language's terms are matched: as substrings in Thai, Lao, Burmese and Khmer script; as whole words
   elsewhere, with that language's prefixes and endings (``prefixes``, ``suffixes``: "dipukul", "beating").

Topic words (passport, wages, hours, contract) are deliberately absent: a rights question that names a topic
is not an emergency. A question that names danger ("can my employer hit me?") is urgent: recall first.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
import warnings
from dataclasses import dataclass

from myanmartools import ZawgyiDetector
from para.convert import zg_to_unicode

from bot.lexicon import CATEGORIES as CATEGORIES  # the kinds of danger, named in the word lists
from bot.lexicon import Lexicon, load_lexicon

# When a message matches several categories, staff see the first of these.
PRIORITY = ("self_harm", "threat_to_life", "sexual_violence", "violence", "medical", "confinement", "trafficking",
            "no_food_water", "sos")


@dataclass(frozen=True, slots=True)
class Assessment:
    urgent: bool
    category: str | None      # one of CATEGORIES, None when not urgent
    language: str | None      # the language of the matched term (ISO 639-1 code), None when not urgent
    matched: str | None       # the matched term (as in the lexicon), None when not urgent


NOT_URGENT = Assessment(False, None, None, None)

_NO_SPACE_SCRIPTS = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff\uaa60-\uaa7f\ua9e0-\ua9ff"
_NO_SPACE_CHAR = re.compile(f"[{_NO_SPACE_SCRIPTS}]")
_NO_SPACE_GAP = re.compile(f"(?<=[{_NO_SPACE_SCRIPTS}]) +(?=[{_NO_SPACE_SCRIPTS}])")
_MYANMAR = re.compile("[\u1000-\u109f]")
_MYANMAR_ZERO_AS_WA = re.compile("\u1040(?=[\u1000-\u1021\u102b-\u103e])")
_REDUPLICATION = re.compile(r"\b([a-z]{2,})2\b")
_REPEATS = re.compile(r"([^\W\d_])\1+")
_ELONGATED = re.compile(r"([^\W\d_])\1\1")
_BRACES = re.compile(r"\{([^{}]*)\}")

_DELETE = {
    "'", "\u2019", "\u2018", "\u02bc", "`", "\u00b4",           # apostrophes: "can't" -> "cant"
    "\u0640",                                                    # Arabic tatweel
    "\u0901", "\u0902", "\u093c", "\u0981", "\u09bc",            # Devanagari/Bengali candrabindu, anusvara, nukta
}
_REPLACE = {
    "\u0111": "d",                                               # Vietnamese đ
    "\U0001f198": " sos ",                                       # 🆘
    "\u064a": "\u06cc", "\u0649": "\u06cc", "\u0626": "\u06cc",  # Arabic/Urdu yeh forms
    "\u0643": "\u06a9",                                          # kaf
    "\u06c1": "\u0647", "\u06c0": "\u0647", "\u0629": "\u0647",  # heh forms, teh marbuta
    "\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627",  # alef forms
    "\u0624": "\u0648",                                          # waw with hamza
}


def _fold(code: int) -> str | None:
    """What one character becomes in a normalised message ("" deletes it)."""
    ch = chr(code)
    if ch in _DELETE:
        return ""
    if ch in _REPLACE:
        return _REPLACE[ch]
    if 0x0300 <= code <= 0x036F or 0x064B <= code <= 0x065F or code == 0x0670:
        return ""                                                # Latin combining accents, Arabic harakat
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""                                                # zero-width joiners, bidi marks, soft hyphen
    if category == "Nd":
        return str(unicodedata.decimal(ch, 0))
    if category[0] in "PSZ" or category in ("Cc", "Co", "Cn", "Cs"):
        return " "
    if category[0] == "L" and "LATIN" in unicodedata.name(ch, ""):
        stripped = "".join(c for c in unicodedata.normalize("NFD", ch) if not 0x0300 <= ord(c) <= 0x036F)
        return stripped or ch
    return ch


class _FoldTable(dict):
    """A str.translate table filled in lazily, one character at a time."""

    def __missing__(self, code: int) -> str | None:
        value = _fold(code)
        if len(self) < 65536:  # random or hostile text must not grow it without bound
            self[code] = value
        return value


_TABLE = _FoldTable()


def normalise(text: str) -> str:
    """The form both messages and lexicon terms are compared in."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _MYANMAR_ZERO_AS_WA.sub("\u101d", text)               # ၀ typed for ဝ inside Burmese words
    text = text.replace("\u103a\u1037", "\u1037\u103a")          # one storage order for asat + dot below
    text = text.translate(_TABLE)
    text = _REDUPLICATION.sub(r"\1 \1", text)                    # "tlg2" -> "tlg tlg", "laki2" -> "laki laki"
    text = _REPEATS.sub(r"\1", text)                             # "heeelp" -> "help", "bleeding" -> "bleding"
    text = " ".join(text.split())
    return _NO_SPACE_GAP.sub("", text)


def expand(term: str) -> list[str]:
    """``{a|b} c`` -> ``["a c", "b c"]``."""
    parts = _BRACES.split(term)
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


@dataclass(frozen=True, slots=True)
class _Entry:
    language: str
    category: str
    term: str


def _trie(words: list[str]) -> str:
    """One regex alternation for many literals, as a trie: fast, and prefers the longest."""
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(ch) + walk(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    return walk(root)


def _alternation(items: list[str]) -> str:
    items = sorted({normalise(i) for i in items if normalise(i)}, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(i) for i in items) + ")" if items else ""


class _Matcher:
    """One compiled pattern for a set of terms: whole words (with affixes), stems, and substrings."""

    def __init__(self, words: dict[str, object], stems: dict[str, object], substrings: dict[str, object],
                 prefixes: list[str] | tuple[str, ...] = (), suffixes: list[str] | tuple[str, ...] = ()):
        self.words, self.stems, self.substrings = words, stems, substrings
        prefix = _alternation(list(prefixes))
        suffix = _alternation(list(suffixes))
        prefix = prefix + "?" if prefix else ""
        suffix = suffix + "?" + suffix + "?" if suffix else ""
        spaced = []
        if words:
            spaced.append(f"(?P<w>{_trie(list(words))}){suffix}(?!\\S)")
        if stems:
            spaced.append(f"(?P<s>{_trie(list(stems))})")
        branches = []
        if spaced:
            branches.append(f"(?<!\\S){prefix}(?:{'|'.join(spaced)})")
        if substrings:
            branches.append(f"(?P<n>{_trie(list(substrings))})")
        self.pattern = re.compile("|".join(branches)) if branches else None

    def finditer(self, text: str):
        """(start, end, value) for each match."""
        if self.pattern is None:
            return
        tables = {"w": self.words, "s": self.stems, "n": self.substrings}
        for m in self.pattern.finditer(text):
            yield m.start(), m.end(), tables[m.lastgroup][m.group(m.lastgroup)]

    def sub(self, text: str) -> str:
        return self.pattern.sub(" ", text) if self.pattern is not None else text


def _split_terms(terms: list[tuple[str, object]]):
    """Sort (term, value) pairs into whole words, stems, substrings, alone and shouted terms, normalised."""
    words: dict[str, object] = {}
    stems: dict[str, object] = {}
    substrings: dict[str, object] = {}
    alone: dict[str, tuple[object, bool]] = {}
    for raw, value in terms:
        for term in expand(raw):
            marker = term[:1] if term[:1] in "^!" else ""
            body = term[len(marker):]
            stem = body.endswith("*")
            body = normalise(body.rstrip("*"))
            if not body:
                continue
            if marker:
                alone.setdefault(body, (value, marker == "!"))
            elif _NO_SPACE_CHAR.search(body):
                substrings.setdefault(body, value)
            elif stem:
                stems.setdefault(body, value)
            else:
                words.setdefault(body, value)
    return words, stems, substrings, alone


# Menu answers (digits, spaces, punctuation) are remembered: they are most of what workers send, reading one
# costs as much as reading a sentence, and unlike a sentence they say nothing personal to keep in memory.
_MENU_ANSWER = re.compile(r"[\d\s.,;:#*+\-()]{1,16}", re.ASCII)


class Triage:
    """Reads a message and says whether it is urgent, and why."""

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        """Built once at start from ``lexicon`` (default: the shipped word lists, see :mod:`bot.lexicon`)."""
        lexicon = lexicon or load_lexicon()
        self.languages = tuple(language.code for language in lexicon.languages)
        self.matchers: list[_Matcher] = []
        self.alone: dict[str, tuple[_Entry, bool]] = {}
        for language in lexicon.languages:
            terms = []
            for category, entries in language.danger_words.items():
                for raw in entries:
                    for term in expand(raw):
                        terms.append((term, _Entry(language.code, category, term.lstrip("^!").rstrip("*"))))
            words, stems, substrings, alone = _split_terms(terms)
            self.matchers.append(_Matcher(words, stems, substrings, language.prefixes, language.suffixes))
            for body, value in alone.items():
                self.alone.setdefault(body, value)
        safe = [(phrase, None) for language in lexicon.languages for phrase in language.safe_phrases]
        words, stems, substrings, _ = _split_terms(safe)
        self.safe = _Matcher(words, stems, substrings)
        self.rank = {category: i for i, category in enumerate(PRIORITY)}
        with warnings.catch_warnings():  # myanmartools reads its model with a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            self.zawgyi = ZawgyiDetector()

    def assess(self, text: str) -> Assessment:
        if not text or not isinstance(text, str):
            return NOT_URGENT
        if _MENU_ANSWER.fullmatch(text):  # "1", "2 3", "#": most messages; what they say is no secret
            return self._assess_menu_answer(text)
        return self._assess(text)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Triage lives as long as the process
    def _assess_menu_answer(self, text: str) -> Assessment:
        return self._assess(text)

    def _assess(self, text: str) -> Assessment:
        best: tuple | None = None
        for form in self._forms(text):
            found = self._assess_form(form, text)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        if best is None:
            return NOT_URGENT
        entry = best[1]
        return Assessment(True, entry.category, entry.language, entry.term)

    def _forms(self, text: str) -> list[str]:
        """The message, and its Unicode reading if it may be Zawgyi-encoded Burmese."""
        if not _MYANMAR.search(text):
            return [text]
        try:
            probability = self.zawgyi.get_zawgyi_probability(text)
            if math.isnan(probability) or probability <= 0.05:
                return [text]
            converted = zg_to_unicode(text, force=True)
            return [converted] if probability >= 0.95 else [text, converted]
        except Exception:  # a converter bug must never hide a message: read it as it came
            return [text]

    def _assess_form(self, raw: str, original: str) -> tuple | None:
        text = normalise(raw)
        if not text:
            return None
        found = self._alone(text, original)
        if found is not None:
            return (self.rank[found.category], -1, 0, 0), found
        text = self.safe.sub(text)
        best = None
        for index, matcher in enumerate(self.matchers):
            for start, end, entry in matcher.finditer(text):
                # most severe category, then earliest, then longest (the most specific language), then lexicon order
                key = (self.rank[entry.category], start, start - end, index)
                if best is None or key < best[0]:
                    best = key, entry
        return best

    def _alone(self, text: str, original: str) -> _Entry | None:
        """^ and ! terms: the whole message is the term, perhaps repeated ("tolong tolong")."""
        tokens = text.split()
        if len(tokens) > 8:
            return None
        deduped = [t for i, t in enumerate(tokens) if i == 0 or t != tokens[i - 1]]
        hit = self.alone.get(" ".join(deduped))
        if hit is None:
            return None
        entry, needs_shout = hit
        if needs_shout:
            folded = unicodedata.normalize("NFKC", original).casefold()
            shouted = "!" in folded or len(deduped) < len(tokens) or _ELONGATED.search(folded) is not None
            if not shouted:
                return None
        return entry
