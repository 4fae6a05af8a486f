"""Reading flow files into a :class:`FlowSet`, with every problem reported as ``file:line: message``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from bot.flows.actions import ACTIONS
from bot.flows.model import ENTRY_FLOWS, NODE_KINDS, Branch, Choice, FlowSet, Node, Source
from bot.problems import Problem


class FlowError(Exception):
    """The flows cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Map(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line = 0
    lines: dict[str, int]


class _List(list):
    line = 0


class _Loader(yaml.SafeLoader):
    """Safe YAML with line numbers, and without YAML 1.1's yes/no/on/off booleans (labels say "Yes")."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) or key is None:
            raise yaml.MarkedYAMLError(problem="a key must be a plain word", problem_mark=key_node.start_mark)
        if key in result:
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_list(loader: _Loader, node: yaml.SequenceNode) -> _List:
    result = _List(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_list)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ALL_KEYS = {"next", "sources", "choices", "save", "else", "with", "multiple"}
_NODE_KEYS = {
    "send": {"next", "sources"},
    "ask": {"choices", "save", "next", "sources", "multiple"},
    "branch": {"else"},
    "action": {"with", "next"},
    "goto": set(),
    "end": {"sources"},
}


def load_flows(folder: str | Path) -> FlowSet:
    """Read every ``*.yaml`` flow in ``folder``; raise :class:`FlowError` listing every problem found."""
    folder = Path(folder)
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    starts: dict[str, str] = {}
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise FlowError([Problem(str(folder), 0, "no flow files (*.yaml) in this folder")])
    for path in files:
        _read_file(path, nodes, starts, problems)
    nodes = {node_id: _resolve_flow_names(node, nodes, starts) for node_id, node in nodes.items()}
    _check_links(nodes, starts, problems, str(folder))
    if problems:
        raise FlowError(problems)
    return FlowSet(nodes=nodes, starts=starts)


def _read_file(path: Path, nodes: dict[str, Node], starts: dict[str, str], problems: list[Problem]) -> None:
    file = str(path)
    try:
        source = path.read_text(encoding="utf-8")
        data = yaml.load(source, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as error:
        # Where the problem was noticed, unless that is the end of the file (an unclosed quote): then where the
        # trouble started.
        at_end = error.problem_mark is None or error.problem_mark.index >= len(source.rstrip())
        mark = (error.context_mark or error.problem_mark) if at_end else error.problem_mark
        what = f"{error.context}: {error.problem}" if error.context else error.problem
        problems.append(Problem(file, mark.line + 1 if mark else 0, f"not valid YAML: {what}"))
        return
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problems.append(Problem(file, 0, f"not valid YAML: {error}"))
        return
    except RecursionError:
        problems.append(Problem(file, 0, "not a flow file: nested too deeply"))
        return
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as error:
        # A value YAML itself refuses (a key that is a list, "!!int main"): say so, never crash.
        problems.append(Problem(file, 0, f"not valid YAML: {type(error).__name__}: {error}"))
        return
    if not isinstance(data, _Map):
        problems.append(Problem(file, 1, "a flow file is a mapping with keys flow, start and nodes"))
        return
    for key in set(data) - {"flow", "start", "nodes"}:
        problems.append(Problem(file, data.lines[key], f"unknown key {key!r} (expected flow, start, nodes)"))
    flow = data.get("flow")
    if not isinstance(flow, str) or not _NAME.match(flow):
        problems.append(Problem(file, data.lines.get("flow", 1), "'flow' must be a lowercase name, e.g. main"))
        return
    if flow in starts:
        problems.append(Problem(file, data.lines["flow"], f"flow {flow!r} is defined in another file too"))
        return
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, _Map) or not raw_nodes:
        problems.append(Problem(file, data.lines.get("nodes", 1), "'nodes' must be a mapping of node names"))
        return
    start = data.get("start")
    if not isinstance(start, str) or start not in raw_nodes:
        problems.append(Problem(file, data.lines.get("start", 1),
                                f"'start' must name a node of this file, not {start!r}"))
    else:
        starts[flow] = f"{flow}.{start}"
    for name, raw in raw_nodes.items():
        line = raw_nodes.lines[name]
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(Problem(file, line, f"node name {name!r} must be lowercase letters, digits and _"))
            continue
        node = _read_node(flow, name, raw, file, line, problems)
        if node is not None:
            nodes[node.id] = node


def _read_node(flow: str, name: str, raw: Any, file: str, line: int, problems: list[Problem]) -> Node | None:
    def problem(message: str, at: int | None = None) -> None:
        problems.append(Problem(file, at or line, f"node {name!r}: {message}"))

    if not isinstance(raw, _Map):
        problem(f"must be a mapping with one of {', '.join(NODE_KINDS)}")
        return None
    kinds = [k for k in NODE_KINDS if k in raw]
    if len(kinds) != 1:
        others = ", ".join(str(k) for k in raw if k not in NODE_KINDS and k not in _ALL_KEYS)
        found = ", ".join(kinds) or "none" + (f"; unknown key {others}" if others else "")
        problem(f"must have exactly one of {', '.join(NODE_KINDS)} (has {found})")
        return None
    kind = kinds[0]
    for key in raw:
        if key != kind and key not in _NODE_KEYS[kind]:
            problem(f"unknown key {key!r} for a {kind} node", raw.lines[key])

    def target(value: Any, key: str, at: int) -> str | None:
        if not isinstance(value, str) or not value:
            problem(f"{key!r} must name a node", at)
            return None
        return value if "." in value else f"{flow}.{value}"

    def text(key: str) -> str:
        value = raw[key]
        if not isinstance(value, str):
            problem(f"{key!r} must be text in quotes", raw.lines[key])
            return ""
        if kind != "end" and not value.strip():
            problem(f"{key!r} must not be empty", raw.lines[key])
        return value

    fields: dict[str, Any] = {"id": f"{flow}.{name}", "kind": kind, "file": file, "line": line}
    if "next" in raw:
        fields["next"] = target(raw["next"], "next", raw.lines["next"])
    if "sources" in raw:
        fields["sources"] = _read_sources(raw["sources"], problem)
    if kind in ("send", "end", "ask"):
        fields["text"] = text(kind)
    if kind == "send" and raw.get("next") is None and "next" in raw:
        problem("'next' must name a node")
    if "multiple" in raw and raw["multiple"] is not True:
        problem("'multiple' is either true or left out", raw.lines["multiple"])
    if kind == "ask":
        save = raw.get("save")
        if save is not None and (not isinstance(save, str) or not _NAME.match(save)):
            problem("'save' must be a slot name (lowercase letters, digits, _)", raw.lines["save"])
            save = None
        fields["save"] = save
        choices = raw.get("choices")
        if choices == "languages":
            fields["languages"] = True
            if not save or "next" not in raw:
                problem("a language question needs 'save' and 'next'")
        elif choices is None:
            if not save or "next" not in raw:
                problem("a free-text question needs 'save' (the slot) and 'next'")
        elif isinstance(choices, _List) and choices and raw.get("multiple") is True:
            # Several answers at once ("1 4"): one way on, the node's next; the values go into the slot as a list.
            fields["multiple"] = True
            fields["choices"] = tuple(_read_choices(choices, target, problem, needs_next=False,
                                                    default_next=fields.get("next") or ""))
            if not save or "next" not in raw:
                problem("a question with several answers needs 'save' and 'next' on the node")
        elif isinstance(choices, _List) and choices:
            fields["choices"] = tuple(_read_choices(choices, target, problem))
            if "next" in raw:
                problem("a question with choices takes 'next' in each choice, not on the node", raw.lines["next"])
        else:
            problem("'choices' must be a list of {label, next} or the word languages", raw.lines["choices"])
    elif kind == "branch":
        branches = raw["branch"]
        if not isinstance(branches, _List) or not branches:
            problem("'branch' must be a list of {if: {slot: value}, next: node}", raw.lines["branch"])
        else:
            fields["branches"] = tuple(_read_branches(branches, target, problem))
        if "else" not in raw:
            problem("a branch needs 'else': where to go when no condition holds")
        else:
            fields["otherwise"] = target(raw["else"], "else", raw.lines["else"])
    elif kind == "action":
        action = raw["action"]
        if action not in ACTIONS:
            problem(f"unknown action {action!r} (known: {', '.join(ACTIONS)})", raw.lines["action"])
        fields["action"] = action
        args = raw.get("with", {})
        if not isinstance(args, dict):
            problem("'with' must be a mapping", raw.lines["with"])
            args = {}
        fields["args"] = dict(args)
    elif kind == "goto":
        fields["next"] = target(raw["goto"], "goto", raw.lines["goto"])
    return Node(**fields)


def _read_choices(choices: _List, target, problem, needs_next: bool = True, default_next: str = "") -> list[Choice]:
    result = []
    for index, raw in enumerate(choices, start=1):
        at = getattr(raw, "line", choices.line)
        if not isinstance(raw, _Map) or not isinstance(raw.get("label"), str) or not raw["label"].strip():
            problem(f"choice {index} needs a 'label' in quotes", at)
            continue
        for key in set(raw) - {"label", "value", "next"}:
            problem(f"choice {index}: unknown key {key!r}", raw.lines[key])
        if not needs_next:
            if "next" in raw:
                problem(f"choice {index}: a question with several answers takes 'next' on the node", at)
            result.append(Choice(label=raw["label"], value=str(raw.get("value", raw["label"])), next=default_next,
                                 line=at))
            continue
        if "next" not in raw:
            problem(f"choice {index} ({raw['label']!r}) has no 'next': where does it lead?", at)
            continue
        nxt = target(raw["next"], "next", raw.lines["next"])
        value = raw.get("value", raw["label"])
        if nxt:
            result.append(Choice(label=raw["label"], value=str(value), next=nxt, line=at))
    return result


def _read_branches(branches: _List, target, problem) -> list[Branch]:
    result = []
    for index, raw in enumerate(branches, start=1):
        at = getattr(raw, "line", branches.line)
        if not isinstance(raw, _Map) or not isinstance(raw.get("if"), dict) or "next" not in raw:
            problem(f"branch {index} must be {{if: {{slot: value}}, next: node}}", at)
            continue
        conditions = []
        for slot, value in raw["if"].items():
            values = tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)
            conditions.append((str(slot), values))
        nxt = target(raw["next"], "next", raw.lines["next"])
        if nxt:
            result.append(Branch(conditions=tuple(conditions), next=nxt))
    return result


def _read_sources(raw: Any, problem) -> tuple[Source, ...]:
    if not isinstance(raw, list):
        problem("'sources' must be a list of {cite, url, as_of, confidence}")
        return ()
    sources = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("cite"), str):
            problem("each source needs at least 'cite' (the law and article, or the organisation)",
                    getattr(item, "line", None))
            continue
        confidence = str(item.get("confidence", ""))
        if confidence not in ("", "confirmed", "secondary"):
            problem(f"source confidence must be confirmed or secondary, not {confidence!r}", item.line)
        sources.append(Source(cite=item["cite"], url=str(item.get("url", "")),
                              as_of=str(item.get("as_of", "")), confidence=confidence))
    return tuple(sources)


def _resolve_flow_names(node: Node, nodes: dict[str, Node], starts: dict[str, str]) -> Node:
    """A bare name that is no node of its own file but another flow's name means that flow's start."""

    def resolve(name: str | None) -> str | None:
        if name is None or name in nodes:
            return name
        flow, bare = name.split(".", 1)
        return starts.get(bare, name) if flow == node.flow else name

    return dataclasses.replace(
        node,
        next=resolve(node.next),
        otherwise=resolve(node.otherwise),
        choices=tuple(dataclasses.replace(c, next=resolve(c.next)) for c in node.choices),
        branches=tuple(dataclasses.replace(b, next=resolve(b.next)) for b in node.branches),
    )


def _check_links(nodes: dict[str, Node], starts: dict[str, str], problems: list[Problem], folder: str) -> None:
    def resolve(name: str) -> str | None:
        name = starts.get(name, name)
        return name if name in nodes else None

    broken = False
    for node in nodes.values():
        for name in node.targets():
            if resolve(name) is None:
                problems.append(Problem(node.file, node.line, f"node {node.id!r} leads to unknown node {name!r}"))
                broken = True
    missing = [flow for flow in ENTRY_FLOWS if flow not in starts]
    for flow in missing:
        problems.append(Problem(folder, 0, f"the flow {flow!r} is missing; the bot enters it by itself"))
    seen: set[str] = set()
    todo = [starts[flow] for flow in ENTRY_FLOWS if flow in starts]
    todo += [f"main.{name}" for name in ("menu",) if f"main.{name}" in nodes]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(t for t in (resolve(n) for n in nodes[current].targets()) if t)
    if broken:
        return  # a mistyped target strands every node behind it: report the typo once, not each stranded node
    for node in nodes.values():
        if node.id not in seen:
            problems.append(Problem(node.file, node.line, f"node {node.id!r} cannot be reached from any entry"))
