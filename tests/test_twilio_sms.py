"""SMS through Twilio: signed webhooks in, replies out through a fake Twilio REST API on loopback."""

from __future__ import annotations

import asyncio
import base64

import pytest

from bot.app import create_app
from tests.fakes import twilio_error
from tests.helpers import (
    ACCOUNT,
    PUBLIC,
    TOKEN,
    SeededRandomness,
    eventually,
    post,
    signed,
    sms_config,
    unsealed,
    until,
    webhook,
)


@pytest.fixture
async def sms(aiohttp_client, config, clock, twilio):
    return await aiohttp_client(create_app(sms_config(config, twilio), clock=clock, randomness=SeededRandomness()))


async def test_signed_webhook_is_stored_answered_with_empty_twiml_and_replied_through_rest(sms, twilio):
    response = await post(sms, webhook("hello"))
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert "<Response></Response>" in await response.text()
    [call] = await twilio.wait_for(1)
    assert call["account"] == ACCOUNT
    assert call["auth"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert call["form"]["To"] == "+60123456789"
    assert call["form"]["From"] == "+15550006666"
    assert call["form"]["StatusCallback"] == PUBLIC + "/twilio/status"
    assert "Welcome" in call["form"]["Body"] and "1. English" in call["form"]["Body"]


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}])
async def test_missing_or_wrong_signature_is_403_and_nothing_is_stored(sms, twilio, headers):
    response = await post(sms, webhook("hello"), headers=headers)
    assert response.status == 403
    health = await (await sms.get("/metrics")).text()
    assert 'helpline_messages_in_total{channel="sms"}' not in health
    await asyncio.sleep(0.2)
    assert twilio.calls == []


async def test_signature_made_with_another_token_is_refused(sms):
    params = webhook("hello")
    response = await post(sms, params, headers=signed(params, token="0" * 32))
    assert response.status == 403


async def test_bad_requests_get_4xx(sms):
    assert (await sms.post("/twilio/sms", data=b"{}", headers={"Content-Type": "application/json"})).status == 415
    big = webhook("x" * 70_000)
    assert (await post(sms, big)).status == 413
    no_sender = webhook("hi")
    del no_sender["From"]
    assert (await post(sms, no_sender)).status == 400


async def test_twilio_retry_of_the_same_message_sid_gets_one_reply(sms, twilio):
    params = webhook("hello", sid="SM" + "d" * 32)
    first, second = await asyncio.gather(post(sms, params), post(sms, params))
    assert first.status == second.status == 200
    await twilio.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(twilio.sent()) == 1


async def test_replies_in_order_under_429_and_500(sms, twilio, clock):
    twilio.fail_next = [(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "1"}),
                        twilio_error(500, 20500, "Internal")]
    await post(sms, webhook("hello"))
    await post(sms, webhook("1"))
    await until(lambda: len(twilio.sent()) >= 2, clock)
    sent = twilio.sent()
    assert "Welcome" in sent[0]["form"]["Body"]
    assert "How can we help" in sent[1]["form"]["Body"]
    assert [call["accepted"] for call in twilio.calls][:2] == [False, False]


