"""The flow model: nodes read from the flow files, with the file and line each came from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

NODE_KINDS = ("send", "ask", "branch", "action", "goto", "end")
# Flows the bot itself enters: on a first message, on MENU, on LANG, on SOS.
ENTRY_FLOWS = ("main", "language", "danger")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a fact in a text comes from."""

    cite: str
    url: str = ""
    as_of: str = ""
    confidence: str = ""


@dataclass(frozen=True, slots=True)
class Choice:
    label: str
    value: str
    next: str
    line: int


@dataclass(frozen=True, slots=True)
class Branch:
    conditions: tuple[tuple[str, tuple[str, ...]], ...]
    next: str


@dataclass(frozen=True, slots=True)
class Node:
    """One step of a flow. ``id`` is qualified: ``flow.node``."""

    id: str
    kind: str
    file: str
    line: int
    text: str = ""
    choices: tuple[Choice, ...] = ()
    languages: bool = False
    multiple: bool = False
    save: str | None = None
    next: str | None = None
    branches: tuple[Branch, ...] = ()
    otherwise: str | None = None
    action: str | None = None
    args: dict = field(default_factory=dict)
    sources: tuple[Source, ...] = ()

    @property
    def flow(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def waits(self) -> bool:
        return self.kind == "ask"

    def targets(self) -> Iterator[str]:
        """Every node this node can lead to."""
        if self.next:
            yield self.next
        for choice in self.choices:
            if choice.next:
                yield choice.next
        for branch in self.branches:
            yield branch.next
        if self.otherwise:
            yield self.otherwise


@dataclass(frozen=True, slots=True)
class Text:
    """A worker-facing text in a flow file, as the catalogs must carry it."""

    msgid: str
    file: str
    line: int
    node: str
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowSet:
    """All flows, by qualified node id, with each flow's start node."""

    nodes: dict[str, Node]
    starts: dict[str, str]

    def node(self, target: str) -> Node:
        """The node a target names: ``flow.node``, or ``flow`` for its start."""
        return self.nodes[self.starts.get(target, target)]

    def texts(self) -> Iterator[Text]:
        for node in self.nodes.values():
            if node.text:
                yield Text(node.text, node.file, node.line, node.id, node.sources)
            for choice in node.choices:
                yield Text(choice.label, node.file, choice.line, node.id)
