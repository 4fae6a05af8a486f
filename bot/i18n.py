"""Catalogs, languages and the reading of what workers type (native digits, keywords).

Every text a worker sees is a msgid translated here. Catalogs are the Babel/gettext ``.po`` files in
``locales/<lang>/LC_MESSAGES/helpline.po``; a compiled ``.mo`` is used when it is newer than its ``.po``,
otherwise the ``.po`` is compiled in memory at start.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "helpline"
SOURCE_LANGUAGE = "en"
REVIEW_MARK = "Review-Status:"


def _(message: str) -> str:
    """Marks a worker-facing text for extraction; the pipeline translates it when it renders."""
    return message


def pgettext(context: str, message: str) -> str:
    """Marks a text with a context (``keyword``) for extraction."""
    return message


@dataclass(frozen=True, slots=True)
class LocaleInfo:
    """What ``flows check`` reports of one catalog."""

    code: str
    name: str
    coverage: float
    status: str
    path: str


class Catalogs:
    """The translations of every language, loaded once at start."""

    def __init__(self, folder: str | Path, default_language: str = SOURCE_LANGUAGE):
        self.folder = Path(folder)
        self.default = default_language
        self._translations: dict[str, gettext.NullTranslations] = {SOURCE_LANGUAGE: gettext.NullTranslations()}
        self._catalogs: dict[str, Catalog] = {}
        self.review: dict[str, str] = {SOURCE_LANGUAGE: "source"}
        template = self.folder / f"{DOMAIN}.pot"
        self.template: Catalog | None = None
        if template.exists():
            with template.open("rb") as handle:
                self.template = read_po(handle)
        for po_path in sorted(self.folder.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            code = po_path.parent.parent.name
            with po_path.open("rb") as handle:
                catalog = read_po(handle, locale=code)
            self._catalogs[code] = catalog
            self._translations[code] = _compiled(po_path, catalog)
            self.review[code] = _review_status(catalog)
        if self.default not in self._translations:
            self.default = SOURCE_LANGUAGE
        self.languages: tuple[str, ...] = (SOURCE_LANGUAGE, *sorted(c for c in self._catalogs if c != SOURCE_LANGUAGE))

    def gettext(self, language: str | None, message: str) -> str:
        translations = self._translations.get(language or self.default) or self._translations[self.default]
        return translations.gettext(message)

    def pgettext(self, language: str | None, context: str, message: str) -> str:
        translations = self._translations.get(language or self.default) or self._translations[self.default]
        return translations.pgettext(context, message)

    def knows(self, language: str | None) -> bool:
        return bool(language) and language in self._translations

    def best_match(self, hint: str | None) -> str | None:
        """The catalog language for a client's language code (``pt-BR`` -> ``pt``), if we have one."""
        if not hint:
            return None
        code = hint.replace("-", "_").split("_")[0].lower()
        return code if code in self._translations else None

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def autonym(code: str) -> str:
        """The language's name in its own script, e.g. ``my`` -> ``မြန်မာ``."""
        try:
            name = Locale.parse(code).get_display_name(code) or code
        except (ValueError, LookupError):
            return code
        return name[:1].upper() + name[1:]

    def keyword_words(self, context: str, message: str) -> set[str]:
        """Every spelling of a keyword in every language (the catalogs list them separated by commas)."""
        words = {normalise(message)}
        for code in self.languages:
            for word in self.pgettext(code, context, message).split(","):
                if word.strip():
                    words.add(normalise(word))
        return words

    def locales(self, msgids: set[str]) -> dict[str, LocaleInfo]:
        """Coverage of ``msgids`` and review status, per language."""
        result = {SOURCE_LANGUAGE: LocaleInfo(SOURCE_LANGUAGE, self.autonym(SOURCE_LANGUAGE), 1.0, "source", "")}
        for code, catalog in self._catalogs.items():
            done = sum(1 for msgid in msgids if (m := catalog.get(msgid)) is not None and m.string)
            coverage = done / len(msgids) if msgids else 1.0
            result[code] = LocaleInfo(code, self.autonym(code), round(coverage, 4), self.review[code],
                                      str(self.folder / code / "LC_MESSAGES" / f"{DOMAIN}.po"))
        return result

    def catalog(self, code: str) -> Catalog | None:
        return self._catalogs.get(code)


def _compiled(po_path: Path, catalog: Catalog) -> gettext.GNUTranslations:
    mo_path = po_path.with_suffix(".mo")
    if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
        with mo_path.open("rb") as handle:
            return gettext.GNUTranslations(handle)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def _review_status(catalog: Catalog) -> str:
    """The ``Review-Status:`` line of the catalog's header comment; unmarked catalogs need review."""
    for line in (catalog.header_comment or "").splitlines():
        line = line.lstrip("# ").strip()
        if line.startswith(REVIEW_MARK):
            return line[len(REVIEW_MARK):].strip() or "needs review"
    return "needs review"


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields in a text."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}
    except ValueError:
        return {"<unbalanced braces>"}


class _Slots(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(text: str, values: dict) -> str:
    """``text`` with its ``{name}`` fields filled; an unknown field stays as it is, never an error."""
    try:
        return text.format_map(_Slots(values))
    except (ValueError, IndexError, AttributeError):
        return text


_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """What a worker typed, folded for matching: NFKC, case folded, native digits as ASCII, spaces squeezed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(str(unicodedata.decimal(ch)) if unicodedata.decimal(ch, None) is not None else ch for ch in text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\n\t")
    return _SPACES.sub(" ", text).strip().casefold()


def as_number(text: str) -> int | None:
    """A choice number typed in any script (``2``, ``၂``, ``২``, ``٢``, ``๒``, ``2.``), else None."""
    folded = normalise(text).rstrip(".)")
    return int(folded) if folded.isascii() and folded.isdigit() and len(folded) <= 3 else None
