"""A worker in danger is seen by a person: alert, claim, live hand-off, re-escalation, restart."""

from __future__ import annotations

import asyncio
import json

from bot.app import create_app
from bot.keys import BOT
from tests.helpers import (
    ONCALL,
    SeededRandomness,
    case_reference,
    eventually,
    helpline_config,
    message,
    post,
    sms_to,
    staff_press,
    staff_reply,
    to_group,
    to_telegram,
    webhook,
)


async def test_sms_distress_alert_claim_reply_and_done(helpline, fakes):
    twilio, telegram = fakes
    worker = "+60123000111"
    assert (await post(helpline, webhook("help me they beat me", sender=worker))).status == 200
    alert = (await eventually(lambda: to_group(telegram)))[0]
    assert "URGENT" in alert["text"] and "Channel: sms" in alert["text"] and "they beat me" in alert["text"]
    assert worker not in alert["text"]  # staff talk through the bot; the number is not shown
    reference = case_reference(alert)
    assert [b["text"] for b in json.loads(alert["reply_markup"])["inline_keyboard"][0]] == ["Claim", "Resolve"]
    first = (await eventually(lambda: sms_to(twilio, worker)))[0]
    assert "Our staff have been alerted" in first

    await to_telegram(helpline, staff_press(f"claim:{reference}"))
    await eventually(lambda: any("took case" in m["text"] for m in to_group(telegram)))
    answers = telegram.called("answerCallbackQuery")
    assert await eventually(lambda: any(a.get("text") == f"You took case {reference}." for a in answers))
    assert await eventually(lambda: any("here now" in body for body in sms_to(twilio, worker)))

    await to_telegram(helpline, staff_press(f"claim:{reference}", user=43, name="Budi"))
    assert await eventually(lambda: any("Already taken by Aye" in (a.get("text") or "")
                                        for a in telegram.called("answerCallbackQuery")))

    await post(helpline, webhook("I am locked in room 5", sender=worker))
    relayed = await eventually(lambda: [m for m in to_group(telegram) if "room 5" in m["text"]])
    assert json.loads(relayed[0]["reply_parameters"])["message_id"] == alert["_message_id"]

    await to_telegram(helpline, staff_reply("We are calling the police now. Stay safe.", relayed[0]["_message_id"]))
    assert await eventually(lambda: "We are calling the police now. Stay safe." in sms_to(twilio, worker))

    await to_telegram(helpline, staff_reply("/done", alert["_message_id"]))
    assert await eventually(lambda: any("finished this conversation" in body for body in sms_to(twilio, worker)))
    assert await eventually(lambda: any("resolved case" in m["text"] for m in to_group(telegram)))
    await post(helpline, webhook("menu", sender=worker))
    assert await eventually(lambda: "How can we help" in sms_to(twilio, worker)[-1])


async def test_telegram_worker_sos_and_staff_reply(helpline, fakes):
    _, telegram = fakes
    await to_telegram(helpline, message("hi", chat=3333))
    await to_telegram(helpline, message("SOS", chat=3333))
    alert = (await eventually(lambda: to_group(telegram)))[0]
    assert "Channel: telegram" in alert["text"]
    await to_telegram(helpline, staff_reply("Hello, I am Aye from the helpline.", alert["_message_id"]))
    worker_messages = lambda: [m["text"] for m in telegram.sent() if m["chat_id"] == "3333"]  # noqa: E731
    assert await eventually(lambda: "Hello, I am Aye from the helpline." in worker_messages())
    assert any("here now" in text for text in worker_messages()), "a reply without a claim claims the case"


async def test_unclaimed_urgent_case_is_escalated_again_and_oncall_paged(helpline, fakes, clock):
    twilio, telegram = fakes
    await post(helpline, webhook("SOS", sender="+60123000222"))
    await eventually(lambda: to_group(telegram))
    timer = helpline.app[BOT].escalations  # (it also runs by itself every second: outcomes are checked)
    reminders = lambda: [m for m in to_group(telegram) if "Still not claimed" in m["text"]]  # noqa: E731
    clock.advance(minutes=9)
    await timer.check()
    await asyncio.sleep(0.2)
    assert reminders() == [] and sms_to(twilio, ONCALL) == []
    clock.advance(minutes=2)
    await timer.check()
    assert await eventually(lambda: any("Still not claimed after 11 min" in m["text"] for m in reminders()))
    assert await eventually(lambda: sms_to(twilio, ONCALL))
    assert "needs a person" in sms_to(twilio, ONCALL)[0] and "+60123000222" not in sms_to(twilio, ONCALL)[0]
    clock.advance(minutes=15)
    await timer.check()
    await asyncio.sleep(0.2)
    assert len(reminders()) == 1, "the interval grows: 20 minutes after the first re-escalation"
    clock.advance(minutes=6)
    await timer.check()
    await eventually(lambda: len(sms_to(twilio, ONCALL)) == 2 and len(reminders()) == 2)


async def test_a_pending_reescalation_survives_a_restart(aiohttp_client, config, clock, fakes):
    twilio, telegram = fakes
    first = await aiohttp_client(create_app(helpline_config(config, fakes), clock=clock,
                                            randomness=SeededRandomness()))
    await post(first, webhook("SOS", sender="+60123000333"))
    await eventually(lambda: to_group(telegram))
    await first.close()
    second = await aiohttp_client(create_app(helpline_config(config, fakes), clock=clock,
                                             randomness=SeededRandomness(3)))
    clock.advance(minutes=11)
    await second.app[BOT].escalations.check()
    assert await eventually(lambda: sms_to(twilio, ONCALL))


