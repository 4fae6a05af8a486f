"""`helpline flows check` and the start of `helpline serve`: shipped content passes, broken content is
reported with the file and line of the defect."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config import load_config
from bot.content import content_paths
from bot.flows.actions import ACTIONS
from bot.flows.loader import FlowError, load_flows
from bot.flows.model import NODE_KINDS
from tests.helpers import free_port

SHIPPED_FLOWS, SHIPPED_LOCALES = content_paths(load_config(None, environ={}))

# The three flows the bot enters by itself, as small as the loader accepts. Tests replace one file or add one.
MAIN = """\
flow: main
start: welcome
nodes:
  welcome:
    send: "Welcome."
    next: language.choose
  menu:
    ask: "How can we help you?"
    choices:
      - {label: "Talk to a person", value: person, next: person}
  person:
    end: "A person will write to you."
"""
LANGUAGE = """\
flow: language
start: choose
nodes:
  choose:
    ask: "Choose your language:"
    choices: languages
    save: language
    next: set
  set:
    action: set_language
    next: main.menu
"""
DANGER = """\
flow: danger
start: alert
nodes:
  alert:
    action: escalate
    with: {urgent: true}
    next: told
  told:
    end: "Our staff have been alerted."
"""


pytestmark = pytest.mark.usefixtures("no_helpline_environment")


@pytest.fixture(scope="module")
def locales(tmp_path_factory) -> Path:
    """A copy of the shipped catalogs, so the broken flows are checked against real catalogs."""
    folder = tmp_path_factory.mktemp("shipped") / "locales"
    shutil.copytree(SHIPPED_LOCALES, folder)
    return folder


def flow_folder(tmp_path: Path, **files: str) -> Path:
    """The three minimal flows, with ``files`` (``main="..."``, ``extra="..."``) replacing or adding files."""
    folder = tmp_path / "flows"
    folder.mkdir()
    contents = {"main": MAIN, "language": LANGUAGE, "danger": DANGER, **files}
    for name, text in contents.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``needle``."""
    found = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in line]
    return found[occurrence - 1]


def write_config(tmp_path: Path, flows: Path | None = None, locales: Path | None = None, port: int = 8080) -> Path:
    lines = ["[storage]", f"database = {json.dumps(str(tmp_path / 'helpline.db'))}", "[server]", f"port = {port}",
             "[content]"]
    if flows is not None:
        lines.append(f"flows = {json.dumps(str(flows))}")
    if locales is not None:
        lines.append(f"locales = {json.dumps(str(locales))}")
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_json(config: Path | None = None, expect_exit: int | None = None) -> dict:
    args = ["flows", "check", "--json"] + (["--config", str(config)] if config else [])
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if expect_exit is not None:
        assert result.exit_code == expect_exit, result.output[:3000]
    report = json.loads(result.stdout)
    assert report["ok"] == (result.exit_code == 0)
    return report


def check_broken(tmp_path: Path, locales: Path, **files: str) -> tuple[Path, dict]:
    folder = flow_folder(tmp_path, **files)
    report = check_json(write_config(tmp_path, folder, locales), expect_exit=1)
    return folder, report


def errors_in(report: dict, file: Path) -> list[dict]:
    return [e for e in report["errors"] if e["file"] == str(file)]


def has_error(report: dict, file: Path, line: int, *fragments: str) -> bool:
    return any(
        e["line"] == line and all(f in e["message"] for f in fragments) for e in errors_in(report, file)
    )


# The shipped content ----------------------------------------------------------------------------------------


def test_shipped_content_passes_flows_check():
    result = CliRunner().invoke(main, ["flows", "check"])

    assert result.exit_code == 0, result.output[-3000:]
    assert "0 error(s)" in result.stdout
    assert "error:" not in result.stdout


@pytest.fixture(scope="module")
def shipped_report() -> dict:
    return check_json(expect_exit=0)


def test_shipped_content_json_has_every_part(shipped_report):
    assert set(shipped_report) == {"ok", "errors", "warnings", "locales", "messages", "sources", "triage"}
    assert shipped_report["ok"] is True
    assert shipped_report["errors"] == []
    for problem in shipped_report["warnings"]:
        assert set(problem) == {"file", "line", "message"}


