"""A worker's conversation through the simulator endpoints: every menu branch, keywords, sessions."""

from __future__ import annotations

import re

import pytest

from bot.app import create_app
from bot.sms import segment_info
from tests.helpers import SeededRandomness, Worker, report


async def test_first_message_greets_and_offers_languages_in_their_own_script(worker):
    reply = await worker.text("hello")
    assert "Welcome" in reply
    assert "1. English" in reply
    assert "မြန်မာ" in reply  # Burmese, named in Burmese


async def test_choosing_a_language_with_a_native_digit(worker):
    await worker.text("hi")
    reply = await worker.text("၁")  # Burmese digit one: English is the first choice
    assert "How can we help you?" in reply
    assert "1. Know my rights" in reply and "4. I am in danger now" in reply


async def test_rights_branch_cites_its_source(worker):
    await worker.text("hi")
    await worker.text("1")
    assert "Which country" in await worker.text("1")
    assert "What do you want to know?" in await worker.text("2")  # Singapore
    fact = await worker.text("1")  # passport
    assert "Passports Act" in fact
    assert "1. Another topic" in fact


async def test_report_a_problem_opens_a_case_with_a_reference(worker):
    reference = await report(worker)
    status = await worker.text(f"status {reference.lower()}")
    assert reference in status and "waiting for a staff member" in status


async def test_status_of_someone_elses_case_looks_like_an_unknown_reference(client, worker):
    reference = await report(worker)
    other = Worker(client, address="+60111111111")
    await other.text("hi")
    theirs = await other.text(f"STATUS {reference}")
    unknown = await other.text("STATUS ZZZZ-ZZZZ")
    assert theirs.replace(reference, "X") == unknown.replace("ZZZZ-ZZZZ", "X")


async def test_talk_to_a_person_and_danger_branches(worker):
    await worker.text("hi")
    await worker.text("1")
    # No staff group and no on-call numbers here: the worker is not told that anyone was alerted.
    assert "no one can answer here right now. Send MENU" in await worker.text("3")
    assert "How can we help" in await worker.text("MENU")
    assert "no one can answer here right now. If you can, call" in await worker.text("4")


async def test_sos_works_from_any_node(worker):
    await worker.text("hi")
    await worker.text("1")
    await worker.text("2")  # in the middle of a complaint
    assert "call the police emergency number" in await worker.text("sos")


async def test_lang_keyword_changes_language_for_every_later_message(worker):
    await worker.text("hi")
    await worker.text("1")
    reply = await worker.text("LANG")
    assert "Choose your language" in reply
    number = next(line.split(".")[0] for line in reply.splitlines() if "မြန်မာ" in line)
    burmese_menu = await worker.text(number)
    assert "Know my rights" not in burmese_menu
    assert re.search("[\u1000-\u109f]", burmese_menu)
    assert re.search("[\u1000-\u109f]", await worker.text("MENU"))


async def test_an_answer_not_understood_gets_the_question_again(worker):
    await worker.text("hi")
    reply = await worker.text("9")
    assert "did not understand" in reply and "Choose your language" in reply


async def test_stop_confirms_once_then_nothing_until_start(client, worker):
    await worker.text("hi")
    assert "no more messages" in await worker.text("STOP")
    response = await client.post("/simulator/api/send",
                                 json={"channel": "sms", "address": worker.address, "text": "hello?"})
    assert (await response.json())["replies"] == 0
    assert "How can we help" in await worker.text("START")


@pytest.mark.parametrize("word", ["cancel", "END", "Quit"])
async def test_cancel_end_and_quit_leave_a_report_without_unsubscribing(worker, word):
    await worker.text("hi")
    await worker.text("1")
    assert "contact you about this report?" in await worker.text("2")  # in the middle of a report

    left = await worker.text(word)

    assert "OK, we stopped there." in left and "How can we help you?" in left
    assert "no more messages" not in left
    assert "Which country" in await worker.text("1")  # still answered: not opted out


async def test_cancel_on_telegram_leaves_without_unsubscribing(telegram_worker):
    await telegram_worker.text("/start")
    for word in ("/cancel", "cancel"):
        assert "OK, we stopped there." in await telegram_worker.text(word)
    assert "How can we help you?" in await telegram_worker.text("menu")


