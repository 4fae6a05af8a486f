"""The flow interpreter: moves a worker's conversation from node to node.

It knows nothing of channels or storage: it reads the :class:`Conversation` (where the worker is, their
slots and language), appends what to say, and calls the pipeline's actions for anything with effects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from bot.flows.model import FlowSet, Node
from bot.i18n import Catalogs, _, as_number, normalise
from bot.keywords import YesNo, says

MAX_STEPS = 200


class FlowRuntimeError(Exception):
    """A flow went somewhere it cannot (caught by the pipeline, which apologises to the worker)."""


@dataclass(frozen=True, slots=True)
class Say:
    """One text for the worker: a msgid with its fields, and choices to offer (numbered or buttons)."""

    text: str
    language: str | None
    params: dict = field(default_factory=dict)
    choices: tuple[tuple[str, bool], ...] = ()  # (label, whether the label is a msgid to translate)


@dataclass(slots=True)
class Conversation:
    """The state of one worker's conversation during one turn."""

    node: str | None
    slots: dict
    language: str | None
    said: list[Say] = field(default_factory=list)

    def say(self, text: str, choices: tuple[tuple[str, bool], ...] = (), **params: object) -> None:
        self.said.append(Say(text, self.language, {**self.slots, **params}, choices))


class Actions(Protocol):
    def __call__(self, name: str, args: dict, conversation: Conversation) -> str | None:
        """Run a built-in action; may return a node to go to instead of the node's ``next``."""


class Engine:
    def __init__(self, flows: FlowSet, catalogs: Catalogs):
        self.flows = flows
        self.catalogs = catalogs
        self.yes_no = YesNo(catalogs)

    def enter(self, conversation: Conversation, target: str, actions: Actions) -> None:
        """Run from ``target`` until the flow waits for an answer or ends."""
        current: str | None = target
        for _step in range(MAX_STEPS):
            if current is None:
                conversation.node = None
                return
            try:
                node = self.flows.node(current)
            except KeyError:
                raise FlowRuntimeError(f"no node {current!r}") from None
            current = self._step(node, conversation, actions)
            if current is None and node.waits:
                return
        raise FlowRuntimeError(f"more than {MAX_STEPS} steps without waiting for the worker (a loop?)")

    def ask_again(self, conversation: Conversation) -> None:
        """Repeat the question the worker is at (after a pause, or after an answer we did not understand)."""
        if conversation.node is None:
            return
        self._ask(self.flows.node(conversation.node), conversation)

    def answer(self, conversation: Conversation, text: str, pressed: str | None, actions: Actions) -> bool:
        """Give the waiting question the worker's answer. False (and the question again) if not understood."""
        if conversation.node is None:
            return False
        node = self.flows.node(conversation.node)
        if node.languages:
            language = self._match_language(text, pressed)
            if language is None:
                conversation.say(_("Sorry, I did not understand. Please reply with one of the numbers."))
                self._ask(node, conversation)
                return False
            conversation.slots[node.save] = language
            self.enter(conversation, node.next, actions)
            return True
        if node.multiple:
            picked = self._match_several(node, conversation.language, text, pressed)
            if not picked:
                conversation.say(_("Sorry, I did not understand. Please send the numbers that apply, for "
                                   "example: 1 4"))
                self._ask(node, conversation)
                return False
            conversation.slots[node.save] = [node.choices[i].value for i in picked]
            self.enter(conversation, node.next, actions)
            return True
        if node.choices:
            index = self._match_choice(node, conversation.language, text, pressed)
            if index is None:
                conversation.say(_("Sorry, I did not understand. Please reply with one of the numbers."))
                self._ask(node, conversation)
                return False
            choice = node.choices[index]
            if node.save:
                conversation.slots[node.save] = choice.value
            self.enter(conversation, choice.next, actions)
            return True
        if not text.strip():
            conversation.say(_("Please write your answer in a message."))
            self._ask(node, conversation)
            return False
        conversation.slots[node.save] = text.strip()
        self.enter(conversation, node.next, actions)
        return True

    def _step(self, node: Node, conversation: Conversation, actions: Actions) -> str | None:
        conversation.node = node.id
        if node.kind == "send":
            conversation.say(node.text)
            return node.next
        if node.kind == "end":
            if node.text:
                conversation.say(node.text)
            return None
        if node.kind == "ask":
            self._ask(node, conversation)
            return None
        if node.kind == "goto":
            return node.next
        if node.kind == "branch":
            for branch in node.branches:
                if all(str(conversation.slots.get(slot, "")) in values for slot, values in branch.conditions):
                    return branch.next
            return node.otherwise
        if node.kind == "action":
            redirect = actions(node.action or "", node.args, conversation)
            return redirect or node.next
        raise FlowRuntimeError(f"unknown node kind {node.kind!r}")  # pragma: no cover - the loader checks

    def _ask(self, node: Node, conversation: Conversation) -> None:
        conversation.node = node.id
        if node.languages:
            choices = tuple((self.catalogs.autonym(code), False) for code in self.catalogs.languages)
        else:
            choices = tuple((choice.label, True) for choice in node.choices)
        conversation.say(node.text, choices)

    def _match_choice(self, node: Node, language: str | None, text: str, pressed: str | None) -> int | None:
        number = as_number(pressed if pressed is not None else text)
        if number is not None:
            return number - 1 if 1 <= number <= len(node.choices) else None
        typed = normalise(text)
        if not typed:
            return None
        answer = self.yes_no(typed)
        if answer is not None:  # "yes" in any language, at a yes/no question: by what the labels say
            meant = [index for index, choice in enumerate(node.choices) if says(choice.label) == answer]
            if len(meant) == 1:
                return meant[0]
        for index, choice in enumerate(node.choices):
            names = {normalise(choice.label), normalise(self.catalogs.gettext(language, choice.label)),
                     normalise(choice.value)}
            if typed in names:
                return index
        return None

    def _match_several(self, node: Node, language: str | None, text: str, pressed: str | None) -> list[int]:
        """Every choice named: numbers in any script separated by spaces or commas ("1 4", "၁,၄"), or one
        label; an empty list when any part is not a choice."""
        if pressed is not None:
            one = self._match_choice(node, language, "", pressed)
            return [] if one is None else [one]
        parts = [p for p in re.split(r"[\s,;.+&/]+|\band\b", normalise(text)) if p]
        numbers = [as_number(p) for p in parts]
        if parts and all(n is not None and 1 <= n <= len(node.choices) for n in numbers):
            return sorted({n - 1 for n in numbers if n is not None})
        one = self._match_choice(node, language, text, None)
        return [] if one is None else [one]

    def _match_language(self, text: str, pressed: str | None) -> str | None:
        languages = self.catalogs.languages
        number = as_number(pressed if pressed is not None else text)
        if number is not None:
            return languages[number - 1] if 1 <= number <= len(languages) else None
        typed = normalise(text)
        for code in languages:
            if typed in (code, normalise(self.catalogs.autonym(code))):
                return code
        return None
