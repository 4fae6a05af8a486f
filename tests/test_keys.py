"""The data key and the database belong together: a lost or wrong key is refused, never replaced silently;
one `serve` per database file, however it is named; `rotate-key` never under a running `serve`; backups."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config import Config
from bot.security import CryptoSealer, key_file_path, new_key, parse_key, sealer_for, write_key_file
from bot.store.sqlite import Store
from tests.helpers import free_port, get

PHONE = "+60123987654"
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
REFERENCE = "K7F3-QP9M"


pytestmark = pytest.mark.usefixtures("no_helpline_environment")


def make_database(config: Config) -> None:
    """A database with a worker and their case in it, sealed with the configured key (made now if none)."""
    store = Store(config.storage.database, sealer_for(config, create=True))
    contact = store.contact("sms", PHONE, NOW)
    store.create_case(REFERENCE, contact.id, "complaint", False, {"story": "Madam Lee keeps my passport"}, "en", NOW)
    store.close()


def write_config(folder: Path, database: str | Path, *, port: int = 8080, key_file: str | Path = "") -> Path:
    path = folder / f"helpline-{free_port()}.toml"
    path.write_text(f'[server]\nport = {port}\n[storage]\ndatabase = "{database}"\n'
                    f'[security]\nkey_file = "{key_file}"\n')
    return path


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=input)


def python_bot(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 30) -> subprocess.CompletedProcess:
    """`helpline ARGS` as a process, failing the test (not hanging it) if it does not end by itself."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    try:
        return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd,
                              env={**clean, **(env or {})}, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"`helpline {' '.join(args)}` did not stop by itself: it started serving. "
                             f"stderr: {expired.stderr}") from None


