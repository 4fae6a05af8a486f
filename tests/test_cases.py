"""Complaints become cases a worker can follow: intake, anonymous reports, status, safe-hours follow-up."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from bot.cases import can_move, next_safe_moment
from bot.cli import main
from tests.helpers import REFERENCE, Worker, report, report_told, unsealed


def cli(config, *args) -> tuple[int, str]:
    path = config.storage.database
    result = CliRunner().invoke(main, [*args], env={"HELPLINE_STORAGE_DATABASE": path}, catch_exceptions=False)
    return result.exit_code, result.output


async def test_full_intake_over_sms_records_every_answer(worker, config):
    reference = await report(worker)
    code, output = cli(config, "cases", "show", reference, "--json", "--by", "tester")
    assert code == 0
    case = json.loads(output)
    assert case["details"]["problem"] == ["wages", "documents"]
    assert case["details"]["country"] == "MY" and case["details"]["sector"] == "domestic"
    assert case["details"]["employer"] == "Madam Lee, Kuala Lumpur"
    assert case["details"]["safe_time"] == "evening" and case["details"]["consent_follow_up"] == "yes"
    assert case["details"]["consent_referral"] == "no" and case["details"]["consent_stats"] == "yes"
    assert case["category"] == "wages" and case["status"] == "new" and case["anonymous"] is False
    assert [event["kind"] for event in case["events"]] == ["opened"]


async def test_full_intake_over_telegram_with_buttons(telegram_worker, config):
    await telegram_worker.say("/start")
    await telegram_worker.say("English", choice="1")
    await telegram_worker.say("Report a problem", choice="2")
    question = await telegram_worker.say("Yes, you may contact me", choice="1")
    assert [label for label, _ in question[-1]["buttons"]][0] == "Wages not paid or kept back"
    await telegram_worker.say("Recruitment fees or debt", choice="2")
    for choice in ["3", "3"]:  # Thailand, factory
        await telegram_worker.say("x", choice=choice)
    await telegram_worker.say("0")  # no employer name
    await telegram_worker.say("x", choice="2")  # this week
    await telegram_worker.say("The agent took 3 months of pay.")
    for choice in ["1", "1", "1", "1"]:
        replies = await telegram_worker.say("x", choice=choice)
    reference = REFERENCE.search(replies[-1]["text"]).group(1)
    case = json.loads(cli(config, "cases", "show", reference, "--json")[1])
    assert case["details"]["problem"] == ["fees"] and case["country"] == "TH"
    assert "employer" not in case["details"]


async def test_the_workers_own_words_are_kept_whole_however_long(worker, config):
    await worker.text("hi")
    await worker.text("1")
    await worker.text("2")
    for answer in ("1", "1", "1", "1", "-", "1"):  # contact, wages, Malaysia, domestic, no employer, still now
        await worker.text(answer)
    words = " ".join(f"Day {n}: she kept my passport and my pay again." for n in range(1, 121))  # ~5,500
    assert len(words) > 5000
    await worker.text(words)
    for answer in ("3", "1", "2", "1"):  # any time, follow-up yes, no referral, statistics yes
        reply = await worker.text(answer)
    reference = REFERENCE.search(reply).group(1)

    code, output = cli(config, "cases", "show", reference, "--json")

    assert code == 0 and json.loads(output)["details"]["account"] == words


@pytest.mark.parametrize(("language", "answer", "anonymous"), [("1", "yes", "no"), ("1", "NO", "yes"),
                                                               ("5", "हो", "no"), ("3", "tidak", "yes")])
async def test_yes_and_no_in_any_language_mean_what_the_question_asks(worker, config, language, answer, anonymous):
    await worker.text("hi")
    await worker.text(language)
    await worker.text("2")  # Report a problem: "Do you want us to be able to contact you?"

    await worker.text(answer)

    [(slots,)] = unsealed(config, "SELECT slots FROM sessions")
    assert json.loads(slots)["anonymous"] == anonymous


async def test_anonymous_report_keeps_no_contact_but_status_works_from_the_same_phone(client, worker, config):
    reference, told = await report_told(worker, anonymous=True)
    # what is kept, said as it is: no name or number, a code of the phone for STATUS, and how to remove it
    assert "no name or number, only a secret code of this phone so STATUS works here" in told
    assert "did not keep your contact" not in told
    with sqlite3.connect(config.storage.database) as db:
        contact_id, key = db.execute("SELECT contact_id, reporter_key FROM cases").fetchone()
    assert contact_id is None and key and "+60" not in key
    assert "waiting for a staff member" in await worker.text(f"STATUS {reference}")
    other = Worker(client, address="+60111222333")
    await other.text("hi")
    assert "could not find" in await other.text(f"STATUS {reference}")


async def test_status_shows_the_last_message_from_staff(worker, config, clock):
    reference = await report(worker, safe_time="1")
    code, output = cli(config, "cases", "set-status", reference, "in_progress", "--note",
                       "We called your agency.", "--by", "Aye")
    assert code == 0 and "the worker is told now" in output
    clock.advance(minutes=1)  # the command ran on the real clock, a little after the test's clock
    [news] = await worker.replies(expect=1)
    assert news["text"] == "There is news for you from the helpline. Send STATUS to see it."
    assert reference not in news["text"] and "agency" not in news["text"]  # discreet: phones are checked
    status = await worker.text(f"status {reference}")
    assert "being worked on" in status and "We called your agency." in status


async def test_follow_up_waits_for_the_workers_safe_hours(worker, config):
    reference = await report(worker, safe_time="3")  # evenings, 6 to 10, in Malaysia
    code, output = cli(config, "cases", "set-status", reference, "acknowledged", "--by", "Aye")
    assert code == 0, output
    with sqlite3.connect(config.storage.database) as db:
        queued = db.execute("SELECT next_attempt_at FROM outbox").fetchall()
    if "told now" in output:  # the command ran in the evening, Kuala Lumpur time: sent at once (or already)
        for (due,) in queued:  # not sent yet: due at once, inside the evening
            assert 18 <= datetime.fromisoformat(due).astimezone(ZoneInfo("Asia/Kuala_Lumpur")).hour < 22
    else:  # outside the window: it waits for the evening
        [(due,)] = queued
        local = datetime.fromisoformat(due).astimezone(ZoneInfo("Asia/Kuala_Lumpur"))
        assert local.hour == 18 and local.minute == 0, local
        assert "at" in output and "safe hours" in output


async def test_no_follow_up_without_consent_and_never_means_never(client, config):
    quiet = Worker(client, address="+60100000001")
    reference = await report(quiet, safe_time="1", follow_up="2")
    assert "not told" in cli(config, "cases", "set-status", reference, "acknowledged")[1]
    never = Worker(client, address="+60100000002")
    reference = await report(never, safe_time="4")
    assert "not told" in cli(config, "cases", "set-status", reference, "acknowledged")[1]


async def test_lifecycle_events_record_who_and_when_and_finished_cases_reopen(worker, config):
    reference = await report(worker)
    for status in ["acknowledged", "in_progress", "referred", "resolved", "in_progress", "closed"]:
        code, output = cli(config, "cases", "set-status", reference, status, "--by", "Aye")
        assert code == 0, output
    code, output = cli(config, "cases", "set-status", reference, "referred", "--by", "Aye")
    assert code == 1 and "cannot go from closed to referred" in output
    case = json.loads(cli(config, "cases", "show", reference, "--json")[1])
    changes = [e for e in case["events"] if e["kind"] == "status_changed"]
    assert len(changes) == 6 and all(e["actor"] == "cli:Aye" and e["created_at"] for e in changes)


async def test_cases_list_filters_and_logs_the_access(worker, config):
    await report(worker)
    await worker.text("SOS")
    code, output = cli(config, "cases", "list", "--urgent", "--json", "--by", "Aye")
    rows = [json.loads(line) for line in output.splitlines()]
    assert code == 0 and len(rows) == 1 and rows[0]["urgent"] and rows[0]["kind"] == "complaint"
    assert len(cli(config, "cases", "list", "--status", "new")[1].splitlines()) == 1
    with sqlite3.connect(config.storage.database) as db:
        assert db.execute("SELECT actor FROM audit WHERE action = 'list_cases'").fetchone()[0] == "cli:Aye"


def test_case_references_move_only_along_the_lifecycle():
    assert can_move("new", "acknowledged") and can_move("referred", "resolved")
    assert can_move("resolved", "in_progress") and not can_move("closed", "referred")
    assert not can_move("new", "new") and not can_move("new", "exploded")


def test_safe_moments_in_the_workers_local_time():
    morning_kl = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 in Kuala Lumpur
    assert next_safe_moment("morning", "MY", morning_kl) == morning_kl
    assert next_safe_moment("evening", "MY", morning_kl) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    late_doha = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # 23:00 in Qatar
    assert next_safe_moment("morning", "QA", late_doha) == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert next_safe_moment("any", "QA", late_doha) == late_doha
    assert next_safe_moment("never", "QA", late_doha) is None


def test_an_unknown_reference_is_one_error_line_and_exit_2(client, config):
    for command in (["cases", "show", "NOPE"], ["cases", "set-status", "NOPE", "closed"]):
        result = CliRunner().invoke(main, command, env={"HELPLINE_STORAGE_DATABASE": config.storage.database})

        assert result.exit_code == 2, command
        assert result.stderr.strip() == "error: no case NOPE", command