def test_shipped_content_json_locales_have_coverage_and_status(shipped_report):
    locales = shipped_report["locales"]

    assert locales["en"]["coverage"] == 1.0
    assert locales["en"]["status"] == "source"
    for code, info in locales.items():
        assert 0.0 <= info["coverage"] <= 1.0, code
        assert isinstance(info["status"], str) and info["status"], code


def test_shipped_content_json_messages_have_encoding_and_segments(shipped_report):
    messages = shipped_report["messages"]

    assert messages
    for message in messages:
        assert {"id", "locale", "encoding", "segments"} <= set(message)
        assert message["locale"] in shipped_report["locales"]
        assert message["encoding"] in {"GSM-7", "UCS-2"}
        assert message["segments"] >= 1
    assert {m["locale"] for m in messages} == set(shipped_report["locales"])


def test_shipped_content_json_sources_are_cited_with_a_confidence(shipped_report):
    sources = shipped_report["sources"]

    assert sources
    for source in sources:
        assert source["cite"].strip(), source
        assert source["confidence"] in {"confirmed", "secondary"}, source


def test_minimal_flows_used_by_these_tests_load(tmp_path):
    flows = load_flows(flow_folder(tmp_path))

    assert flows.starts == {"main": "main.welcome", "language": "language.choose", "danger": "danger.alert"}


# Broken flows ----------------------------------------------------------------------------------------------


def test_unknown_node_kind_names_the_node_and_the_known_kinds(tmp_path, locales):
    main_yaml = MAIN + '  hello:\n    say: "Hi"\n'

    folder, report = check_broken(tmp_path, locales, main=main_yaml)

    file = folder / "main.yaml"
    assert has_error(report, file, line_of(file, "hello:"), "node 'hello'", *NODE_KINDS)


def test_dangling_target_names_the_file_and_line_of_the_node(tmp_path, locales):
    main_yaml = MAIN.replace("next: language.choose", "next: language.chose")

    folder, report = check_broken(tmp_path, locales, main=main_yaml)

    file = folder / "main.yaml"
    assert has_error(report, file, line_of(file, "welcome:"), "'main.welcome'", "unknown node", "'language.chose'")


def test_dangling_target_in_another_flow_names_that_flows_file(tmp_path, locales):
    danger_yaml = DANGER.replace("next: told", "next: tld")

    folder, report = check_broken(tmp_path, locales, danger=danger_yaml)

    file = folder / "danger.yaml"
    assert has_error(report, file, line_of(file, "alert:"), "unknown node", "'danger.tld'")
    assert errors_in(report, folder / "main.yaml") == []


def test_one_mistyped_target_in_the_shipped_flows_is_one_error_not_one_per_stranded_node(tmp_path, locales):
    flows = tmp_path / "shipped-flows"
    shutil.copytree(SHIPPED_FLOWS, flows)
    menu = flows / "main.yaml"
    menu.write_text(menu.read_text(encoding="utf-8").replace("value: rights, next: rights}",
                                                              "value: rights, next: rihgts}"), encoding="utf-8")

    report = check_json(write_config(tmp_path, flows, locales), expect_exit=1)

    assert [e["message"] for e in report["errors"]] == ["node 'main.menu' leads to unknown node 'main.rihgts'"]


def test_qualified_target_with_an_unknown_flow_is_dangling(tmp_path):
    main_yaml = MAIN.replace("next: language.choose", "next: nosuch.language")

    with pytest.raises(FlowError) as caught:
        load_flows(flow_folder(tmp_path, main=main_yaml))

    assert any("nosuch.language" in p.message for p in caught.value.problems)


def test_choice_without_next_names_the_choice_and_its_line(tmp_path, locales):
    main_yaml = MAIN.replace(
        '      - {label: "Talk to a person", value: person, next: person}',
        '      - {label: "Talk to a person", value: person, next: person}\n      - {label: "Call me"}',
    )

    folder, report = check_broken(tmp_path, locales, main=main_yaml)

    file = folder / "main.yaml"
    assert has_error(report, file, line_of(file, "Call me"), "choice 2", "'Call me'", "no 'next'")


def test_unreachable_node_is_an_error_at_its_line(tmp_path, locales):
    main_yaml = MAIN + '  orphan:\n    end: "Nobody comes here."\n'

    folder, report = check_broken(tmp_path, locales, main=main_yaml)

    file = folder / "main.yaml"
    assert has_error(report, file, line_of(file, "orphan:"), "'main.orphan'", "cannot be reached")