async def test_claimed_case_is_not_escalated(helpline, fakes, clock):
    _, telegram = fakes
    await post(helpline, webhook("SOS", sender="+60123000444"))
    alert = (await eventually(lambda: to_group(telegram)))[0]
    reference = case_reference(alert)
    await to_telegram(helpline, staff_press(f"claim:{reference}"))
    await eventually(lambda: any("took case" in m["text"] for m in to_group(telegram)))
    clock.advance(hours=2)
    await helpline.app[BOT].escalations.check()
    await asyncio.sleep(0.2)
    assert not [m for m in to_group(telegram) if "Still not claimed" in m["text"]]


async def test_talk_to_a_person_is_a_handoff_without_urgency(helpline, fakes, clock):
    twilio, telegram = fakes
    worker = "+60123000555"
    for text in ["hi", "1", "3"]:
        await post(helpline, webhook(text, sender=worker))
    alert = (await eventually(lambda: to_group(telegram)))[0]
    assert "asks for a person" in alert["text"] and "URGENT" not in alert["text"]
    await post(helpline, webhook("I need advice about my contract", sender=worker))
    assert await eventually(lambda: [m for m in to_group(telegram) if "about my contract" in m["text"]])
    assert await eventually(lambda: any("passed your message on" in body for body in sms_to(twilio, worker)))
    clock.advance(hours=1)
    await helpline.app[BOT].escalations.check()
    await asyncio.sleep(0.2)
    assert not [m for m in to_group(telegram) if "Still not claimed" in m["text"]] and not sms_to(twilio, ONCALL)


async def test_staff_reply_to_an_opted_out_worker_is_not_sent_and_staff_are_told(helpline, fakes):
    twilio, telegram = fakes
    worker = "+60123000666"
    await post(helpline, webhook("SOS", sender=worker))
    alert = (await eventually(lambda: to_group(telegram)))[0]
    await eventually(lambda: sms_to(twilio, worker))
    await post(helpline, webhook("STOP", sender=worker))
    await eventually(lambda: len(sms_to(twilio, worker)) == 2)
    await to_telegram(helpline, staff_reply("Are you safe?", alert["_message_id"]))
    assert await eventually(lambda: any("has opted out" in m["text"] for m in to_group(telegram)))
    await asyncio.sleep(0.2)
    assert "Are you safe?" not in sms_to(twilio, worker)


async def test_audit_trail_names_staff_and_times(helpline, fakes, config):
    import sqlite3

    _, telegram = fakes
    await post(helpline, webhook("SOS", sender="+60123000777"))
    alert = (await eventually(lambda: to_group(telegram)))[0]
    reference = case_reference(alert)
    await to_telegram(helpline, staff_press(f"claim:{reference}"))
    await to_telegram(helpline, staff_reply("Hello", alert["_message_id"]))
    await to_telegram(helpline, staff_press(f"resolve:{reference}"))
    await eventually(lambda: any("resolved case" in m["text"] for m in to_group(telegram)))
    with sqlite3.connect(config.storage.database) as db:
        events = db.execute("SELECT kind, actor, created_at FROM case_events ORDER BY id").fetchall()
    kinds = [kind for kind, _, _ in events]
    for kind in ("opened", "urgent", "alerted", "claimed", "staff_reply", "resolved"):
        assert kind in kinds
    assert ("claimed", "Aye (telegram:42)") in [(k, a) for k, a, _ in events]


def test_triage_command_gives_one_json_line_per_message():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot", "triage"], input="they beat me\nwhat is the minimum wage\n",
                            capture_output=True, text=True, timeout=60)
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["urgent"] is True and first["category"] == "violence" and first["language"] == "en"
    assert second == {"text": "what is the minimum wage", "urgent": False, "category": None, "language": None,
                      "matched": None}


def test_every_danger_reply_fits_two_sms_segments_in_every_language(config):
    from bot.content import check_content

    report = check_content(config)
    danger = {node.text for node in report.flows.nodes.values() if node.flow == "danger" and node.text}
    costs = [m for m in report.messages if m["id"] in danger]
    assert len(costs) == len(danger) * len(report.locales)
    assert all(m["segments"] <= 2 for m in costs), [m for m in costs if m["segments"] > 2]


async def test_danger_words_from_an_opted_out_worker_still_reach_staff(helpline, fakes):
    twilio, telegram = fakes
    worker = "+60123000888"
    await post(helpline, webhook("hi", sender=worker))
    await post(helpline, webhook("STOP", sender=worker))
    await eventually(lambda: len(sms_to(twilio, worker)) == 2)
    await post(helpline, webhook("please help they locked me in", sender=worker))
    alert = (await eventually(lambda: to_group(telegram)))[0]
    assert "URGENT" in alert["text"]
    assert await eventually(lambda: any("alerted" in body for body in sms_to(twilio, worker)))


async def test_staff_are_told_when_a_worker_with_an_open_case_deletes_their_data(helpline, fakes):
    twilio, telegram = fakes
    worker = "+60123000999"
    await post(helpline, webhook("SOS", sender=worker))
    await eventually(lambda: to_group(telegram))
    await post(helpline, webhook("DELETE", sender=worker))
    await eventually(lambda: len(sms_to(twilio, worker)) == 2)
    await post(helpline, webhook("1", sender=worker))
    assert await eventually(lambda: any("deleted their data" in m["text"] for m in to_group(telegram)))
    assert await eventually(lambda: any("has been deleted" in body for body in sms_to(twilio, worker)))
