"""The triage word lists as data files (triage/<language>.yaml): shipped with the package, used through
``[content] triage``, and every mistake in them reported by `helpline flows check` as file:line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.lexicon import CATEGORIES, ORDER_FILE, read_lexicon, shipped_folder

ROOT = Path(__file__).resolve().parent.parent
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}


pytestmark = pytest.mark.usefixtures("no_helpline_environment")


def word_lists(tmp_path: Path) -> Path:
    """A copy of the shipped word lists, to break or extend."""
    folder = tmp_path / "triage"
    shutil.copytree(shipped_folder(), folder)
    return folder


def change(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    found = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in line]
    return found[occurrence - 1]


def write_config(tmp_path: Path, triage: Path, port: int = 8080) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[storage]\ndatabase = {json.dumps(str(tmp_path / 'helpline.db'))}\n[server]\nport = {port}\n"
                    f"[content]\ntriage = {json.dumps(str(triage))}\n", encoding="utf-8")
    return path


def check(tmp_path: Path, folder: Path, expect_exit: int) -> dict:
    result = CliRunner().invoke(main, ["flows", "check", "--json", "--config", str(write_config(tmp_path, folder))])
    assert result.exit_code == expect_exit, result.output[:3000]
    return json.loads(result.stdout)


def triage_errors(report: dict, file: Path) -> list[tuple[int, str]]:
    return [(e["line"], e["message"]) for e in report["errors"] if e["file"] == str(file)]


def triage_cli(tmp_path: Path, folder: Path | None, text: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "bot", "triage"]
    if folder is not None:
        args += ["--config", str(write_config(tmp_path, folder))]
    return subprocess.run(args, input=text, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=CLEAN_ENV)


# The shipped lists ------------------------------------------------------------------------------------------


def test_shipped_word_lists_pass_and_flows_check_reports_them():
    lexicon, problems = read_lexicon(shipped_folder())
    assert problems == []
    assert [language.code for language in lexicon.languages][:3] == ["en", "id", "ms"]  # the order ties go by

    result = CliRunner().invoke(main, ["flows", "check", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report["errors"]
    assert len(report["triage"]) == 16
    assert report["triage"]["id"]["file"] == str(shipped_folder() / "id.yaml")
    assert report["triage"]["en"]["danger_words"] > 100 and report["triage"]["en"]["safe_phrases"] > 10
    plain = CliRunner().invoke(main, ["flows", "check"]).stdout
    assert "triage word lists: en, id, ms," in plain


def test_every_file_says_what_its_lists_mean_and_how_to_check_it():
    for path in shipped_folder().glob("*.yaml"):
        head = path.read_text(encoding="utf-8")[:4000]
        assert head.startswith("#"), path.name
        assert "helpline flows check" in head, path.name
        if path.name != ORDER_FILE:
            assert all(category in head for category in CATEGORIES), path.name


# Broken lists: file and line, exit 1 ------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "needle", "fragment"), [
    ("  violence:\n", "  violense:\n", "  violense:", "unknown category 'violense'"),
    ('    - "dipukul"\n', "    - 42\n", "    - 42", "'42' is not a word"),
    ('    - "dipukul"\n', "    - {pukul|tampar} saya\n", "    - {pukul|tampar}", "not valid YAML"),
    ('    - "dipukul"\n', '    - "siksa"\n', '    - "siksa"', "'siksa' is listed twice (first at line"),
    ("danger_words:\n", "dangerwords:\n", "dangerwords:", "unknown key 'dangerwords'"),
    ('    - "dipukul"\n', '    - "dipukul\n', '    - "dipukul', "not valid YAML: a double quote is not closed"),
    ('    - "dipukul"\n', '    - "pukul <you>"\n', "pukul <you>", "shorthand <you>"),
    ('    - "dipukul"\n', '    - "{pukul|tampar saya"\n', "{pukul|tampar saya", "write alternatives as {a|b}"),
])
def test_a_broken_word_list_is_an_error_at_its_file_and_line(tmp_path, old, new, needle, fragment):
    folder = word_lists(tmp_path)
    file = folder / "id.yaml"
    change(file, old, new)

    report = check(tmp_path, folder, expect_exit=1)

    errors = triage_errors(report, file)
    assert any(line == line_of(file, needle, occurrence=2 if "twice" in fragment else 1) and fragment in message
               for line, message in errors), errors
    assert "triage" not in report or report["triage"] == {}


def test_plain_flows_check_prints_file_and_line_and_exits_1(tmp_path):
    folder = word_lists(tmp_path)
    file = folder / "th.yaml"
    change(file, "  medical:\n", "  medicall:\n")

    result = CliRunner().invoke(main, ["flows", "check", "--config", str(write_config(tmp_path, folder))])

    assert result.exit_code == 1
    assert f"error: {file}:{line_of(file, 'medicall:')}: unknown category 'medicall'" in result.stdout


def test_a_language_file_not_listed_in_the_order_and_a_listed_language_without_a_file_are_errors(tmp_path):
    folder = word_lists(tmp_path)
    (folder / "ta.yaml").rename(folder / "fil.yaml")

    report = check(tmp_path, folder, expect_exit=1)

    assert any("'fil' is not listed in languages.yaml" in message
               for _line, message in triage_errors(report, folder / "fil.yaml"))
    assert (line_of(folder / ORDER_FILE, "- ta"), "no word list for 'ta': add ta.yaml beside this file, or take "
            "the line out") in triage_errors(report, folder / ORDER_FILE)


def test_an_empty_folder_is_an_error_not_a_triage_that_finds_nothing(tmp_path):
    folder = tmp_path / "triage"
    folder.mkdir()
    (folder / ORDER_FILE).write_text("languages: []\n", encoding="utf-8")

    report = check(tmp_path, folder, expect_exit=1)

    assert any("no danger words" in message for _line, message in triage_errors(report, folder))


# [content] triage is what triage reads ----------------------------------------------------------------------


def test_a_word_added_to_a_copy_is_found_by_helpline_triage_with_that_config(tmp_path):
    folder = word_lists(tmp_path)
    change(folder / "en.yaml", '    - "beaten"\n', '    - "beaten"\n    - "whacked"\n')
    check(tmp_path, folder, expect_exit=0)

    shipped = triage_cli(tmp_path, None, "the boss whacked me\n")
    copied = triage_cli(tmp_path, folder, "the boss whacked me\nthey beat me\n")

    assert json.loads(shipped.stdout)["urgent"] is False
    first, second = (json.loads(line) for line in copied.stdout.splitlines())
    assert (first["urgent"], first["category"], first["matched"]) == (True, "violence", "whacked")
    assert second["matched"] == "beat"


def test_helpline_triage_with_broken_word_lists_says_where_and_exits_2(tmp_path):
    folder = word_lists(tmp_path)
    change(folder / "vi.yaml", "  sos:\n", "  sos:\n    - no\n")

    finished = triage_cli(tmp_path, folder, "they beat me\n")

    assert finished.returncode == 2
    assert f"error: {folder / 'vi.yaml'}:{line_of(folder / 'vi.yaml', '    - no')}: sos: 'no' is not a word" \
        in finished.stderr
    assert finished.stdout == "" and "Traceback" not in finished.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_with_broken_word_lists_does_not_start(tmp_path):
    folder = word_lists(tmp_path)
    change(folder / "en.yaml", "  medical:\n", "  medical:\n    - 3\n")

    finished = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--config", str(write_config(tmp_path, folder, port=free_port()))],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=CLEAN_ENV,
    )

    assert finished.returncode != 0
    assert f"error: {folder / 'en.yaml'}:{line_of(folder / 'en.yaml', '    - 3')}: medical: '3' is not a word" \
        in finished.stderr
    assert "helpline: serving on" not in finished.stderr
    assert not (tmp_path / "helpline.db").exists()


# Shipped in the package -------------------------------------------------------------------------------------


def test_the_package_build_carries_the_word_lists_and_triage_reads_them_from_any_folder(tmp_path):
    """setup.py's build step, as `pip install .` runs it (offline: without pyproject's build isolation)."""
    built = tmp_path / "built"
    script = f"""