def test_duplicate_key_is_an_error_at_the_second_key(tmp_path, locales):
    danger_yaml = DANGER + '  told:\n    end: "Said twice."\n'

    folder, report = check_broken(tmp_path, locales, danger=danger_yaml)

    file = folder / "danger.yaml"
    assert has_error(report, file, line_of(file, "told:", occurrence=2), "duplicate key 'told'")


def test_invalid_yaml_is_an_error_with_its_line(tmp_path, locales):
    danger_yaml = DANGER.replace("    next: told\n", "   next: told\n")

    folder, report = check_broken(tmp_path, locales, danger=danger_yaml)

    file = folder / "danger.yaml"
    assert has_error(report, file, line_of(file, "   next: told"), "not valid YAML")


def test_invalid_yaml_unclosed_quote_points_at_the_opening_line(tmp_path, locales):
    danger_yaml = DANGER.replace('end: "Our staff have been alerted."', 'end: "Our staff have been alerted.')

    folder, report = check_broken(tmp_path, locales, danger=danger_yaml)

    file = folder / "danger.yaml"
    assert has_error(report, file, line_of(file, "Our staff"), "not valid YAML")


def test_branch_without_else_is_an_error_at_the_node(tmp_path, locales):
    danger_yaml = DANGER.replace("    next: told\n", "    next: where\n") + (
        "  where:\n"
        "    branch:\n"
        "      - {if: {country: MY}, next: told}\n"
    )

    folder, report = check_broken(tmp_path, locales, danger=danger_yaml)

    file = folder / "danger.yaml"
    assert has_error(report, file, line_of(file, "where:"), "node 'where'", "needs 'else'")


def test_unknown_action_names_the_action_and_the_known_ones_at_its_line(tmp_path, locales):
    danger_yaml = DANGER.replace("action: escalate", "action: escalte")

    folder, report = check_broken(tmp_path, locales, danger=danger_yaml)

    file = folder / "danger.yaml"
    assert has_error(report, file, line_of(file, "action: escalte"), "unknown action 'escalte'", *ACTIONS)


def test_missing_entry_flow_is_an_error(tmp_path, locales):
    folder = flow_folder(tmp_path)
    (folder / "danger.yaml").unlink()

    report = check_json(write_config(tmp_path, folder, locales), expect_exit=1)

    assert any("'danger' is missing" in e["message"] for e in report["errors"])


def test_broken_flows_report_every_problem_at_once(tmp_path, locales):
    main_yaml = MAIN + '  orphan:\n    end: "Nobody comes here."\n'
    danger_yaml = DANGER.replace("action: escalate", "action: escalte")

    folder, report = check_broken(tmp_path, locales, main=main_yaml, danger=danger_yaml)

    assert errors_in(report, folder / "main.yaml")
    assert errors_in(report, folder / "danger.yaml")


def test_plain_output_prints_file_and_line_and_exits_1(tmp_path, locales):
    danger_yaml = DANGER.replace("action: escalate", "action: escalte")
    folder = flow_folder(tmp_path, danger=danger_yaml)
    file = folder / "danger.yaml"

    result = CliRunner().invoke(main, ["flows", "check", "--config", str(write_config(tmp_path, folder, locales))])

    assert result.exit_code == 1
    assert f"error: {file}:{line_of(file, 'action: escalte')}: node 'alert': unknown action" in result.stdout


# YAML 1.1 words stay words --------------------------------------------------------------------------------


def test_yes_and_no_labels_stay_strings_not_booleans(tmp_path):
    main_yaml = MAIN.replace(
        '      - {label: "Talk to a person", value: person, next: person}',
        "      - {label: yes, next: person}\n"
        "      - {label: no, value: off, next: person}\n"
        "      - {label: On, value: Y, next: person}",
    )

    flows = load_flows(flow_folder(tmp_path, main=main_yaml))

    choices = flows.nodes["main.menu"].choices
    assert [(c.label, c.value) for c in choices] == [("yes", "yes"), ("no", "off"), ("On", "Y")]
    assert all(isinstance(c.label, str) and isinstance(c.value, str) for c in choices)


