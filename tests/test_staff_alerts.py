"""Staff alerts that are true and never stuck: the simulator kept out of production, urgent alerts before
everything else, digests for the staff group and for on-call phones, and what `helpline serve` warns of."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import aiohttp
import pytest
from click.testing import CliRunner

from bot.app import create_app
from bot.cli import main
from bot.keys import BOT
from tests.fakes import FakeTwilio
from tests.helpers import (
    ACCOUNT,
    ONCALL,
    PUBLIC,
    REFERENCE,
    TOKEN,
    SeededRandomness,
    Worker,
    eventually,
    free_port,
    helpline_config,
    post,
    send_sms,
    serving_in,
    sms_to,
    staff_press,
    staff_reply,
    to_group,
    to_telegram,
    wait_healthy,
    webhook,
)

NO_STAFF = "no staff group ([escalation] telegram_chat_id) and no on-call numbers"
UNHEARD = "We have your message, but no one can answer here right now. "
ALERTED = "Our staff have been alerted. A person will write to you here soon. "
ANYWHERE = "If you can, call the police emergency number of the country you are in."


def cases_json(database: str) -> list[dict]:
    result = CliRunner().invoke(main, ["cases", "list", "--json", "--by", "test"],
                                env={"HELPLINE_STORAGE_DATABASE": database}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def stopped(process: subprocess.Popen) -> str:
    """Stop `helpline serve` as an operator would (SIGTERM) and return what it wrote to stderr."""
    process.terminate()
    process.wait(timeout=30)
    return process.stderr.read().decode()


# Point 4: the simulator is not a door into production ------------------------------------------------


async def test_the_simulator_is_off_by_default_beside_a_real_channel(aiohttp_client, config, clock, fakes):
    client = await aiohttp_client(create_app(helpline_config(config, fakes), clock=clock,
                                             randomness=SeededRandomness()))
    for path in ("/", "/simulator", "/simulator/api/messages?channel=sms&address=1"):
        assert (await client.get(path, allow_redirects=False)).status == 404, path
    sent = await client.post("/simulator/api/send", json={"channel": "sms", "address": "+601", "text": "SOS"})
    assert sent.status == 404


@pytest.mark.timeout(120)
async def test_serve_beside_twilio_keeps_the_simulator_off_says_so_and_warns_once_of_no_staff(tmp_path):
    async with serving_in(tmp_path) as (process, session, base, _twilio):
        async with session.get(f"{base}/simulator") as response:
            assert response.status == 404
        async with session.post(f"{base}/simulator/api/send",
                                json={"channel": "sms", "address": "+601", "text": "SOS"}) as response:
            assert response.status == 404
        stderr = stopped(process)
    assert "(simulator off: Twilio configured; [server] simulator = true turns it on)" in stderr
    assert "simulator is ON" not in stderr
    assert stderr.count(NO_STAFF) == 1, stderr


@pytest.mark.timeout(120)
async def test_serve_announces_a_simulator_turned_on_and_its_cases_are_marked_and_page_no_one(tmp_path):
    twilio = FakeTwilio()
    url = await twilio.start()
    port = free_port()
    config = tmp_path / "helpline.toml"
    config.write_text(
        f'[server]\nport = {port}\npublic_url = "{PUBLIC}"\nsimulator = true\n'
        f'[storage]\ndatabase = "{tmp_path / "h.db"}"\n'
        f'[twilio]\naccount_sid = "{ACCOUNT}"\nauth_token = "{TOKEN}"\nfrom_number = "+15550006666"\n'
        f'api_base_url = "{url}"\n'
        f'[escalation]\noncall_numbers = ["{ONCALL}"]\n'  # no staff group: on-call is paged at once
    )
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(config)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base)
            async with session.get(f"{base}/simulator") as response:
                assert response.status == 200
            # Anyone who reaches the simulator sends SOS: the case is marked, and no on-call phone rings.
            async with aiohttp.ClientSession(base_url=base) as simulator:
                said = await Worker(simulator, address="+6011").text("SOS")
            assert said.startswith(UNHEARD), "nobody was told, so the worker is not told otherwise"
            # A real worker's SOS pages on-call (after the simulated one, through the same outbox).
            assert await send_sms(session, base, webhook("SOS", sender="+60123000001")) == 200
            paged = await eventually(lambda: sms_to(twilio, ONCALL))
            assert await eventually(lambda: sms_to(twilio, "+60123000001"))
            assert sms_to(twilio, "+60123000001")[0].startswith(ALERTED)
        stderr = stopped(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await twilio.close()
    assert len(paged) == 1 and "needs a person" in paged[0]
    assert stderr.count("WARNING: the simulator is ON") == 1, stderr
    assert "anyone who reaches this address can play a worker" in stderr
    assert NO_STAFF not in stderr
    found = {case["simulated"]: case for case in cases_json(str(tmp_path / "h.db"))}
    assert set(found) == {True, False} and found[True]["urgent"] and found[False]["urgent"]
    assert found[False]["reference"] in paged[0] and found[True]["reference"] not in paged[0]


async def test_a_simulated_case_is_marked_for_staff_and_never_pages_on_call(aiohttp_client, config, clock, fakes):
    twilio, telegram = fakes
    client = await aiohttp_client(create_app(helpline_config(config, fakes).replace(server={"simulator": True}),
                                             clock=clock, randomness=SeededRandomness()))
    assert "Our staff have been alerted" in await Worker(client).text("SOS")  # the group was told
    alert = (await eventually(lambda: to_group(telegram)))[0]
    assert alert["text"].startswith("🧪 SIMULATED (from /simulator, not a real worker) · 🚨 URGENT")
    clock.advance(minutes=11)
    await client.app[BOT].escalations.check()
    assert await eventually(lambda: [m for m in to_group(telegram) if "Still not claimed" in m["text"]])
    await asyncio.sleep(0.3)
    assert sms_to(twilio, ONCALL) == [], "a simulated case pages no one"
    assert (await post(client, webhook("SOS", sender="+60123000002"))).status == 200
    clock.advance(minutes=11)
    await client.app[BOT].escalations.check()
    assert len(await eventually(lambda: sms_to(twilio, ONCALL))) == 1
    listed = {case["reference"]: case["simulated"] for case in cases_json(config.storage.database)}
    assert sorted(listed.values()) == [False, True]
    text = CliRunner().invoke(main, ["cases", "list"], env={"HELPLINE_STORAGE_DATABASE": config.storage.database})
    assert text.output.count("(simulated: from /simulator, not a real worker)") == 1


async def test_simulated_sos_never_goes_before_a_real_workers_alert(aiohttp_client, config, clock, fakes):
    _, telegram = fakes
    client = await aiohttp_client(create_app(helpline_config(config, fakes).replace(server={"simulator": True}),
                                             clock=clock, randomness=SeededRandomness()))
    telegram.stalled = asyncio.Event()
    for n in range(6):  # someone on the simulator sends SOS after SOS
        await Worker(client, address=f"+60110{n}").say("SOS")
    await eventually(lambda: telegram.called("sendMessage"))
    assert (await post(client, webhook("help me they beat me", sender="+60123000004"))).status == 200
    telegram.stalled.set()
    first, second = (await eventually(lambda: len(to_group(telegram)) >= 2 and to_group(telegram)))[:2]
    assert first["text"].startswith("🧪 SIMULATED") and second["text"].startswith("🚨 URGENT")
    assert "they beat me" in second["text"]


# Point 5: staff alerts are never stuck behind a queue ------------------------------------------------------


async def ask_for_a_person(client, worker: str, *words: str) -> None:
    """A worker on SMS asks to talk to a person, then writes on: an alert and a relay each, for the group."""
    for text in ["hi", "1", "3", *words]:
        assert (await post(client, webhook(text, sender=worker))).status == 200


def test_an_urgent_message_becomes_the_head_and_a_workers_order_is_kept(tmp_path):
    from datetime import UTC, datetime

    from bot.store.sqlite import Store

    store = Store(tmp_path / "h.db")
    now = datetime.now(UTC)
    group = store.contact("telegram", "-100", now, role="staff")
    worker = store.contact("sms", "+601", now)
    with store.transaction():
        plain = [store.queue_outbound(group, {"text": f"p{n}"}, now) for n in range(3)]
        urgent = [store.queue_outbound(group, {"text": f"u{n}"}, now, priority=1) for n in range(2)]
        replies = [store.queue_outbound(worker, {"text": f"r{n}"}, now) for n in range(3)]
    order: dict[int, list[int]] = {group.id: [], worker.id: []}
    while due := store.due(now, 10):
        for pending in due:
            order[pending.contact_id].append(pending.message_id)
            store.mark_sent(pending.message_id, None, now)
    assert order[group.id] == [*urgent, *plain]
    assert order[worker.id] == replies


async def test_a_real_workers_urgent_alert_goes_before_the_staff_messages_waiting(helpline, fakes):
    twilio, telegram = fakes
    telegram.stalled = asyncio.Event()  # Telegram is slow: the group's messages wait in our outbox
    for n in range(3):
        await ask_for_a_person(helpline, f"+601230000{n}", "my boss", "took my", "phone", "yesterday")
    await eventually(lambda: telegram.called("sendMessage"))  # the first one is at Telegram
    await eventually(lambda: len(sms_to(twilio, "+6012300002")) >= 3)
    assert (await post(helpline, webhook("help me they beat me", sender="+60123999999"))).status == 200
    telegram.stalled.set()
    first, second = (await eventually(lambda: len(to_group(telegram)) >= 2 and to_group(telegram)))[:2]
    assert "asks for a person" in first["text"], "the message already at Telegram goes on"
    assert "URGENT" in second["text"] and "they beat me" in second["text"], "then the urgent alert, before 14 others"


async def test_more_staff_messages_than_a_minute_allows_come_as_one_digest_staff_can_act_on(helpline, fakes):
    twilio, telegram = fakes
    telegram.stalled = asyncio.Event()
    workers = [f"+601231000{n}" for n in range(4)]
    for n, worker in enumerate(workers):  # 4 alerts and 20 relays: one goes to Telegram, 23 would wait
        await ask_for_a_person(helpline, worker, f"worker {n} here", "they keep", "my passport", "please", "thank you")
    await eventually(lambda: telegram.called("sendMessage"))
    telegram.stalled.set()
    sent = await eventually(lambda: len(to_group(telegram)) >= 4 and to_group(telegram))
    await asyncio.sleep(0.5)
    sent = to_group(telegram)
    assert len(sent) == 4, [m["text"] for m in sent]  # the one in flight, one digest, the 2 after it
    [digest] = [m for m in sent if m["text"].startswith("📋")]
    assert digest["text"].startswith("📋 21 messages for this group waited longer than Telegram lets a bot post here")
    buttons = [key["callback_data"] for row in json.loads(digest["reply_markup"])["inline_keyboard"] for key in row]
    references = {case["reference"] for case in cases_json(helpline.app[BOT].config.storage.database)}
    assert len(references) == 4 and {f"claim:{reference}" for reference in references} == set(buttons)
    assert "asks for a person" in digest["text"] and "a message from the worker ×" in digest["text"]
    assert not any(worker in digest["text"] for worker in workers) and "passport" not in digest["text"]

    # A case whose alert was in the digest: Claim posts what waited for it, and a reply to that reaches the worker.
    first_alerted = REFERENCE.search(sent[0]["text"]).group(1)
    reference = sorted(references - {first_alerted})[0]
    await to_telegram(helpline, staff_press(f"claim:{reference}"))
    posted = await eventually(lambda: [m for m in to_group(telegram) if m["text"].startswith(f"📌 Case {reference}")])
    assert "asks for a person" in posted[0]["text"] and "they keep" in posted[0]["text"]
    n = int(re.search(r"worker (\d) here", posted[0]["text"]).group(1))
    await to_telegram(helpline, staff_reply("We are here. Where are you?", posted[0]["_message_id"]))
    assert await eventually(lambda: "We are here. Where are you?" in sms_to(twilio, workers[n]))
    await post(helpline, webhook("at the agency office", sender=workers[n]))
    relayed = await eventually(lambda: [m for m in to_group(telegram) if "agency office" in m["text"]])
    assert json.loads(relayed[0]["reply_parameters"])["message_id"] == posted[0]["_message_id"]


async def test_a_flood_of_sos_reaches_staff_in_a_minute_and_on_call_phones_at_most_the_cap(helpline, fakes, clock):
    twilio, telegram = fakes
    telegram.stalled = asyncio.Event()
    workers = [f"+601232{n:04d}" for n in range(25)]
    for worker in workers:
        assert (await post(helpline, webhook("SOS", sender=worker))).status == 200
    await eventually(lambda: telegram.called("sendMessage"))
    telegram.stalled.set()
    await eventually(lambda: len(to_group(telegram)) >= 5)
    sent = to_group(telegram)
    assert [m["text"][:2] for m in sent] == ["🚨 ", "📋 ", "🚨 ", "🚨 ", "🚨 "]
    listed = set(REFERENCE.findall(" ".join(m["text"] for m in sent)))
    assert len(listed) == 25, "every case reaches the group: 4 alerts and a digest of 21, urgent"
    assert sent[1]["text"].count("URGENT · alert: danger words (sos)") == 21, sent[1]["text"]

    # Nobody claims them: each is escalated again, and on-call is paged 10 times, then once with the rest.
    timer = helpline.app[BOT].escalations
    clock.advance(minutes=11)
    await timer.check()
    await eventually(lambda: len(sms_to(twilio, ONCALL)) == 10)
    clock.advance(minutes=2)
    await timer.check()
    pages = await eventually(lambda: len(sms_to(twilio, ONCALL)) == 11 and sms_to(twilio, ONCALL))
    assert pages[-1].startswith("Helpline: 15 more urgent cases need a person: ")
    assert len(set(REFERENCE.findall(pages[-1]))) == 15 and not any(worker[1:] in pages[-1] for worker in workers)
    clock.advance(minutes=20)  # the next round of re-escalation, within the hour: held, no second digest
    await timer.check()
    await asyncio.sleep(0.3)
    assert len(sms_to(twilio, ONCALL)) == 11


async def test_on_call_is_paged_about_one_case_at_most_three_times(aiohttp_client, config, clock, fakes):
    twilio, _ = fakes
    no_group = helpline_config(config, fakes).replace(escalation={"telegram_chat_id": 0})
    client = await aiohttp_client(create_app(no_group, clock=clock, randomness=SeededRandomness()))
    assert (await post(client, webhook("SOS", sender="+60123000003"))).status == 200
    await eventually(lambda: sms_to(twilio, ONCALL))  # no staff group: paged at once
    timer = client.app[BOT].escalations
    for minutes in (11, 20, 40, 80):  # the re-escalation rounds: 10, 30, 70 and 150 minutes after
        clock.advance(minutes=minutes)
        await timer.check()
        await asyncio.sleep(0.2)
    assert len(sms_to(twilio, ONCALL)) == 3


# Point 8: what the worker is told is true ------------------------------------------------------------------


async def test_without_staff_the_worker_in_danger_is_not_told_staff_were_alerted_in_any_language(client):
    catalogs = client.app[BOT].pipeline.catalogs
    for n, language in enumerate(catalogs.languages):
        reply = await Worker(client, address=f"+6011200{n}", language=language).text("SOS")
        assert reply == catalogs.gettext(language, UNHEARD + ANYWHERE), language
        assert catalogs.gettext(language, ALERTED + ANYWHERE) != reply
    worker = Worker(client, address="+60112999")
    await worker.text("hi")
    await worker.text("1")
    assert await worker.text("3") == UNHEARD + "Send MENU to go back to the menu."
    assert "How can we help" in await worker.text("MENU"), "no hand-off where no one can answer: the bot goes on"
    await worker.text("4")
    assert "Welcome back" in await worker.text("hello")
