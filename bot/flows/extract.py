"""A Babel extractor for flow files, so ``pybabel extract`` collects every text a flow sends.

Configured in ``babel.cfg`` as ``[bot.flows.extract:extract_flows: flows/**.yaml]``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bot.flows.loader import _read_file


def extract_flows(fileobj: IO[bytes], keywords, comment_tags, options) -> Iterator[tuple[int, str, str, list[str]]]:
    """Yield ``(line, funcname, message, comments)`` for each text of one flow file, as Babel expects."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(getattr(fileobj, "name", "flow.yaml")).name
        path.write_bytes(fileobj.read())
        nodes: dict = {}
        _read_file(path, nodes, {}, [])
    for node in nodes.values():
        where = f"node {node.id.split('.', 1)[1]}"
        if node.text:
            comments = [where] + [f"source: {s.cite}" for s in node.sources]
            yield node.line, "_", node.text, comments
        for choice in node.choices:
            yield choice.line, "_", choice.label, [f"{where}: a choice (keep it short)"]