def test_yes_in_a_branch_condition_stays_the_string_yes(tmp_path):
    danger_yaml = DANGER.replace("    next: told\n", "    next: where\n") + (
        "  where:\n"
        "    branch:\n"
        "      - {if: {safe: yes}, next: told}\n"
        "    else: told\n"
    )

    flows = load_flows(flow_folder(tmp_path, danger=danger_yaml))

    assert flows.nodes["danger.where"].branches[0].conditions == (("safe", ("yes",)),)


def test_true_is_still_a_boolean_so_an_unquoted_true_label_is_an_error(tmp_path):
    main_yaml = MAIN.replace(
        '      - {label: "Talk to a person", value: person, next: person}',
        '      - {label: "Talk to a person", value: person, next: person}\n      - {label: true, next: person}',
    )
    folder = flow_folder(tmp_path, main=main_yaml)

    with pytest.raises(FlowError) as caught:
        load_flows(folder)

    file = folder / "main.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{file}:{line_of(file, 'label: true')}: node 'menu': choice 2 needs a 'label' in quotes"
    ]


# Flows against catalogs -----------------------------------------------------------------------------------


def test_text_missing_from_the_catalog_template_is_an_error_at_the_flow_line(tmp_path, locales):
    folder = tmp_path / "flows"
    shutil.copytree(SHIPPED_FLOWS, folder)
    file = folder / "main.yaml"
    text = file.read_text(encoding="utf-8")
    assert "    else: person_told\n" in text
    text = text.replace("    else: person_told\n", "    else: person_hours\n", 1)
    text += '\n  person_hours:\n    send: "We answer from 9 to 5, Monday to Friday."\n    next: person_told\n'
    file.write_text(text, encoding="utf-8")

    report = check_json(write_config(tmp_path, folder, locales), expect_exit=1)

    assert load_flows(folder).nodes["main.person_hours"].line == line_of(file, "  person_hours:")
    assert report["errors"] == [
        {
            "file": str(file),
            "line": line_of(file, "  person_hours:"),
            "message": "text missing from the catalog template: 'We answer from 9 to 5, Monday to Friday.' "
            "(extract and update the catalogs, see the README)",
        }
    ]


def test_translation_with_a_placeholder_the_text_lacks_is_an_error_naming_the_po_file(tmp_path):
    locales = tmp_path / "locales"
    (locales / "ms" / "LC_MESSAGES").mkdir(parents=True)
    shutil.copy(SHIPPED_LOCALES / "helpline.pot", locales / "helpline.pot")
    po = locales / "ms" / "LC_MESSAGES" / "helpline.po"
    po.write_text(
        "# Malay translations of the helpline.\n"
        'msgid ""\n'
        'msgstr ""\n'
        '"Content-Type: text/plain; charset=UTF-8\\n"\n'
        '"Language: ms\\n"\n'
        "\n"
        'msgid "Choose your language:"\n'
        'msgstr "Pilih bahasa anda:"\n'
        "\n"
        "msgid \"Welcome to the migrant workers' helpline. It is free and private.\"\n"
        'msgstr "Selamat datang, {name}. Rujukan {reference}."\n',
        encoding="utf-8",
    )

    report = check_json(write_config(tmp_path, locales=locales), expect_exit=1)

    assert [(e["file"], e["line"]) for e in report["errors"]] == [(str(po), line_of(po, 'msgid "Welcome'))]
    message = report["errors"][0]["message"]
    assert message.startswith("[ms] translation of \"Welcome to the migrant workers")
    assert message.endswith("uses fields the text does not have: ['name', 'reference']")
    assert report["locales"]["ms"]["status"] == "needs review"
    assert 0 < report["locales"]["ms"]["coverage"] < 1


# `helpline serve` refuses to start on broken flows --------------------------------------------------------


def test_serve_with_broken_flows_exits_at_start_printing_file_and_line(tmp_path, locales):
    danger_yaml = DANGER.replace("next: told", "next: tld")
    folder = flow_folder(tmp_path, danger=danger_yaml)
    config = write_config(tmp_path, folder, locales, port=free_port())
    file = folder / "danger.yaml"

    finished = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")},
    )

    assert finished.returncode != 0
    assert f"error: {file}:{line_of(file, 'alert:')}: node 'danger.alert' leads to unknown node" in finished.stderr
    assert "helpline: serving on" not in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "helpline.db").exists()
