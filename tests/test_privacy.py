"""No personal data where it should not be, and no door left open to abuse: provider errors scrubbed, DELETE
reaching every copy, the flow actions as documented, STATUS PINs that cannot be guessed, and bodies that cannot
make the server recurse."""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from bot.app import create_app
from bot.config import load_config
from bot.content import content_paths
from bot.flows.actions import ACTIONS
from bot.i18n import Catalogs
from tests.fakes import FakeTelegram, FakeTwilio, invalid_number
from tests.helpers import (
    ACCOUNT,
    HEADERS,
    SECRET,
    TOKEN,
    SeededRandomness,
    Worker,
    case_reference,
    eventually,
    free_port,
    helpline_config,
    post,
    report,
    send_sms,
    serving_in,
    sms_to,
    staff_press,
    staff_reply,
    start_serve,
    to_group,
    to_telegram,
    unsealed,
    until,
    wait_healthy,
    webhook,
)

PHONE = "+60123987654"
# The number as a provider or a library may write it: any of these left anywhere is a leak.
PHONE_FORMS = [PHONE, PHONE[1:], "123987654", "12 398 7654", "12-398-7654"]


def raw_database(path: str) -> bytes:
    """The database file and its WAL, as bytes: what a copied file would show."""
    return b"".join(Path(name).read_bytes() for name in (path, path + "-wal") if Path(name).exists())


