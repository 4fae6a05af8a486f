"""`helpline serve` and `helpline chat` as a user runs them: real processes, real ports, real files."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import SeededRandomness, Worker, free_port, get


@pytest.fixture
def server(tmp_path):
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nport = {port}\n[storage]\ndatabase = "{tmp_path / "h.db"}"\n')
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if get(f"{base}/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(process.stdout.read())
    yield process, base, tmp_path / "h.db"
    if process.poll() is None:
        process.kill()
        process.wait()


async def test_healthz_and_metrics_through_a_conversation(client, worker):
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["database"] == "ok"
    await worker.text("hi")
    await worker.text("1")
    metrics = await (await client.get("/metrics")).text()
    assert 'helpline_messages_in_total{channel="simulator-sms"} 2.0' in metrics
    assert 'helpline_messages_out_total{channel="simulator-sms"} 2.0' in metrics
    assert "helpline_pipeline_seconds_bucket" in metrics
    assert "helpline_outbox_backlog 0.0" in metrics


async def test_the_simulator_can_be_switched_off(aiohttp_client, config, clock):
    from bot.app import create_app

    client = await aiohttp_client(create_app(config.replace(server={"simulator": False}), clock=clock,
                                             randomness=SeededRandomness()))

    for path in ("/", "/simulator"):
        assert (await client.get(path)).status == 404
    sent = await client.post("/simulator/api/send", json={"channel": "sms", "address": "+6011", "text": "hi"})
    assert sent.status == 404
    assert (await client.get("/healthz")).status == 200


async def test_simulator_rejects_bad_requests_without_storing(client):
    for payload in [b"not json", b"[1, 2]", b'{"channel": "fax", "address": "1", "text": "x"}',
                    b'{"channel": "sms", "address": "", "text": "x"}', b'{"channel": "sms", "address": "1", "text": 5}',
                    b'{"channel": "sms", "address": "1", "text": "x", "language": 5}']:
        response = await client.post("/simulator/api/send", data=payload, headers={"Content-Type": "application/json"})
        assert response.status == 400, payload
    # A cross-site form post cannot reach the pipeline: only JSON is taken.
    form = await client.post("/simulator/api/send", data=b'{"channel": "sms", "address": "1", "text": "x"}',
                             headers={"Content-Type": "text/plain"})
    assert form.status == 415
    big = await client.post("/simulator/api/send", data=b"x" * 100_000, headers={"Content-Type": "application/json"})
    assert big.status == 413
    for wait in ["nan", "-1", "inf", "soon"]:
        poll = await client.get("/simulator/api/messages", params={"channel": "sms", "address": "1", "wait": wait})
        assert poll.status == 400, wait
    worker = Worker(client, address="1")
    response = await client.get("/simulator/api/messages", params={"channel": "sms", "address": "1"})
    assert (await response.json())["messages"] == []
    assert worker.last_id == 0


def test_serve_answers_then_stops_gracefully_on_sigterm(server):
    process, base, database = server
    request = urllib.request.Request(f"{base}/simulator/api/send", method="POST",
                                     data=b'{"channel": "sms", "address": "+6011", "text": "hi"}',
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        assert db.execute("SELECT status FROM messages WHERE direction = 'out'").fetchone()[0] == "sent"


def test_chat_with_piped_input_uses_the_same_database(tmp_path):
    env = {**os.environ, "HELPLINE_STORAGE_DATABASE": str(tmp_path / "chat.db")}
    result = subprocess.run([sys.executable, "-m", "bot", "chat"], input="hi\n1\n2\n", capture_output=True,
                            text=True, env=env, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Welcome" in result.stdout
    assert "How can we help you?" in result.stdout
    assert "contact you about this report?" in result.stdout
    # A second run continues the same conversation: the session is in the database.
    again = subprocess.run([sys.executable, "-m", "bot", "chat"], input="1\n", capture_output=True, text=True,
                           env=env, timeout=60, cwd=tmp_path)
    assert "What happened?" in again.stdout


def test_the_readme_chat_example_gives_the_same_answers_on_every_run_and_says_what_it_makes(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    command = re.search(r"\$ (printf '[^']*' \| helpline chat[^\n]*)", readme).group(1)
    assert "--new" in command
    piped, options = command.split(" | helpline chat")
    lines = piped.removeprefix("printf '").removesuffix("'").replace("\\n", "\n")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", "chat", *options.split()], input=lines,
                              capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")})

    first, second = run(), run()

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert "Your employer should not keep your passport" in first.stdout
    assert first.stderr.strip() == ("helpline chat: making helpline.db and helpline.db.key (the conversation is kept "
                                    "there; the key file is owner-only and needed to read it)")
    assert second.stderr.strip() == ""  # nothing new made


def test_chat_as_telegram_shows_buttons(tmp_path):
    env = {**os.environ, "HELPLINE_STORAGE_DATABASE": str(tmp_path / "chat.db")}
    result = subprocess.run([sys.executable, "-m", "bot", "chat", "--channel", "telegram"], input="/start\n",
                            capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert "[English]" in result.stdout


def test_segments_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bot", "segments", "Hello", "မင်္ဂလာပါ"], capture_output=True,
                            text=True, timeout=30)
    lines = result.stdout.splitlines()
    assert lines[0] == '{"text": "Hello", "encoding": "GSM-7", "segments": 1}'
    assert '"encoding": "UCS-2"' in lines[1]


def test_a_second_serve_on_the_same_database_refuses_to_start(server, tmp_path):
    process, base, database = server
    config = tmp_path / "second.toml"
    config.write_text(f'[server]\nport = {free_port()}\n[storage]\ndatabase = "{database}"\n')
    second = subprocess.run([sys.executable, "-m", "bot", "serve", "--config", str(config)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert second.returncode == 2
    assert "another `helpline serve` is already using" in second.stderr
    assert get(f"{base}/healthz")[0] == 200, "the first one is untouched"


def test_backup_while_serving_gives_a_database_the_bot_can_open(server, tmp_path):
    process, base, database = server
    request = urllib.request.Request(f"{base}/simulator/api/send", method="POST",
                                     data=b'{"channel": "sms", "address": "+6012", "text": "hi"}',
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    copy = tmp_path / "backup.db"
    env = {**os.environ, "HELPLINE_STORAGE_DATABASE": str(database)}
    result = subprocess.run([sys.executable, "-m", "bot", "backup", str(copy)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    restored = {**os.environ, "HELPLINE_STORAGE_DATABASE": str(copy),
                "HELPLINE_SECURITY_KEY_FILE": f"{database}.key"}
    listing = subprocess.run([sys.executable, "-m", "bot", "chat", "--from", "+6012"], input="menu\n",
                             capture_output=True, text=True, env=restored, timeout=60)
    assert "How can we help" in listing.stdout, listing.stderr
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'").fetchone()[0] >= 1
