"""The built-in actions a flow's ``action`` node may call (docs/FLOWS.md), as one registry: name → handler.

The loader accepts exactly these names (an unknown one is an error at its file and line), and the pipeline
runs a node's action through this table, so a documented action cannot be accepted and then do nothing.
A handler gets the worker's turn (:class:`bot.pipeline.Turn`), the node's ``with`` arguments and the
conversation; it may return a node to go to instead of the node's ``next``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.flows.engine import Conversation
    from bot.pipeline import Turn

Handler = Callable[["Turn", dict, "Conversation"], "str | None"]


def set_language(turn: Turn, args: dict, conversation: Conversation) -> None:
    turn.set_language(conversation.slots.get(args.get("slot", "language")))


def open_case(turn: Turn, args: dict, conversation: Conversation) -> None:
    turn.open_case(kind=str(args.get("kind", "complaint")), urgent=bool(args.get("urgent", False)))


def escalate(turn: Turn, args: dict, conversation: Conversation) -> None:
    turn.escalate(urgent=bool(args.get("urgent", True)))


def status(turn: Turn, args: dict, conversation: Conversation) -> None:
    turn.status(str(conversation.slots.get("reference", "")))


def erase(turn: Turn, args: dict, conversation: Conversation) -> None:
    turn.erase()


ACTIONS: dict[str, Handler] = {
    "set_language": set_language,
    "open_case": open_case,
    "escalate": escalate,
    "status": status,
    "erase": erase,
}