async def test_error_21610_marks_the_worker_opted_out_and_nothing_more_is_sent(sms, twilio):
    twilio.fail_next = [twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")]
    await post(sms, webhook("hello"))
    for _ in range(50):
        if twilio.calls:
            break
        await asyncio.sleep(0.05)
    await post(sms, webhook("1"))
    await asyncio.sleep(0.5)
    assert twilio.sent() == []
    metrics = await (await sms.get("/metrics")).text()
    assert 'helpline_send_failures_total{channel="sms"} 1.0' in metrics


async def test_stop_gets_one_confirmation_then_silence_until_start(sms, twilio):
    await post(sms, webhook("hi"))
    await twilio.wait_for(1)
    await post(sms, webhook("stop"))
    [_, confirmation] = await twilio.wait_for(2)
    assert "no more messages" in confirmation["form"]["Body"]
    await post(sms, webhook("menu"))
    await asyncio.sleep(0.5)
    assert len(twilio.sent()) == 2
    await post(sms, webhook("START"))
    sent = await twilio.wait_for(3)
    assert "How can we help" in sent[2]["form"]["Body"]


async def test_advanced_opt_out_type_stop_opts_out(sms, twilio):
    await post(sms, webhook("ARRÊTER", OptOutType="STOP"))
    [confirmation] = await twilio.wait_for(1)
    assert "no more messages" in confirmation["form"]["Body"]


async def test_status_callbacks_are_recorded_and_signature_checked(sms, twilio):
    await post(sms, webhook("hi"))
    [call] = await twilio.wait_for(1)
    await asyncio.sleep(0.2)
    status = {"MessageSid": call["sid"], "MessageStatus": "delivered", "AccountSid": ACCOUNT}
    assert (await post(sms, status, path="/twilio/status", headers={})).status == 403
    assert (await post(sms, status, path="/twilio/status")).status == 204
    late = {**status, "MessageStatus": "sent"}
    assert (await post(sms, late, path="/twilio/status")).status == 204
    bad = {**status, "MessageStatus": "exploded"}
    assert (await post(sms, bad, path="/twilio/status")).status == 400


async def test_media_urls_are_stored_with_the_message(sms, twilio, config):

    params = webhook("photo of my contract", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME1",
                     MediaContentType0="image/jpeg")
    assert (await post(sms, params)).status == 200
    [(body,)] = unsealed(config, "SELECT body FROM messages WHERE direction = 'in'")
    assert "https://api.twilio.com/media/ME1" in body


async def test_messaging_service_sid_instead_of_from_number(aiohttp_client, config, clock, twilio):
    config = config.replace(twilio={"account_sid": ACCOUNT, "auth_token": TOKEN,
                                    "messaging_service_sid": "MG" + "1" * 32,
                                    "api_base_url": twilio.url}, server={"public_url": PUBLIC})
    client = await aiohttp_client(create_app(config, clock=clock, randomness=SeededRandomness()))
    await post(client, webhook("hi"))
    [call] = await twilio.wait_for(1)
    assert call["form"]["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in call["form"]


async def test_unicode_nul_and_emoji_only_bodies_are_answered(sms, twilio):
    for index, text in enumerate(["😀😀", "a\x00b", "ကျွန်တော် ကူညီပါ", ""]):
        assert (await post(sms, webhook(text, sender=f"+6010000000{index}"))).status == 200
    await twilio.wait_for(4)


async def test_gsm_normalisation_of_typographic_characters_in_replies(sms, twilio):
    await post(sms, webhook("hi"))
    [call] = await twilio.wait_for(1)
    body = call["form"]["Body"]
    assert "’" not in body and "'" in body  # "workers’" would force UCS-2; it is sent as GSM-7


async def test_a_locked_database_is_a_503_so_twilio_retries_and_nothing_is_half_stored(sms, twilio, config):
    import sqlite3

    blocker = sqlite3.connect(config.storage.database, timeout=5, isolation_level=None)  # waits its turn
    blocker.execute("BEGIN EXCLUSIVE")
    params = webhook("hello", sid="SM" + "7" * 32)
    try:
        response = await post(sms, params)
        assert response.status == 503 and response.headers["Retry-After"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await post(sms, params)).status == 200  # Twilio's retry of the same MessageSid
    [reply] = await twilio.wait_for(1)
    assert "Welcome" in reply["form"]["Body"]
    with sqlite3.connect(config.storage.database) as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'").fetchone()[0] == 1


async def test_parts_of_a_long_sms_arriving_apart_are_one_input(sms, twilio, clock):
    from bot.keys import BOT

    worker = "+60133000111"
    for text in ["hi", "1", "2", "1", "1", "1", "1", "0", "1"]:
        await post(sms, webhook(text, sender=worker))
    await twilio.wait_for(9)
    first_part = ("My employer took my passport when I arrived and says I must pay back the agency fee before "
                  "I get it. I work every day from six in the morning to ten at n")
    assert len(first_part) == 153
    await post(sms, webhook(first_part, sender=worker))
    await post(sms, webhook("ight and I have no day off.", sender=worker))
    sent = await twilio.wait_for(10)
    await asyncio.sleep(0.3)
    assert len(twilio.sent()) == 10, "one answer for the two parts"
    assert "safe for us to write" in sent[9]["form"]["Body"]
    # A part that fills its segment and has no follow-up is taken alone once the grace window is over.
    lone = "x" * 153
    await post(sms, webhook(lone, sender="+60133000222"))
    await asyncio.sleep(0.3)
    assert len(twilio.sent()) == 10
    clock.advance(seconds=5)
    await sms.app[BOT].escalations.check()
    assert "Welcome" in (await twilio.wait_for(11))[10]["form"]["Body"]


async def test_no_more_than_the_window_of_requests_wait_at_twilio_and_the_rest_follow(sms, twilio):
    from bot.outbox import WINDOW

    twilio.hold = asyncio.Event()  # Twilio takes each request and does not answer yet
    workers = [f"+6017{n:07d}" for n in range(WINDOW + 16)]
    for worker in workers:
        assert (await post(sms, webhook("hi", sender=worker))).status == 200
    await eventually(lambda: len(twilio.calls) >= WINDOW)
    await asyncio.sleep(0.3)
    assert len(twilio.calls) == WINDOW, "the other replies wait in the outbox"
    twilio.hold.set()
    sent = await twilio.wait_for(len(workers))
    assert sorted(call["form"]["To"] for call in sent) == sorted(workers)