class Serving:
    """`helpline serve --config CONFIG` in a process, once healthy; stopped with SIGTERM at the end."""

    def __init__(self, config_path: Path, port: int, cwd: Path):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(config_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                        env=clean)

    def __enter__(self) -> Serving:
        for _ in range(200):
            try:
                if get(f"{self.base}/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"serve did not start: {self.process.communicate()[1]}")

    def stop(self) -> str:
        """SIGTERM, wait, and return what serve wrote to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()[1]

    def __exit__(self, *exc) -> None:
        self.stop()


# A database with data and no key: refused, nothing made ----------------------------------------------

LOSSES = ["key file deleted", "key_file set to a wrong path", "variable unset"]
COMMANDS = [["cases", "list"], ["purge", "--dry-run"], ["backup", "copy.db"], ["rotate-key"], ["chat"]]


def lose_the_key(how: str, config: Config, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Make a database with data, then lose its key as an operator would. Returns the environment the
    commands run with and the key file they will look for (which must not be made)."""
    env = {"HELPLINE_STORAGE_DATABASE": config.storage.database}
    if how == "variable unset":  # the key lived in HELPLINE_SECURITY_DATA_KEY, and the unit file lost it
        make_database(config.replace(security={"data_key": new_key()}))
        return env, key_file_path(config)
    make_database(config)
    if how == "key file deleted":  # a restore of the database without its key
        key_file_path(config).unlink()
        return env, key_file_path(config)
    wrong = tmp_path / "keys" / "helpline.key"  # a typo in [security] key_file
    return {**env, "HELPLINE_SECURITY_KEY_FILE": str(wrong)}, wrong


@pytest.mark.parametrize("how", LOSSES)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_every_command_refuses_a_database_whose_key_is_not_found_and_makes_none(config, tmp_path, monkeypatch,
                                                                                 command, how):
    monkeypatch.chdir(tmp_path)
    env, missing = lose_the_key(how, config, tmp_path)
    result = cli(*command, env=env, input="hi\n")
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), "no traceback"
    assert result.stderr.startswith("error: ")
    assert f"no key file {missing}" in result.stderr and "HELPLINE_SECURITY_DATA_KEY" in result.stderr
    assert "Restore the key" in result.stderr
    assert not missing.exists(), "no new key was made"
    assert not missing.with_name(missing.name + ".new").exists()
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("how", LOSSES)
def test_serve_refuses_a_database_whose_key_is_not_found_and_makes_none(config, tmp_path, how):
    env, missing = lose_the_key(how, config, tmp_path)
    config_path = write_config(tmp_path, config.storage.database, port=free_port(),
                               key_file=env.get("HELPLINE_SECURITY_KEY_FILE", ""))
    result = python_bot("serve", "--config", str(config_path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "error: the database" in result.stderr and f"no key file {missing}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists(), "no new key was made"
    with sqlite3.connect(config.storage.database) as db:  # and the data is still there, for the right key
        assert db.execute("SELECT COUNT(*) FROM cases").fetchone() == (1,)


def test_a_new_or_empty_database_still_gets_a_key(config, tmp_path):
    Path(config.storage.database).touch()  # a file with no data in it is a new database
    result = cli("chat", env={"HELPLINE_STORAGE_DATABASE": config.storage.database}, input="hi\n")
    assert result.exit_code == 0, result.output
    assert "Welcome" in result.output
    key = key_file_path(config)
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600


# A wrong key: the fingerprint in the database refuses it ---------------------------------------------


def test_a_wrong_key_is_refused_by_serve_and_every_command_and_nothing_changes(config, tmp_path):
    make_database(config)
    right = key_file_path(config).read_text()
    write_key_file(key_file_path(config), new_key())  # another key, where this database's was
    before = Path(config.storage.database).read_bytes()

    config_path = write_config(tmp_path, config.storage.database, port=free_port())
    served = python_bot("serve", "--config", str(config_path), cwd=tmp_path)
    assert served.returncode == 2, served.stderr
    assert f"error: the data key in {key_file_path(config)} is not the one the database" in served.stderr
    assert "nothing was changed" in served.stderr and "Traceback" not in served.stderr
    env = {"HELPLINE_STORAGE_DATABASE": config.storage.database}
    for command in COMMANDS:
        result = cli(*command, env=env, input="hi\n")
        assert result.exit_code == 2, (command, result.output)
        assert "is not the one the database" in result.stderr, command
    assert Path(config.storage.database).read_bytes() == before, "nothing was written with the wrong key"
    write_key_file(key_file_path(config), right.strip())
    listed = cli("cases", "list", env=env)
    assert listed.exit_code == 0 and REFERENCE in listed.output
    [(fingerprint,)] = sqlite3.connect(config.storage.database).execute(
        "SELECT value FROM meta WHERE name = 'key_fingerprint'").fetchall()
    key = parse_key(right, "test")
    assert fingerprint == CryptoSealer(key).fingerprint
    # It tells keys apart and says nothing useful about this one: none of its encodings or plain hashes.
    for encoding in (key.hex(), right.strip(), base64.urlsafe_b64encode(key).decode(), hashlib.sha256(key).hexdigest(),
                     hashlib.sha256(right.strip().encode()).hexdigest()):
        assert encoding not in fingerprint and fingerprint not in encoding


def forget_fingerprint(database: str) -> None:
    """Make the database look as one from before key fingerprints (migration m011) did."""
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE IF EXISTS meta")
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm011_key_fingerprint'")


def test_a_database_from_before_fingerprints_gets_one_only_from_the_key_that_opens_it(config):
    make_database(config)
    forget_fingerprint(config.storage.database)
    right = key_file_path(config).read_text()
    env = {"HELPLINE_STORAGE_DATABASE": config.storage.database}

    write_key_file(key_file_path(config), new_key())
    refused = cli("cases", "list", env=env)
    assert refused.exit_code == 2, refused.output
    assert "a value stored in it does not open with this key" in refused.stderr
    with sqlite3.connect(config.storage.database) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchall() == [], "not migrated"

    write_key_file(key_file_path(config), right.strip())
    listed = cli("cases", "list", env=env)
    assert listed.exit_code == 0, listed.output
    with sqlite3.connect(config.storage.database) as db:
        assert db.execute("SELECT value FROM meta").fetchall() == [(CryptoSealer(parse_key(right, "k")).fingerprint,)]


def test_an_interrupted_rotation_is_named_with_the_key_file_that_fits(config):
    """rotate-key writes the new fingerprint with the re-encrypted data; if it stops before it replaces the
    key file, the database already names the new key, and the refusal says where it is."""
    make_database(config)
    old = key_file_path(config).read_text()
    env = {"HELPLINE_STORAGE_DATABASE": config.storage.database}
    rotated = cli("rotate-key", env=env)
    assert rotated.exit_code == 0, rotated.output
    pending = key_file_path(config).with_name(key_file_path(config).name + ".new")
    key_file_path(config).replace(pending)  # the state a crash between the commit and the key file's move leaves
    write_key_file(key_file_path(config), old.strip())
    refused = cli("cases", "list", env=env)
    assert refused.exit_code == 2
    assert f"{pending} holds the key the database is sealed with now" in refused.stderr
    pending.replace(key_file_path(config))
    assert cli("cases", "list", env=env).exit_code == 0


# A key file others can read ---------------------------------------------------------------------------


def test_a_key_file_others_can_read_is_warned_about_once_and_the_helpline_still_serves(config, tmp_path):
    make_database(config)
    key = key_file_path(config)
    key.chmod(0o644)
    listed = python_bot("cases", "list", env={"HELPLINE_STORAGE_DATABASE": config.storage.database})
    assert listed.returncode == 0, listed.stderr
    assert f"the data key file {key} can be read or written by its group or others (mode 0644)" in listed.stderr
    assert f"chmod 600 {key}" in listed.stderr

    key.chmod(0o640)
    port = free_port()
    with Serving(write_config(tmp_path, config.storage.database, port=port), port, tmp_path) as serving:
        assert get(f"{serving.base}/healthz")[0] == 200
        stderr = serving.stop()
    assert stderr.count(f"the data key file {key} can be read or written") == 1, stderr
    key.chmod(0o600)
    quiet = python_bot("cases", "list", env={"HELPLINE_STORAGE_DATABASE": config.storage.database})
    assert quiet.returncode == 0 and "can be read" not in quiet.stderr


# One serve per database file; rotate-key never under it -------------------------------------------------


def test_a_second_serve_through_another_path_to_the_same_database_is_refused(tmp_path):
    database = tmp_path / "h.db"
    port = free_port()
    with Serving(write_config(tmp_path, database, port=port), port, tmp_path) as serving:
        key = f"{database}.key"
        (tmp_path / "link.db").symlink_to(database)
        (tmp_path / "sub").mkdir()
        os.link(database, tmp_path / "hard.db")  # another name for the same file
        others = {"symlink": tmp_path / "link.db", "relative with ..": "../sub/../h.db",
                  "hard link": tmp_path / "hard.db"}
        for name, path in others.items():
            second = python_bot("serve", "--config", str(write_config(tmp_path, path, port=free_port(), key_file=key)),
                                cwd=tmp_path / "sub")
            assert second.returncode == 2, (name, second.stderr)
            assert f"error: another `helpline serve` is already using {path}; stop it first" in second.stderr, name
        assert get(f"{serving.base}/healthz")[0] == 200, "the first one is untouched"


def test_rotate_key_refuses_while_serve_runs_and_works_once_it_stopped(tmp_path):
    database = tmp_path / "h.db"
    port = free_port()
    env = {"HELPLINE_STORAGE_DATABASE": str(database)}
    with Serving(write_config(tmp_path, database, port=port), port, tmp_path) as serving:
        key = Path(f"{database}.key").read_text()
        request = urllib.request.Request(f"{serving.base}/simulator/api/send", method="POST",
                                         data=b'{"channel": "sms", "address": "+6011", "text": "hi"}',
                                         headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(request, timeout=10).status == 200  # a worker it holds in memory
        refused = python_bot("rotate-key", env=env)
        assert refused.returncode == 2, refused.stdout
        assert f"error: `helpline serve` (or another `rotate-key`) is using {database}; stop it first" in refused.stderr
        assert Path(f"{database}.key").read_text() == key and not Path(f"{database}.key.new").exists()
        assert get(f"{serving.base}/healthz")[0] == 200
        serving.stop()
    rotated = python_bot("rotate-key", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "'contacts': 1" in rotated.stdout and Path(f"{database}.key").read_text() != key


# Backups ------------------------------------------------------------------------------------------------


def test_backup_to_a_folder_that_does_not_exist_is_a_clear_error_and_makes_nothing(config, tmp_path):
    make_database(config)
    target = tmp_path / "no" / "such" / "folder" / "copy.db"
    result = cli("backup", str(target), env={"HELPLINE_STORAGE_DATABASE": config.storage.database})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), "no traceback"
    assert result.stderr.startswith(f"error: the folder {target.parent} does not exist")
    assert not (tmp_path / "no").exists()
