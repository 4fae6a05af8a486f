"""Finding, loading and checking the content: flows, catalogs and triage word lists together.

:func:`check_content` is what ``helpline flows check`` prints and what ``helpline serve`` runs before it
opens a port, so a broken flow, catalog or word list stops the bot at start, never in front of a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.extract import extract_from_dir

from bot import sms
from bot.config import Config
from bot.flows.loader import FlowError, Problem, load_flows
from bot.flows.model import FlowSet
from bot.i18n import Catalogs, fill, placeholders
from bot.lexicon import Lexicon, read_lexicon, shipped_folder

PACKAGE = Path(__file__).resolve().parent


def _default(name: str) -> Path:
    """Shipped content: inside the installed package, or the repository's top-level folder when run from a
    checkout (editable install)."""
    packaged = PACKAGE / "content" / name
    return packaged if packaged.is_dir() else PACKAGE.parent / name


def content_paths(config: Config) -> tuple[Path, Path]:
    flows = Path(config.content.flows) if config.content.flows else _default("flows")
    locales = Path(config.content.locales) if config.content.locales else _default("locales")
    return flows, locales


def triage_path(config: Config) -> Path:
    """The folder of triage word lists, one file a language (``[content] triage``)."""
    return Path(config.content.triage) if config.content.triage else shipped_folder()


@dataclass
class ContentReport:
    """Everything ``flows check`` says of the content."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    locales: dict = field(default_factory=dict)
    messages: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    triage: dict = field(default_factory=dict)
    flows: FlowSet | None = None
    catalogs: Catalogs | None = None
    lexicon: Lexicon | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "errors": [p.as_json() for p in self.errors],
            "warnings": [p.as_json() for p in self.warnings],
            "locales": self.locales,
            "messages": self.messages,
            "sources": self.sources,
            "triage": self.triage,
        }


def code_texts() -> dict[str, tuple[str, int]]:
    """The worker-facing texts marked in the code with ``_()`` (msgid -> file, line), read as Babel would."""
    found: dict[str, tuple[str, int]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        PACKAGE, method_map=[("**.py", "python")], keywords={"_": None}
    ):
        if isinstance(message, str) and context is None:
            found.setdefault(message, (str(PACKAGE / filename), lineno))
    return found


def check_content(config: Config) -> ContentReport:
    """Load and check flows, catalogs and triage word lists, and the texts the code itself sends."""
    code_msgids = code_texts()
    flows_dir, locales_dir = content_paths(config)
    report = ContentReport()
    try:
        report.flows = load_flows(flows_dir)
    except FlowError as error:
        report.errors.extend(error.problems)
    report.lexicon, problems = read_lexicon(triage_path(config))
    report.errors.extend(problems)
    if report.lexicon is not None:
        report.triage = {
            language.code: {"file": language.file,
                            "danger_words": sum(len(words) for words in language.danger_words.values()),
                            "safe_phrases": len(language.safe_phrases)}
            for language in report.lexicon.languages
        }
    if not locales_dir.is_dir():
        report.errors.append(Problem(str(locales_dir), 0, "no such folder of catalogs ([content] locales)"))
        return report
    try:
        catalogs = Catalogs(locales_dir, config.content.default_language)
    except Exception as error:  # a .po file Babel cannot read
        report.errors.append(Problem(str(locales_dir), 0, f"cannot read the catalogs: {error}"))
        return report
    report.catalogs = catalogs
    if config.content.default_language not in catalogs.languages:
        report.errors.append(Problem(config.source, 0, f"[content] default_language "
                                     f"{config.content.default_language!r} has no catalog (have: "
                                     f"{', '.join(catalogs.languages)})"))
    texts: dict[str, tuple[str, int]] = dict(code_msgids or {})
    if report.flows is not None:
        for text in report.flows.texts():
            texts.setdefault(text.msgid, (text.file, text.line))
            for source in text.sources:
                report.sources.append({
                    "node": text.node, "file": text.file, "line": text.line, "cite": source.cite,
                    "url": source.url, "as_of": source.as_of, "confidence": source.confidence,
                })
    template = catalogs.template
    if template is None:
        report.errors.append(Problem(str(locales_dir / "helpline.pot"), 0,
                                     "no template; run the extract command in the README"))
    for msgid, (file, line) in texts.items():
        if template is not None and template.get(msgid) is None:
            report.errors.append(Problem(file, line, f"text missing from the catalog template: {msgid[:60]!r} "
                                                     "(extract and update the catalogs, see the README)"))
    for code in catalogs.languages:
        catalog = catalogs.catalog(code)
        if catalog is None:
            continue
        for msgid, (file, line) in texts.items():
            message = catalog.get(msgid)
            if message is None or not message.string:
                report.warnings.append(Problem(file, line, f"[{code}] not translated yet: {msgid[:60]!r}"))
            elif placeholders(message.string) - placeholders(msgid):
                report.errors.append(Problem(
                    str(catalogs.folder / code / "LC_MESSAGES" / "helpline.po"), message.lineno,
                    f"[{code}] translation of {msgid[:40]!r} uses fields the text does not have: "
                    f"{sorted(placeholders(message.string) - placeholders(msgid))}"))
    report.locales = {
        code: {"name": info.name, "coverage": info.coverage, "status": info.status, "catalog": info.path}
        for code, info in catalogs.locales(set(texts)).items()
    }
    budget = config.sms.segment_budget
    for code in catalogs.languages:
        for msgid in sorted(texts):
            rendered = sms.fit(fill(catalogs.gettext(code, msgid), {}))
            cost = sms.segment_info(rendered)
            report.messages.append({"id": msgid, "locale": code, "encoding": cost.encoding,
                                    "segments": cost.segments})
            if cost.segments > budget:
                file, line = texts[msgid]
                report.warnings.append(Problem(file, line, f"[{code}] costs {cost.segments} SMS segments "
                                                           f"(budget {budget}): {msgid[:50]!r}"))
    return report