async def test_a_carriers_wider_opt_out_list_is_a_config_option_for_sms_only(aiohttp_client, config, clock):
    config = config.replace(sms={"opt_out_words": ("CANCEL", "END", "QUIT")})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    sms, telegram = Worker(client), Worker(client, channel="telegram", address="5550002")
    await sms.text("hi")
    await telegram.text("/start")

    assert "no more messages" in await sms.text("cancel")
    assert "OK, we stopped there." in await telegram.text("cancel")
    response = await client.post("/simulator/api/send", json={"channel": "sms", "address": sms.address,
                                                              "text": "hello?"})
    assert (await response.json())["replies"] == 0


async def test_duplicate_provider_id_gets_no_second_reply(client, worker):
    first = await worker.say("hi", message_id="SM-dup-1")
    assert first
    response = await client.post("/simulator/api/send", json={"channel": "sms", "address": worker.address,
                                                              "text": "hi", "id": "SM-dup-1"})
    assert await response.json() == {"stored": False, "replies": 0}


async def test_session_survives_a_restart(aiohttp_client, config, clock):
    first = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    worker = Worker(first)
    await worker.text("hi")
    await worker.text("1")
    await worker.text("2")  # report a problem
    await first.close()
    second = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    again = Worker(second)
    again.last_id = worker.last_id
    assert "What happened?" in await again.text("1")


async def test_a_returning_worker_is_offered_to_continue_or_start_again(worker, clock):
    await worker.text("hi")
    await worker.text("1")
    await worker.text("2")
    clock.advance(hours=5)
    reply = await worker.text("hello again")
    assert "Welcome back" in reply and "1. Continue" in reply and "2. Start again" in reply
    assert "contact you about this report" in await worker.text("1")
    clock.advance(hours=5)
    await worker.text("hi")
    assert "How can we help" in await worker.text("2")


async def test_telegram_worker_gets_buttons_whose_values_match_typed_numbers(telegram_worker):
    replies = await telegram_worker.say("/start")
    buttons = replies[-1]["buttons"]
    assert buttons[0] == ["English", "1"]
    menu = await telegram_worker.say("English", choice="1")
    assert [label for label, _ in menu[-1]["buttons"]][:2] == ["Know my rights", "Report a problem"]
    assert "1. Know my rights" not in menu[-1]["text"]
    typed = await telegram_worker.say("1")
    assert "Which country" in typed[-1]["text"]


async def test_telegram_language_hint_is_used_from_the_first_message(client):
    worker = Worker(client, channel="telegram", address="5550002", language="my")
    replies = await worker.say("/start")
    assert any("\u1000" <= ch <= "\u109f" for ch in replies[0]["text"])


async def test_bad_input_gets_a_sensible_reply_and_is_stored(worker):
    for text in ["", "   ", "😀😀😀", "x" * 10_000, "abc\x00\x07def", "नमस्ते hello مرحبا"]:
        replies = await worker.say(text)
        assert replies, repr(text[:20])
        assert all(reply["text"].strip() for reply in replies)


async def test_long_sms_replies_are_paged_and_zero_sends_more(aiohttp_client, config, clock):
    config = config.replace(sms={"segment_budget": 1})
    worker = Worker(await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness())))
    await worker.text("hi")
    await worker.text("1")
    await worker.text("1")
    await worker.text("1")  # Malaysia
    first = await worker.say("4")  # recruitment fees: a long fact, then "What next?" with choices
    assert len(first) == 2, "the first page of the fact, and the question, so the choices are never hidden"
    assert first[0]["text"].endswith("Reply 0 for more.")
    assert all(segment_info(message["text"]).segments == 1 for message in first)
    assert "1. Another topic" in first[1]["text"]
    pages = [first[0]["text"]]
    while pages[-1].endswith("Reply 0 for more."):
        pages.append(await worker.text("0"))
    assert "(Private Employment Agencies Act 1981)" in pages[-1]
    assert "What do you want to know?" in await worker.text("1")


async def test_yes_is_an_ordinary_answer_unless_opted_out(worker):
    await worker.text("hi")
    await worker.text("1")
    await worker.text("2")
    await worker.text("1")
    await worker.text("1")
    await worker.text("1")
    await worker.text("1")
    await worker.text("0")
    await worker.text("1")
    await worker.text("not paid")
    assert "May our staff write" in await worker.text("1")
    assert "partner organisation" in await worker.text("yes")
