"""Telegram through python-telegram-bot: real updates through the real webhook, a fake Bot API on loopback."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import NetworkError, RetryAfter, TimedOut

from bot.app import create_app
from bot.channels.telegram_request import AiohttpRequest
from tests.helpers import HEADERS, SECRET, SeededRandomness, eventually, message, press, send, unsealed, update_ids

REFERENCE = json.loads((Path(__file__).parent / "data" / "telegram_updates.json").read_text())


@pytest.fixture
async def tg(aiohttp_client, config, clock, telegram):
    config = config.replace(
        server={"public_url": "https://helpline.example.org"},
        telegram={"token": "123456:TEST-token", "webhook_secret": SECRET, "api_base_url": telegram.url},
    )
    return await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))


async def test_start_sets_the_webhook_with_the_secret_and_the_update_types(tg, telegram):
    [call] = await eventually(lambda: telegram.called("setWebhook"))  # set up in the background
    assert call["url"] == "https://helpline.example.org/telegram/webhook"
    assert call["secret_token"] == SECRET
    assert json.loads(call["allowed_updates"]) == ["message", "edited_message", "callback_query", "my_chat_member"]
    assert telegram.called("getMe")


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}])
async def test_wrong_or_missing_secret_is_401_and_nothing_is_stored(tg, telegram, headers, config):
    response = await send(tg, message("hi"), headers=headers)
    assert response.status == 401
    with sqlite3.connect(config.storage.database) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


async def test_start_command_gets_buttons_and_a_press_is_the_same_as_typing_the_number(tg, telegram):
    assert (await send(tg, message("/start"))).status == 200
    [first] = await telegram.wait_for(1)
    keyboard = json.loads(first["reply_markup"])["inline_keyboard"]
    assert keyboard[0][0] == {"text": "English", "callback_data": "1"}
    await send(tg, press("1"))
    menu = (await telegram.wait_for(2))[1]
    labels = [row[0]["text"] for row in json.loads(menu["reply_markup"])["inline_keyboard"]]
    assert labels == ["Know my rights", "Report a problem", "Talk to a person", "I am in danger now"]
    await asyncio.sleep(0.1)
    assert telegram.called("answerCallbackQuery")
    await send(tg, message("1"))  # typed: the same as pressing "Know my rights"
    assert "Which country" in (await telegram.wait_for(3))[2]["text"]


async def test_deep_link_sets_the_language(tg, telegram):
    await send(tg, message("/start my"))
    [first] = await telegram.wait_for(1)
    assert any("\u1000" <= ch <= "\u109f" for ch in first["text"])


async def test_the_same_update_twice_gets_one_reply(tg, telegram):
    update = message("hi")
    first, second = await asyncio.gather(send(tg, update), send(tg, copy.deepcopy(update)))
    assert first.status == second.status == 200
    await telegram.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(telegram.sent()) == 1


async def test_every_reference_update_is_handled_without_error(tg, telegram):
    updates = [sample["update"] for sample in REFERENCE["official_marvin_samples"].values()]
    updates += [sample["update"] for sample in REFERENCE["schema_complete"].values()]
    for update in updates:
        response = await send(tg, update)
        assert response.status == 200, (update, await response.text())


async def test_bad_requests_are_4xx(tg):
    assert (await tg.post("/telegram/webhook", data=b"{not json", headers=HEADERS)).status == 400
    assert (await tg.post("/telegram/webhook", data=b"[1]", headers=HEADERS)).status == 400
    assert (await tg.post("/telegram/webhook", data=b"x" * 100_000, headers=HEADERS)).status == 413
    unknown = await send(tg, {"update_id": 5, "poll": {"id": "1"}})
    assert unknown.status == 200  # an update type we do not take is acknowledged and ignored


async def test_group_messages_are_ignored(tg, telegram):
    update = message("hello group")
    update["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "Somewhere"}
    assert (await send(tg, update)).status == 200
    await asyncio.sleep(0.3)
    assert telegram.sent() == []


async def test_blocking_the_bot_stops_messages_and_unblocking_resumes(tg, telegram):
    await send(tg, message("hi"))
    await telegram.wait_for(1)
    blocked = REFERENCE["schema_complete"]
    kicked = next(s["update"] for s in blocked.values() if s["update_type"] == "my_chat_member")
    await send(tg, kicked)
    await send(tg, message("1"))
    await asyncio.sleep(0.4)
    assert len(telegram.sent()) == 1
    unblock = copy.deepcopy(kicked)
    unblock["update_id"] = next(update_ids)
    unblock["my_chat_member"]["new_chat_member"]["status"] = "member"
    await send(tg, unblock)
    await send(tg, message("menu"))
    assert "How can we help" in (await telegram.wait_for(2))[1]["text"]


async def test_403_marks_the_worker_opted_out(tg, telegram, config):
    telegram.fail_next = [(403, "Forbidden: bot was blocked by the user", {})]
    await send(tg, message("hi"))
    for _ in range(50):
        if telegram.called("sendMessage"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    with sqlite3.connect(config.storage.database) as db:
        assert db.execute("SELECT opted_out FROM contacts").fetchone()[0] == 1


async def test_429_retry_after_is_honoured(tg, telegram, clock):
    telegram.fail_next = [(429, "Too Many Requests: retry after 7", {"retry_after": 7})]
    await send(tg, message("hi"))
    for _ in range(50):
        if telegram.called("sendMessage"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert telegram.sent() == []
    clock.advance(seconds=8)
    [reply] = await telegram.wait_for(1)
    assert "Welcome" in reply["text"]


async def test_edited_message_counts_only_while_a_question_waits(tg, telegram):
    for update in [message("hi"), press("1"), press("2"), press("1"), press("1"), press("1"), press("1")]:
        await send(tg, update)
    assert "employer or agency" in (await telegram.wait_for(7))[6]["text"]
    original = message("Madam Le")
    await send(tg, original)
    assert "When did it happen" in (await telegram.wait_for(8))[7]["text"]
    edited = {"update_id": next(update_ids), "edited_message": {**original["message"], "text": "Madam Lee",
                                                          "edit_date": 1767225700}}
    await send(tg, edited)  # now at "When did it happen?": a choice, not a free-text answer
    assert "did not understand" in (await telegram.wait_for(9))[8]["text"]


def complaint() -> list[dict]:
    """A whole report over Telegram: 14 updates, each answered by one message; the last gives the reference."""
    return [message("hi"), press("1"), press("2"), press("1"), press("1"), press("1"), press("1"), message("0"),
            press("1"), message("not paid"), press("1"), press("1"), press("1"), press("1")]


async def test_photo_is_kept_as_evidence_on_the_open_case(tg, telegram, config):
    for update in complaint():
        await send(tg, update)
    replies = await telegram.wait_for(14, timeout=30)
    assert "Your case number is" in replies[-1]["text"]
    photo = message("")
    del photo["message"]["text"]
    photo["message"]["photo"] = [{"file_id": "AgACphoto", "file_unique_id": "u1", "width": 90, "height": 90}]
    await send(tg, photo)
    assert "We added this to your case" in (await telegram.wait_for(15, timeout=30))[14]["text"]
    [(detail,)] = unsealed(config, "SELECT detail FROM case_events WHERE kind = 'evidence'")
    assert "telegram:photo:AgACphoto" in detail


async def test_long_texts_are_split_on_paragraphs_under_4096(tg, telegram):
    from bot.render import split_paragraphs

    text = "\n\n".join(["word " * 300] * 5)
    pages = split_paragraphs(text, 4096)
    assert all(len(page) <= 4096 for page in pages)
    assert "".join(pages).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")


async def test_polling_mode_takes_updates_through_the_same_pipeline(aiohttp_client, config, clock, telegram):
    config = config.replace(telegram={"token": "123456:TEST-token", "mode": "polling", "api_base_url": telegram.url})
    telegram.updates = [message("hi", chat=2222222)]
    await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    [reply] = await telegram.wait_for(1)
    assert reply["chat_id"] == "2222222" and "Welcome" in reply["text"]
    assert telegram.called("deleteWebhook") and not telegram.called("setWebhook")


async def test_message_ids_that_repeat_across_chats_do_not_block_the_outbox(tg, telegram, config):
    telegram._ids = iter([100, 100, 101, 101])  # Telegram numbers messages per chat: two chats, same ids
    await send(tg, message("hi", chat=1))
    await send(tg, message("hi", chat=2))
    await telegram.wait_for(2)
    await send(tg, message("1", chat=1))
    await send(tg, message("1", chat=2))
    await telegram.wait_for(4)
    await asyncio.sleep(0.2)
    with sqlite3.connect(config.storage.database) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


async def test_evidence_later_by_giving_the_reference_and_never_to_someone_elses_case(tg, telegram, config):
    for update in complaint():
        await send(tg, update)
    reference = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}", (await telegram.wait_for(14, timeout=30))[-1]["text"]).group(0)
    await send(tg, message("menu"))  # the case is open; the worker goes on with the bot
    photo = message(reference, chat=1111111)
    del photo["message"]["text"]
    photo["message"]["caption"] = reference
    photo["message"]["photo"] = [{"file_id": "AgACcontract", "file_unique_id": "u2", "width": 90, "height": 90}]
    await send(tg, photo)
    assert "We added this to your case" in (await telegram.wait_for(16, timeout=30))[15]["text"]
    stranger = message(reference, chat=5555)
    del stranger["message"]["text"]
    stranger["message"]["caption"] = reference
    stranger["message"]["photo"] = [{"file_id": "AgACfake", "file_unique_id": "u3", "width": 9, "height": 9}]
    await send(tg, stranger)
    assert "We added this" not in (await telegram.wait_for(17, timeout=30))[16]["text"]
    details = [row[0] for row in unsealed(config, "SELECT detail FROM case_events WHERE kind = 'evidence'")]
    assert any("AgACcontract" in d for d in details) and not any("AgACfake" in d for d in details)


async def test_bot_api_calls_go_over_aiohttp_as_ptb_builds_them(telegram):
    bot = Bot("123456:TEST-token", base_url=f"{telegram.url}/bot", request=AiohttpRequest())
    async with bot:  # initialize: getMe
        buttons = InlineKeyboardMarkup([[InlineKeyboardButton("Claim", callback_data="claim:1")]])
        sent = await bot.send_message(4242, "नमस्ते & more", reply_markup=buttons)
        assert await bot.set_webhook("https://helpline.example.org/telegram/webhook", certificate=b"-----CERT-----")
    assert sent.message_id and sent.chat.id == 4242
    [form] = telegram.called("sendMessage")
    assert form["text"] == "नमस्ते & more"
    assert json.loads(form["reply_markup"]) == {"inline_keyboard": [[{"text": "Claim", "callback_data": "claim:1"}]]}
    [webhook] = telegram.called("setWebhook")
    assert webhook["url"] == "https://helpline.example.org/telegram/webhook"
    assert isinstance(webhook["certificate"], web.FileField)  # a file upload, sent as multipart


async def test_bot_api_errors_reach_ptb_as_its_own_exceptions(telegram):
    bot = Bot("123456:TEST-token", base_url=f"{telegram.url}/bot", request=AiohttpRequest())
    async with bot:
        telegram.fail_next = [(429, "Too Many Requests: retry after 3", {"retry_after": 3})]
        with pytest.raises(RetryAfter):
            await bot.send_message(4242, "hello")

    slow = web.Application()

    async def hang(request):
        await asyncio.sleep(5)
        return web.json_response({"ok": True, "result": True})

    slow.router.add_post("/bot{token}/{method}", hang)
    runner = web.AppRunner(slow)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(TimedOut):
            await request.post(f"http://127.0.0.1:{port}/bot1:x/getMe", read_timeout=0.2)
        await runner.cleanup()
        with pytest.raises(NetworkError):  # nothing listens any more
            await request.post(f"http://127.0.0.1:{port}/bot1:x/getMe")
    finally:
        await request.shutdown()
