"""The test suite's own rule: test modules share helpers through tests/helpers.py and fixtures through
tests/conftest.py, never by importing one another (a helper moved or renamed in one module must not break
another's tests)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
MODULES = sorted(TESTS.glob("test_*.py"))


def imported_test_modules(path: Path) -> list[str]:
    """``file:line: module`` for every import of a test module in ``path`` (absolute or relative)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # from .test_x import y, from . import test_x
            names = [f"tests.{node.module}"] if node.module else [f"tests.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"tests.{alias.name}" for alias in node.names if node.module == "tests"]
        else:
            continue
        found += [f"{path.name}:{node.lineno}: {name}" for name in names if name.startswith("tests.test_")]
    return found


def test_the_rule_sees_every_test_module():
    assert len(MODULES) >= 20 and Path(__file__) in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_test_module_imports_another(path):
    assert not imported_test_modules(path), "import it from tests/helpers.py (or use a fixture in conftest.py)"


def test_the_rule_catches_every_way_of_writing_it(tmp_path):
    forms = ["from tests.test_crash import serving_in", "import tests.test_crash",
             "import tests.test_crash as crash", "from tests import test_crash",
             "from .test_crash import serving_in", "from . import test_crash",
             "def f():\n    from tests.test_crash import serving_in"]
    for form in forms:
        module = tmp_path / "test_example.py"
        module.write_text(form + "\n")
        assert imported_test_modules(module), form
    module.write_text("from tests.helpers import serving_in\nfrom tests.fakes import FakeTwilio\n"
                      "from aiohttp.test_utils import TestClient\nfrom . import helpers\n")
    assert imported_test_modules(module) == []