import runpy, setuptools
from setuptools import Distribution, find_packages
found = {{}}
setuptools.setup = lambda **keywords: found.update(keywords)
runpy.run_path("setup.py")
dist = Distribution({{"name": "helpline-bot", "packages": find_packages(include=["bot*"]),
                     "cmdclass": found["cmdclass"], "script_name": "setup.py"}})
build = dist.get_command_obj("build_py")
build.build_lib = {str(built)!r}
build.ensure_finalized()
build.run()
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True, timeout=120,
                   env=CLEAN_ENV)

    shipped = built / "bot" / "content" / "triage"
    assert {p.name for p in shipped.glob("*.yaml")} == {p.name for p in shipped_folder().glob("*.yaml")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**CLEAN_ENV, "PYTHONPATH": str(built)}
    where = subprocess.run([sys.executable, "-c", "from bot.lexicon import shipped_folder; print(shipped_folder())"],
                           cwd=elsewhere, capture_output=True, text=True, timeout=60, env=env)
    assert where.stdout.strip() == str(shipped), where.stderr
    finished = subprocess.run([sys.executable, "-m", "bot", "triage"], input="tlg sy dikurung\n", cwd=elsewhere,
                              capture_output=True, text=True, timeout=60, env=env)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["matched"] == "kurung"