def raw_rows(path: str, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def assert_no_phone(text: str, where: str) -> None:
    for form in PHONE_FORMS:
        assert form not in text, f"{form!r} in {where}: {text[:2000]}"


# Provider errors --------------------------------------------------------------------------------------------


async def test_a_provider_error_quoting_the_number_reaches_no_log_table_or_staff_message(
        aiohttp_client, config, clock, fakes, caplog):
    caplog.set_level(logging.DEBUG)
    twilio, telegram = fakes
    config = helpline_config(config, fakes)
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    assert (await post(client, webhook("help me they beat me", sender=PHONE))).status == 200
    reference = case_reference((await eventually(lambda: to_group(telegram)))[0])
    await eventually(lambda: sms_to(twilio, PHONE))
    # The next message to the worker ("a person is here now") meets a provider hiccup that quotes the number,
    # then Twilio's real answer for a number it cannot send to.
    twilio.fail_next = [(503, {"code": 20503, "message": "Service unavailable while sending to {To}"}, {}),
                        invalid_number()]
    await to_telegram(client, staff_press(f"claim:{reference}"))
    await eventually(lambda: len(twilio.calls) >= 2)
    [(retry_error,)] = await eventually(lambda: raw_rows(config.storage.database,
                                                         "SELECT last_error FROM outbox WHERE last_error IS NOT NULL"))
    assert "[number]" in retry_error
    assert_no_phone(retry_error, "the outbox's last error")

    def told() -> list[dict]:
        return [m for m in to_group(telegram) if "could not be delivered" in m["text"]]

    await until(told, clock)
    [notice] = told()
    assert "error 21211" in notice["text"] and "[number]" in notice["text"]
    assert_no_phone(notice["text"], "the staff group")
    audit = raw_rows(config.storage.database, "SELECT action, detail FROM audit WHERE action = 'message_failed'")
    assert audit and "[number]" in audit[0][1]
    assert_no_phone(str(raw_rows(config.storage.database, "SELECT * FROM audit")), "the audit table")
    assert_no_phone(str(raw_rows(config.storage.database, "SELECT * FROM outbox")), "the outbox table")
    raw = raw_database(config.storage.database)
    for form in PHONE_FORMS:
        assert form.encode() not in raw, form
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "[number]" in logged, "the failure was logged"
    assert_no_phone(logged, "the log")


async def test_through_serve_a_provider_error_quoting_the_number_reaches_neither_its_log_nor_its_database(
        tmp_path):
    async with serving_in(tmp_path) as (process, session, base, twilio):
        twilio.fail_next = [invalid_number()]
        assert await send_sms(session, base, webhook("hi", sender=PHONE)) == 200
        database = str(tmp_path / "h.db")
        [(detail,)] = await eventually(lambda: raw_rows(
            database, "SELECT detail FROM audit WHERE action = 'message_failed'"))
        assert_no_phone(detail, "the audit table")
        assert "21211" in detail
        raw = raw_database(database)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    log = stderr.decode()
    assert_no_phone(log, "serve's log")
    assert "error 21211" in log and "[number]" in log, log[-3000:]
    for form in PHONE_FORMS:
        assert form.encode() not in raw, form


# DELETE -----------------------------------------------------------------------------------------------------


async def test_delete_takes_the_staff_copies_and_audit_rows_too_and_empties_the_wal(
        aiohttp_client, config, clock, fakes):
    twilio, telegram = fakes
    config = helpline_config(config, fakes)
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    assert (await post(client, webhook("help me they beat me", sender=PHONE))).status == 200
    reference = case_reference((await eventually(lambda: to_group(telegram)))[0])
    await to_telegram(client, staff_press(f"claim:{reference}"))
    await eventually(lambda: any("here now" in body for body in sms_to(twilio, PHONE)))
    await post(client, webhook("I am locked in room 5 at Jalan Ampang", sender=PHONE))
    relayed = await eventually(lambda: [m for m in to_group(telegram) if "room 5" in m["text"]])
    twilio.fail_next = [invalid_number()]  # staff's answer cannot be delivered: staff see it quoted
    await to_telegram(client, staff_reply("We are coming to room 5 now", relayed[0]["_message_id"]))
    await eventually(lambda: [m for m in to_group(telegram) if "could not be delivered" in m["text"]])
    [call] = [c for c in twilio.sent() if "here now" in c["form"]["Body"]]
    status = {"MessageSid": call["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003",
              "AccountSid": ACCOUNT}
    assert (await post(client, status, path="/twilio/status")).status == 204
    assert "no more messages" in await text_reply(client, twilio, "STOP")  # audited, naming the contact
    assert "How can we help" in await text_reply(client, twilio, "START")

    database = config.storage.database
    [(worker_id,)] = raw_rows(database, "SELECT id FROM contacts WHERE role = 'worker'")
    message_ids = {str(row[0]) for row in raw_rows(database, f"SELECT id FROM messages WHERE contact_id = {worker_id}")}
    words = ["beat me", "room 5", "Jalan Ampang", "We are coming"]
    to_staff = ("SELECT m.body FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE c.role = 'staff'"
                " ORDER BY m.id")
    staff_copies = [(sealed, body) for (sealed,), (body,) in zip(raw_rows(database, to_staff),
                                                               unsealed(config, to_staff), strict=True)
                    if any(word in body for word in words)]
    assert all(any(w in body for _, body in staff_copies) for w in words), "the staff group's copies hold them"
    named = raw_rows(database, "SELECT subject FROM audit")
    assert (f"contact:{worker_id}",) in named and any(s and s.removeprefix("message:") in message_ids
                                                      for (s,) in named)
    # What was sealed before: none of it may be left in the database file or its WAL afterwards.
    sealed = [sealed for sealed, _ in staff_copies] + [value for sql in (
        f"SELECT body FROM messages WHERE contact_id = {worker_id}",
        f"SELECT slots FROM sessions WHERE contact_id = {worker_id}",
        "SELECT details FROM cases",
        "SELECT detail FROM case_events WHERE detail IS NOT NULL") for (value,) in raw_rows(database, sql)]
    assert len(sealed) > 10 and all(value.startswith("v1:") for value in sealed)

    assert "Delete now?" in await text_reply(client, twilio, "DELETE")
    assert "Your data has been deleted" in await text_reply(client, twilio, "1")
    await eventually(lambda: not raw_rows(database, "SELECT id FROM contacts WHERE role = 'worker'"))
    await eventually(lambda: [m for m in to_group(telegram) if "deleted their data" in m["text"]])

    everything = "\n".join(str(value) for table in ("messages", "case_events", "cases", "sessions", "audit")
                           for row in unsealed(config, f"SELECT * FROM {table}") for value in row)
    for word in words:
        assert word not in everything, word
    assert "erased at the worker's request" in everything  # the alerts and relays are still there, emptied
    for (subject,) in raw_rows(database, "SELECT subject FROM audit"):
        assert subject != f"contact:{worker_id}" and (subject or "").removeprefix("message:") not in message_ids
    assert raw_rows(database, "SELECT action, subject FROM audit WHERE action = 'erase'") == [("erase", None)]
    raw = raw_database(database)
    for value in sealed:
        assert value[3:35].encode() not in raw, "an erased value is still in the database file or its WAL"


async def text_reply(client, twilio: FakeTwilio, text: str) -> str:
    """Send ``text`` from PHONE; the body of the next SMS Twilio accepts for it."""
    before = len(sms_to(twilio, PHONE))
    assert (await post(client, webhook(text, sender=PHONE))).status == 200
    return (await eventually(lambda: sms_to(twilio, PHONE)[before:]))[0]


# Flow actions -----------------------------------------------------------------------------------------------


def test_the_actions_flows_can_call_are_exactly_the_documented_ones():
    docs = (Path(__file__).parent.parent / "docs" / "FLOWS.md").read_text(encoding="utf-8")
    section = docs.split("## Built-in actions", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(ACTIONS)


def flows_with_status_and_erase(tmp_path: Path) -> Path:
    """The shipped flows, with two more main-menu choices: a flow's own STATUS and its own "delete my data"
    (texts the catalogs carry already)."""
    shipped, _ = content_paths(load_config(None, environ={}))
    folder = tmp_path / "flows"
    shutil.copytree(shipped, folder)
    main = (folder / "main.yaml").read_text(encoding="utf-8")
    danger_choice = '      - {label: "I am in danger now", value: danger, next: danger}\n'
    main = main.replace(danger_choice, danger_choice
                        + '      - {label: "Yes, delete my data", value: erase, next: forget}\n'
                        + '      - {label: "Continue", value: status, next: which_case}\n')
    main += ("\n  forget:\n    action: erase\n"
             "  which_case:\n    ask: \"Send STATUS and your case reference, for example: STATUS K7F3-QP9M\"\n"
             "    save: reference\n    next: tell\n"
             "  tell:\n    action: status\n")
    (folder / "main.yaml").write_text(main, encoding="utf-8")
    return folder


async def test_a_flows_erase_action_erases_like_delete_and_says_so_in_the_workers_language(
        aiohttp_client, config, clock, tmp_path):
    config = config.replace(content={"flows": str(flows_with_status_and_erase(tmp_path))})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    worker = Worker(client)
    reference = await report(worker)
    await worker.text("MENU")
    assert "Send STATUS and your case reference" in await worker.text("6")
    assert f"Case {reference}:" in await worker.text(reference)  # the `status` action

    burmese = Worker(client, address="+95912345678")
    await burmese.text("hi")
    await burmese.text("4")  # မြန်မာ
    await burmese.text("I want to report my agent")
    [(contact_id,)] = raw_rows(config.storage.database, "SELECT id FROM contacts WHERE language = 'my'")
    response = await client.post("/simulator/api/send", json={"channel": "sms", "address": burmese.address,
                                                              "text": "5"})
    assert (await response.json())["replies"] == 1
    catalogs = Catalogs(content_paths(config)[1], "en")
    done = catalogs.gettext("my", "Your data has been deleted. You can write to us again at any time.")
    assert done != "Your data has been deleted. You can write to us again at any time."
    assert (await eventually(lambda: unsealed(config, f"SELECT body FROM messages WHERE contact_id = {contact_id}"
                                                      " AND direction = 'out'")))[-1][0].count(done) == 1
    await eventually(lambda: not raw_rows(config.storage.database,
                                          f"SELECT id FROM contacts WHERE id = {contact_id}"))
    assert raw_rows(config.storage.database, f"SELECT COUNT(*) FROM messages WHERE contact_id = {contact_id}") \
        == [(0,)]
    assert raw_rows(config.storage.database, "SELECT COUNT(*) FROM contacts") == [(1,)]  # the other worker stays


# STATUS PINs ------------------------------------------------------------------------------------------------

LOCKED = "Too many wrong PINs. Please try again in one hour."


async def test_five_wrong_pins_lock_a_reference_for_an_hour_even_for_the_right_pin(worker, config, clock):
    reference = await report(worker)
    clock.advance(minutes=2)  # past the flood limit
    assert "PIN is set" in await worker.text("PIN 2580")
    before = await worker.text(f"STATUS {reference} 1111")
    assert "your PIN" in before
    for guess in ["2222", "3333"]:
        assert await worker.text(f"STATUS {reference} {guess}") == before
    assert "waiting for a staff member" in await worker.text(f"STATUS {reference} 2580")  # right: count restarts
    for guess in ["1111", "2222", "3333", "4444"]:
        assert await worker.text(f"STATUS {reference} {guess}") == before
    assert await worker.text(f"STATUS {reference} 5555") == LOCKED
    assert await worker.text(f"STATUS {reference} 2580") == LOCKED  # the right PIN too
    assert await worker.text("STATUS ZZZZ-ZZZZ 2580") == LOCKED  # and the same for any other reference
    events = unsealed(config, "SELECT c.reference, e.detail FROM case_events e JOIN cases c ON c.id = e.case_id"
                              " WHERE e.kind = 'status_locked'")
    assert [reference for reference, _ in events] == [reference]
    for pin in ["2580", "5555", "1111"]:
        assert pin not in events[0][1]
    clock.advance(minutes=61)
    assert "waiting for a staff member" in await worker.text(f"STATUS {reference} 2580")


async def test_wrong_pins_count_for_the_worker_without_a_reference_with_another_or_in_a_pin_change(
        worker, config, clock):
    reference = await report(worker)
    clock.advance(minutes=2)
    await worker.text("PIN 2580")
    await worker.text("STATUS 1111")  # no reference
    await worker.text("STATUS ZZZZ-ZZZZ 2222")  # a made-up one
    assert "4 to 8 digits" in await worker.text("PIN 3333 4444")  # guessing through a change of PIN
    await worker.text("STATUS 5555")
    assert await worker.text(f"STATUS {reference} 6666") == LOCKED
    assert await worker.text("PIN 2580 OFF") == LOCKED  # the PIN cannot be changed or removed meanwhile
    assert await worker.text("STATUS") == LOCKED
    assert unsealed(config, "SELECT COUNT(*) FROM case_events WHERE kind = 'status_locked'") == [(1,)]
    clock.advance(hours=1, minutes=1)
    assert "removed" in await worker.text("PIN 2580 OFF")


# Deeply nested JSON -----------------------------------------------------------------------------------------


def nested_update(depth: int, shape: str) -> bytes:
    inner = "[" * depth + "]" * depth if shape == "lists" else '{"a": ' * depth + "1" + "}" * depth
    return f'{{"update_id": 1, "message": {{"x": {inner}}}}}'.encode()


@pytest.fixture
async def telegram_bot(aiohttp_client, config, clock):
    fake = FakeTelegram()
    url = await fake.start()
    config = config.replace(server={"public_url": "https://helpline.example.org"},
                            telegram={"token": "123456:TEST-token", "webhook_secret": SECRET, "api_base_url": url})
    yield await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness())), config
    await fake.close()


@pytest.mark.parametrize("shape", ["lists", "objects"])
async def test_a_deeply_nested_update_is_a_400_with_one_log_line(telegram_bot, caplog, shape):
    client, config = telegram_bot
    for depth in (600, 3000, 40):  # 600: json.loads reads it, and recursive code after it failed
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        response = await client.post("/telegram/webhook", data=nested_update(depth, shape),
                                     headers={**HEADERS, "Content-Type": "application/json"})
        assert response.status == 400, (depth, await response.text())
        lines = "\n".join(caplog.text.splitlines())
        assert len(caplog.records) == 1 and "Traceback" not in lines, (depth, lines[:2000])
    assert unsealed(config, "SELECT COUNT(*) FROM messages") == [(0,)]
    assert (await client.post("/telegram/webhook", json={"update_id": 5, "message": {
        "message_id": 1, "date": 1767225600, "text": "hi", "chat": {"id": 5550001, "type": "private"},
        "from": {"id": 5550001, "is_bot": False, "first_name": "A"}}}, headers=HEADERS)).status == 200


async def test_the_simulator_refuses_deeply_nested_json_and_twilios_form_cannot_nest(client, aiohttp_client,
                                                                                     config, clock):
    body = json.dumps({"channel": "sms", "address": "+60111", "text": "hi"})[:-1] + ', "x": ' + "[" * 600 + \
        "]" * 600 + "}"
    response = await client.post("/simulator/api/send", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert unsealed(config, "SELECT COUNT(*) FROM messages") == [(0,)]
    # Twilio's webhook is a form: brackets are only characters of a flat value, stored and answered as any text.
    twilio = FakeTwilio()
    url = await twilio.start()
    sms = await aiohttp_client(create_app(config.replace(
        storage={"database": config.storage.database + "2"}, server={"public_url": "https://helpline.example.org"},
        twilio={"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15550006666", "api_base_url": url}),
        clock=clock, randomness=SeededRandomness()))
    assert (await post(sms, webhook("[" * 3000, **{"x[a][b]" * 100: "{" * 3000}))).status == 200
    await twilio.close()


@pytest.mark.timeout(120)
async def test_through_serve_a_deeply_nested_update_is_a_400_with_one_log_line(tmp_path):
    telegram = FakeTelegram()
    url = await telegram.start()
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:  # a file, not a pipe: a flood of lines must not block serve
        process = start_serve(tmp_path, port, None, telegram_url=url, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            await wait_healthy(session, base)
            statuses = []
            for shape in ("lists", "objects"):
                async with session.post(f"{base}/telegram/webhook", data=nested_update(600, shape),
                                        headers={**HEADERS, "Content-Type": "application/json"}) as response:
                    statuses.append(response.status)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await telegram.close()
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert statuses == [400, 400], log[-3000:]
    assert "Traceback" not in log, log[:3000]
    assert log.count("nested over") == 2 and len(log.splitlines()) < 20, log[:3000]
