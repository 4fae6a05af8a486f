"""The triage word lists: the files of the ``triage/`` folder, one a language, read and checked.

A native speaker reviews and edits one language's file without reading Python; every mistake is reported as
``file:line: message`` (by ``helpline flows check``, and at the start of ``helpline serve``). What the lists
mean is written at the top of each file and in docs/TRIAGE.md; how a message is matched is :mod:`bot.triage`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.problems import Problem

CATEGORIES = ("violence", "sexual_violence", "confinement", "threat_to_life", "self_harm", "no_food_water",
              "medical", "trafficking", "sos")

ORDER_FILE = "languages.yaml"
KEYS = ("shorthands", "prefixes", "suffixes", "safe_phrases", "danger_words")
_CODE = re.compile(r"^[a-z]{2,3}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SHORTHAND = re.compile(r"<([^<>]*)>")
_STRING = "tag:yaml.org,2002:str"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed: the files are read at every start


class LexiconError(ValueError):
    """The word lists cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Language:
    """One language's lists, as written in its file, with the shorthands (``<me>``) filled in."""

    code: str
    file: str
    danger_words: dict[str, tuple[str, ...]]  # category -> words, in the file's order
    safe_phrases: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lexicon:
    folder: str
    languages: tuple[Language, ...]  # in the order of languages.yaml: a word in two languages reports the first


def shipped_folder() -> Path:
    """The word lists inside the installed package, or the repository's top-level triage/ in a checkout."""
    package = Path(__file__).resolve().parent
    packaged = package / "content" / "triage"
    return packaged if packaged.is_dir() else package.parent / "triage"


def load_lexicon(folder: str | Path | None = None) -> Lexicon:
    """The word lists of ``folder`` (default: the shipped ones); raises :class:`LexiconError` on any mistake."""
    lexicon, problems = read_lexicon(shipped_folder() if folder is None else folder)
    if lexicon is None:
        raise LexiconError(problems)
    return lexicon


def read_lexicon(folder: str | Path) -> tuple[Lexicon | None, list[Problem]]:
    """Read and check every file; the lexicon only when there is no problem at all."""
    folder = Path(folder)
    problems: list[Problem] = []
    if not folder.is_dir():
        return None, [Problem(str(folder), 0, "no such folder of triage word lists ([content] triage)")]
    order_file = folder / ORDER_FILE
    order = _read_order(order_file, problems) if order_file.is_file() else {}
    if not order_file.is_file():
        problems.append(Problem(str(order_file), 0, "missing: list the languages to read, in order "
                                                           "(see the shipped triage/languages.yaml)"))
    files = {path.stem: path for path in sorted(folder.glob("*.yaml")) if path.name != ORDER_FILE}
    for code, path in files.items():
        if not _CODE.match(code):
            problems.append(Problem(str(path), 0, "name a word list by its language code, e.g. id.yaml"))
        elif order and code not in order:
            problems.append(Problem(str(path), 0, f"{code!r} is not listed in {ORDER_FILE}, so triage would "
                                                         "not read it: add it there"))
    for code, line in order.items():
        if code not in files:
            problems.append(Problem(str(order_file), line, f"no word list for {code!r}: add {code}.yaml "
                                                                  "beside this file, or take the line out"))
    languages = [_read_language(code, files[code], problems) for code in order if code in files]
    if not problems and not any(language.danger_words for language in languages if language):
        problems.append(Problem(str(folder), 0, "no danger words: triage would find no worker in danger"))
    if problems:
        return None, problems
    return Lexicon(str(folder), tuple(language for language in languages if language)), []


def _compose(path: Path, problems: list[Problem]) -> yaml.Node | None:
    """The file's YAML as nodes (which know their lines), or None after saying what is wrong."""
    file = str(path)
    try:
        source = path.read_text(encoding="utf-8")
        node = yaml.compose(source, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        unclosed = _unclosed_quote(source)
        if unclosed:  # YAML notices it a line or more later
            problems.append(Problem(file, unclosed, "not valid YAML: a double quote is not closed"))
            return None
        # Where the problem was noticed, unless that is the end of the file: then where the trouble started.
        at_end = error.problem_mark is None or error.problem_mark.index >= len(source.rstrip())
        mark = (error.context_mark or error.problem_mark) if at_end else error.problem_mark
        what = f"{error.context}: {error.problem}" if error.context else error.problem
        problems.append(Problem(file, mark.line + 1 if mark else 0, f"not valid YAML: {what} (write each "
                                                                           "word in double quotes, one a line)"))
        return None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        problems.append(Problem(file, 0, f"not valid YAML: {error}"))
        return None
    except RecursionError:
        problems.append(Problem(file, 0, "not valid YAML: nested too deeply"))
        return None
    if node is None:
        problems.append(Problem(file, 1, "the file is empty"))
    return node


def _unclosed_quote(source: str) -> int | None:
    """The first line that leaves a double quote open: the likeliest slip in a list of quoted words."""
    for number, line in enumerate(source.splitlines(), start=1):
        text = line.strip()
        if not text.startswith("#") and (text.count('"') - text.count('\\"')) % 2:
            return number
    return None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.Node, file: str, what: str, problems: list[Problem]) -> list[tuple[str, int, yaml.Node]]:
    """(key, line, value) of a mapping; a key given twice or not a plain word is a problem."""
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(file, _line(node), f"{what} must be a mapping of names"))
        return []
    found: list[tuple[str, int, yaml.Node]] = []
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = _line(key_node)
        if not isinstance(key_node, yaml.ScalarNode) or not key_node.value:
            problems.append(Problem(file, line, f"{what}: a key must be a plain word"))
            continue
        key = key_node.value
        if key in seen:
            problems.append(Problem(file, line, f"{what}: {key!r} is given twice (first at line {seen[key]})"))
            continue
        seen[key] = line
        found.append((key, line, value_node))
    return found


