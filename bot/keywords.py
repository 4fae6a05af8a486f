"""Global keywords: words that work from any point of a conversation, in every language.

Each keyword's spellings come from the catalogs (context ``keyword``, spellings separated by commas), so a
translator adds ``MENÚ`` or ``မီနူး`` without touching code. The English word always works too.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import Catalogs, normalise, pgettext

# keyword -> its English spellings, marked for the catalogs.
KEYWORDS: dict[str, str] = {
    "menu": pgettext("keyword", "MENU, HELP, INFO"),
    "language": pgettext("keyword", "LANG, LANGUAGE"),
    "stop": pgettext("keyword", "STOP, STOPALL, UNSUBSCRIBE"),
    # Leave what is under way (a report, a question): never an opt-out, so "cancel" does not silence a worker.
    "leave": pgettext("keyword", "CANCEL, END, QUIT, EXIT"),
    "start": pgettext("keyword", "START"),
    # Only while opted out: "yes" is an ordinary answer otherwise.
    "opt_in": pgettext("keyword", "UNSTOP, YES"),
    "status": pgettext("keyword", "STATUS"),
    "sos": pgettext("keyword", "SOS"),
    "delete": pgettext("keyword", "DELETE, ERASE"),
    "pin": pgettext("keyword", "PIN"),
}
# The answers to a yes/no question, in every language (a choice whose label is "Yes" or "Yes, ..." is the
# yes; "No" or "No, ..." the no: labels say what a choice means, values may not, as in "contact me?").
ANSWERS: dict[str, str] = {
    "yes": pgettext("answer", "YES, Y, OK"),
    "no": pgettext("answer", "NO, N"),
}
# Telegram-style commands, e.g. /start, /menu@HelplineBot.
COMMANDS = {"start": "start", "menu": "menu", "help": "menu", "language": "language", "lang": "language",
            "status": "status", "stop": "stop", "sos": "sos", "delete": "delete", "cancel": "leave"}
ARGUMENT_TAKERS = {"status", "pin"}


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    argument: str = ""
    command: bool = False


def says(label: str) -> str | None:
    """"yes" or "no" for a choice labelled as one (in the flows' English), else None."""
    for answer, word in (("yes", "Yes"), ("no", "No")):
        if label == word or label.startswith(word + ","):
            return answer
    return None


class YesNo:
    """Every spelling of yes and no, from every catalog, built once at start."""

    def __init__(self, catalogs: Catalogs):
        self.words = {word: answer for answer, spellings in ANSWERS.items()
                      for word in catalogs.keyword_words("answer", spellings)}

    def __call__(self, text: str) -> str | None:
        """"yes", "no", or None when ``text`` is neither."""
        return self.words.get(normalise(text))


class KeywordTable:
    """Every spelling of every keyword, from every catalog, built once at start."""

    def __init__(self, catalogs: Catalogs):
        self.words: dict[str, str] = {}
        for name, spellings in KEYWORDS.items():
            for word in catalogs.keyword_words("keyword", spellings):
                for part in word.split(","):
                    if part.strip():
                        self.words.setdefault(part.strip(), name)

    def match(self, text: str, commands: bool = False) -> Keyword | None:
        """The keyword a whole message is, if any (``STATUS K7F3-QP9M`` carries an argument)."""
        folded = normalise(text)
        if commands and folded.startswith("/"):
            head, _, rest = folded[1:].partition(" ")
            name = COMMANDS.get(head.split("@", 1)[0])
            return Keyword(name, rest.strip(), command=True) if name else None
        if folded in self.words:
            return Keyword(self.words[folded])
        head, _, rest = folded.partition(" ")
        name = self.words.get(head)
        if name in ARGUMENT_TAKERS and rest:
            return Keyword(name, rest.strip())
        return None
