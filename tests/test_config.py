"""Configuration: TOML files on disk, HELPLINE_* environment overrides, and how the CLI reports mistakes."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
SECTIONS = [f for f in dataclasses.fields(Config) if f.name != "source"]


pytestmark = pytest.mark.usefixtures("no_helpline_environment")


def write_config(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return str(caught.value)


def run_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


# Missing, unreadable, invalid files -----------------------------------------------------------------


def test_serve_with_a_missing_config_exits_2_naming_the_file_without_a_traceback(tmp_path):
    missing = tmp_path / "missing.toml"

    result = run_cli("serve", "--config", str(missing))

    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "no such config file" in result.stderr
    assert "Traceback" not in result.output
    assert "serving on" not in result.output


def test_missing_config_file_message_points_to_the_example(tmp_path):
    message = config_error(tmp_path / "missing.toml")

    assert str(tmp_path / "missing.toml") in message
    assert "config.example.toml" in message


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    path = write_config(tmp_path, '[server]\nport = 80\nhost = "127.0.0.1\n')

    message = config_error(path)

    assert message.startswith(f"{path}: not valid TOML")
    assert "line 3" in message


def test_invalid_toml_through_the_cli_exits_2_without_a_traceback(tmp_path):
    path = write_config(tmp_path, "[server\nport = 80\n")

    result = run_cli("flows", "check", "--config", str(path))

    assert result.exit_code == 2
    assert f"config error: {path}: not valid TOML" in result.stderr
    assert "Traceback" not in result.output


# Unknown sections and keys ----------------------------------------------------------------------------


def test_unknown_section_names_the_file_the_section_and_the_known_sections(tmp_path):
    path = write_config(tmp_path, "[srever]\nport = 80\n")

    message = config_error(path)

    assert str(path) in message
    assert "srever" in message
    for section in SECTIONS:
        assert f"[{section.name}]" in message


def test_a_key_outside_any_section_is_unknown(tmp_path):
    path = write_config(tmp_path, "port = 80\n")

    message = config_error(path)

    assert str(path) in message
    assert "port" in message
    assert "[server]" in message


def test_unknown_key_names_the_file_the_key_and_the_known_keys(tmp_path):
    path = write_config(tmp_path, '[twilio]\nauth_tokn = "secret"\n')

    message = config_error(path)

    assert str(path) in message
    assert "'auth_tokn'" in message
    assert "[twilio]" in message
    for key in ("account_sid", "auth_token", "from_number", "messaging_service_sid", "api_base_url"):
        assert key in message


def test_unknown_key_through_serve_exits_2_with_the_same_message(tmp_path):
    path = write_config(tmp_path, "[server]\nprot = 80\n")

    result = run_cli("serve", "--config", str(path))

    assert result.exit_code == 2
    assert f"{path}: unknown key 'prot' in [server]" in result.stderr
    assert "known keys: host, port, public_url" in result.stderr
    assert "Traceback" not in result.output


def test_a_section_that_is_not_a_table_is_an_error(tmp_path):
    path = write_config(tmp_path, "server = 80\n")

    message = config_error(path)

    assert str(path) in message
    assert "[server] must be a table" in message


# Wrong types --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[server]\nport = "80"\n', "[server] port must be a whole number, not '80'"),
        ("[server]\nport = 80.5\n", "[server] port must be a whole number"),
        ("[server]\nport = true\n", "[server] port must be a whole number, not True"),
        ("[server]\nhost = 127\n", "[server] host must be a string in quotes"),
        ('[escalation]\noncall_numbers = "x"\n', "[escalation] oncall_numbers must be a list of strings"),
        ("[escalation]\noncall_numbers = [6512345678]\n", "[escalation] oncall_numbers must be a list of strings"),
        ('[telegram]\nmode = "push"\n', "[telegram] mode must be one of webhook, polling, not 'push'"),
        ("[telegram]\nmessages_per_second = 0\n", "[telegram] messages_per_second must be 1 or more, not 0"),
        ('[server]\nsimulator = "no"\n', "[server] simulator must be true or false, not 'no'"),
        ("[sms]\nsegment_budget = -1\n", "[sms] segment_budget must be 1 or more, not -1"),
    ],
    ids=["port-string", "port-float", "port-bool", "host-number", "oncall-string", "oncall-numbers",
         "telegram-mode-push", "telegram-rate-zero", "sms-budget-negative", "simulator-string"],
)
def test_wrong_type_names_the_file_the_key_and_what_is_expected(tmp_path, toml, expected):
    path = write_config(tmp_path, toml)

    message = config_error(path)

    assert message.startswith(f"{path}: ")
    assert expected in message


@pytest.mark.parametrize(
    "toml",
    ['[server]\nport = "80"\n', '[escalation]\noncall_numbers = "x"\n', '[telegram]\nmode = "push"\n'],
    ids=["port-string", "oncall-string", "telegram-mode-push"],
)
def test_wrong_type_through_the_cli_exits_2_without_a_traceback(tmp_path, toml):
    path = write_config(tmp_path, toml)

    result = run_cli("flows", "check", "--config", str(path))

    assert result.exit_code == 2
    assert result.stderr.startswith(f"config error: {path}: ")
    assert "Traceback" not in result.output


def test_a_valid_file_is_read_into_the_dataclasses(tmp_path):
    path = write_config(
        tmp_path,
        '[server]\nport = 9000\n[telegram]\nmode = "polling"\n'
        '[escalation]\noncall_numbers = ["+6511111111", "+6522222222"]\n',
    )

    config = load_config(path, environ={})

    assert config.server.port == 9000
    assert config.server.host == "127.0.0.1"
    assert config.telegram.mode == "polling"
    assert config.escalation.oncall_numbers == ("+6511111111", "+6522222222")
    assert config.source == str(path)


# Environment overrides ----------------------------------------------------------------------------------


def test_env_overrides_a_secret_from_the_file(tmp_path):
    path = write_config(tmp_path, '[twilio]\nauth_token = "from-file"\n')

    config = load_config(path, environ={"HELPLINE_TWILIO_AUTH_TOKEN": "from-env"})

    assert config.twilio.auth_token == "from-env"


def test_env_sets_a_secret_the_file_leaves_out(tmp_path):
    path = write_config(tmp_path, "")

    config = load_config(path, environ={"HELPLINE_TWILIO_AUTH_TOKEN": "from-env"})

    assert config.twilio.auth_token == "from-env"


def test_env_overrides_apply_without_a_file_too():
    config = load_config(None, environ={"HELPLINE_TWILIO_AUTH_TOKEN": "s3cret", "HELPLINE_SERVER_PORT": "9090"})

    assert config.twilio.auth_token == "s3cret"
    assert config.server.port == 9090


def test_env_port_is_read_as_a_number_and_wins_over_the_file(tmp_path):
    path = write_config(tmp_path, "[server]\nport = 80\n")

    config = load_config(path, environ={"HELPLINE_SERVER_PORT": "9090"})

    assert config.server.port == 9090


def test_env_port_that_is_not_a_number_names_the_variable(tmp_path):
    path = write_config(tmp_path, "[server]\nport = 80\n")

    message = config_error(path, environ={"HELPLINE_SERVER_PORT": "eighty"})

    assert "HELPLINE_SERVER_PORT" in message
    assert "whole number" in message
    assert "'eighty'" in message


def test_env_port_that_is_not_a_number_through_the_cli_exits_2(tmp_path):
    path = write_config(tmp_path, "")

    result = run_cli("flows", "check", "--config", str(path), env={"HELPLINE_SERVER_PORT": "eighty"})

    assert result.exit_code == 2
    assert "HELPLINE_SERVER_PORT" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+6511111111,+6522222222", ("+6511111111", "+6522222222")),
        (" +6511111111 , +6522222222 ,", ("+6511111111", "+6522222222")),
        ("+6511111111", ("+6511111111",)),
        ('["+6511111111", "+6522222222"]', ("+6511111111", "+6522222222")),
        (' ["+6511111111"] ', ("+6511111111",)),
        ("", ()),
    ],
    ids=["comma-list", "comma-list-with-spaces", "one-number", "json-list", "json-list-padded", "empty"],
)
def test_env_oncall_numbers_as_comma_list_or_json_list(tmp_path, value, expected):
    path = write_config(tmp_path, '[escalation]\noncall_numbers = ["+6500000000"]\n')

    config = load_config(path, environ={"HELPLINE_ESCALATION_ONCALL_NUMBERS": value})

    assert config.escalation.oncall_numbers == expected


@pytest.mark.parametrize("value", ['["+6511111111"', "[6511111111]"], ids=["broken-json", "json-numbers"])
def test_env_oncall_numbers_bad_json_names_the_variable(value):
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"HELPLINE_ESCALATION_ONCALL_NUMBERS": value})

    assert "HELPLINE_ESCALATION_ONCALL_NUMBERS" in str(caught.value)


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("OFF", False), ("0", False), ("yes", True)])
def test_env_switches_read_true_and_false(value, expected):
    assert load_config(None, environ={"HELPLINE_SERVER_SIMULATOR": value}).server.simulator is expected


def test_env_switch_that_is_neither_true_nor_false_names_the_variable():
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"HELPLINE_SERVER_SIMULATOR": "maybe"})

    assert str(caught.value) == ("environment HELPLINE_SERVER_SIMULATOR must be true or false, not 'maybe' "
                                 '(or "auto", the default: on only when neither Twilio nor Telegram is configured)')


def test_env_telegram_mode_is_checked_against_the_choices():
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"HELPLINE_TELEGRAM_MODE": "push"})

    assert "must be one of webhook, polling" in str(caught.value)


def test_env_telegram_mode_error_names_the_variable_not_the_file(tmp_path):
    path = write_config(tmp_path, '[telegram]\nmode = "webhook"\n')

    message = config_error(path, environ={"HELPLINE_TELEGRAM_MODE": "push"})

    assert "HELPLINE_TELEGRAM_MODE" in message


def test_env_variables_of_other_programs_are_ignored():
    config = load_config(None, environ={"PATH": "/usr/bin", "HELPLINE": "x", "OTHER_SERVER_PORT": "1"})

    assert config == Config()


# The example file and the defaults ---------------------------------------------------------------------


def test_example_config_loads():
    config = load_config(EXAMPLE, environ={})

    assert config.source == str(EXAMPLE)


def test_example_config_has_every_section_and_every_key_of_every_dataclass():
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))

    assert set(example) == {section.name for section in SECTIONS}
    for section in SECTIONS:
        keys = {f.name for f in dataclasses.fields(section.default_factory())}
        assert set(example[section.name]) == keys, f"[{section.name}] in config.example.toml"


def test_example_config_values_are_the_defaults_except_the_public_url():
    config = load_config(EXAMPLE, environ={})

    assert dataclasses.replace(config.replace(server={"public_url": ""}), source="defaults") == Config()


def test_defaults_with_no_file():
    config = load_config(None, environ={})

    assert config == Config()
    assert config.source == "defaults"
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.storage.database == "helpline.db"
    assert config.telegram.mode == "webhook"
    assert config.content.flows == ""
    assert config.content.locales == ""
    assert config.content.default_language == "en"
    assert config.escalation.oncall_numbers == ()
    assert config.escalation.claim_timeout_minutes == 10
    assert config.session.idle_minutes == 60
    assert config.sms.segment_budget == 3


def test_an_empty_file_gives_the_defaults(tmp_path):
    path = write_config(tmp_path, "# nothing yet\n")

    config = load_config(path, environ={})

    assert dataclasses.replace(config, source="defaults") == Config()


# Values that parse but cannot work ------------------------------------------------------------------


@pytest.mark.parametrize("port", [0, 65536, 99999, -1])
def test_a_port_out_of_range_is_one_clear_line_and_exit_2(tmp_path, port):
    path = write_config(tmp_path, f"[server]\nport = {port}\n")

    result = run_cli("serve", "--config", str(path))

    assert result.exit_code == 2
    assert result.stderr.strip() == (f"config error: {path}: [server] port must be a port number from 1 to 65535, "
                                     f"not {port}")
    assert "serving on" not in result.output


def test_a_database_in_a_folder_that_does_not_exist_is_refused_and_nothing_is_made(tmp_path):
    database = tmp_path / "no-such-folder" / "helpline.db"
    path = write_config(tmp_path, f"[storage]\ndatabase = {json.dumps(str(database))}\n")

    for command in (["serve"], ["chat"], ["cases", "list"], ["purge", "--dry-run"]):
        result = run_cli(*command, "--config", str(path))

        assert result.exit_code == 2, command
        assert result.stderr.strip().splitlines() == [
            f"error: the folder of the database {str(database)!r} ([storage] database) does not exist: create "
            f"{database.parent} first, or fix the path"], command
    assert not database.parent.exists()