def _words(node: yaml.Node, file: str, what: str, problems: list[Problem]) -> list[tuple[str, int]]:
    """(word, line) of a list of words; anything else is a problem at its line."""
    if not isinstance(node, yaml.SequenceNode):
        problems.append(Problem(file, _line(node), f"{what} must be a list of words, one a line: - \"word\""))
        return []
    found: list[tuple[str, int]] = []
    for item in node.value:
        line = _line(item)
        if not isinstance(item, yaml.ScalarNode) or item.tag != _STRING:
            shown = f" {item.value!r}" if isinstance(item, yaml.ScalarNode) and item.value else ""
            problems.append(Problem(file, line, f"{what}:{shown} is not a word: write each word in double "
                                                       "quotes, one a line: - \"word\""))
            continue
        word = item.value.strip()
        if not word:
            problems.append(Problem(file, line, f"{what}: an empty word"))
            continue
        found.append((word, line))
    return found


def _read_order(path: Path, problems: list[Problem]) -> dict[str, int]:
    """languages.yaml: language code -> its line, in order."""
    file = str(path)
    node = _compose(path, problems)
    if node is None:
        return {}
    order: dict[str, int] = {}
    for key, line, value in _mapping(node, file, ORDER_FILE, problems):
        if key != "languages":
            problems.append(Problem(file, line, f"unknown key {key!r} (expected languages)"))
            continue
        for code, at in _words(value, file, "languages", problems):
            if not _CODE.match(code):
                problems.append(Problem(file, at, f"{code!r} is not a language code (two or three lowercase "
                                                         "letters, e.g. id)"))
            elif code in order:
                problems.append(Problem(file, at, f"{code!r} is listed twice (first at line {order[code]})"))
            else:
                order[code] = at
    return order


def _read_language(code: str, path: Path, problems: list[Problem]) -> Language | None:
    file = str(path)
    node = _compose(path, problems)
    if node is None:
        return None
    sections = {key: (line, value) for key, line, value in _mapping(node, file, path.name, problems)}
    for key, (line, _value) in sections.items():
        if key not in KEYS:
            problems.append(Problem(file, line, f"unknown key {key!r} (expected {', '.join(KEYS)})"))
    shorthands: dict[str, str] = {}
    if "shorthands" in sections:
        for name, line, value in _mapping(sections["shorthands"][1], file, "shorthands", problems):
            if not _NAME.match(name):
                problems.append(Problem(file, line, f"shorthand {name!r}: a name is lowercase letters, e.g. me"))
            elif not isinstance(value, yaml.ScalarNode) or value.tag != _STRING or not value.value.strip():
                problems.append(Problem(file, line, f"shorthand {name!r}: write its alternatives in double "
                                                            "quotes, e.g. \"{saya|aku}\""))
            else:
                shorthands[name] = value.value.strip()

    def words(node: yaml.Node, what: str, seen: dict[str, int]) -> tuple[str, ...]:
        kept = []
        for word, line in _words(node, file, what, problems):
            key = " ".join(word.casefold().split())
            if key in seen:
                problems.append(Problem(file, line, f"{what}: {word!r} is listed twice (first at line "
                                                           f"{seen[key]}); keep one"))
                continue
            seen[key] = line
            written = _fill(word, shorthands, file, line, what, problems)
            if written is not None:
                kept.append(written)
        return tuple(kept)

    lists = {key: words(sections[key][1], key, {}) for key in ("prefixes", "suffixes", "safe_phrases")
             if key in sections}
    danger: dict[str, tuple[str, ...]] = {}
    if "danger_words" not in sections:
        problems.append(Problem(file, 1, f"no danger_words: list them under the categories "
                                                f"({', '.join(CATEGORIES)})"))
    else:
        seen: dict[str, int] = {}
        for category, line, value in _mapping(sections["danger_words"][1], file, "danger_words", problems):
            if category not in CATEGORIES:
                problems.append(Problem(file, line, f"unknown category {category!r} (expected one of "
                                                           f"{', '.join(CATEGORIES)})"))
                continue
            danger[category] = words(value, category, seen)
    return Language(code, file, danger, lists.get("safe_phrases", ()), lists.get("prefixes", ()),
                    lists.get("suffixes", ()))


def _fill(word: str, shorthands: dict[str, str], file: str, line: int, what: str,
          problems: list[Problem]) -> str | None:
    """The word with its shorthands written out, or None after saying what is wrong with it."""
    for name in _SHORTHAND.findall(word):
        if name not in shorthands:
            known = ", ".join(f"<{n}>" for n in shorthands) or "none"
            problems.append(Problem(file, line, f"{what}: {word!r} uses the shorthand <{name}>, which this "
                                                       f"file does not define (it has: {known})"))
            return None
    written = _SHORTHAND.sub(lambda m: shorthands[m.group(1)], word)
    depth = 0
    for ch in written:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth not in (0, 1):
            break
    if depth != 0 or "<" in written or ">" in written:
        problems.append(Problem(file, line, f"{what}: {word!r}: write alternatives as {{a|b}} (one pair of "
                                                   "braces, not nested) and shorthands as <name>"))
        return None
    if not written.lstrip("^!").rstrip("*").strip():
        problems.append(Problem(file, line, f"{what}: {word!r} has nothing to match"))
        return None
    return written
