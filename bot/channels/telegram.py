"""Telegram through python-telegram-bot, used as a library inside our own aiohttp server.

The webhook checks Telegram's secret header in constant time, turns each update into an ``Inbound`` for the
one pipeline, and answers 200 once it is stored. Replies leave through the outbox and PTB's ``Bot`` (over
aiohttp: ``telegram_request.py``), paced by PTB's ``AIORateLimiter`` (overall and per-group limits) and about
one message a second per chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiolimiter import AsyncLimiter
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import AIORateLimiter, Application

from bot.channels.telegram_request import AiohttpRequest
from bot.config import TelegramConfig
from bot.health import ChannelDown
from bot.http_limits import MAX_JSON_DEPTH, too_deep
from bot.intake import Unavailable
from bot.keys import INTAKE
from bot.messages import Inbound
from bot.outbox import SendError
from bot.redact import scrub
from bot.store.sqlite import Pending

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
PER_CHAT_BURST = 3  # Telegram: about one message a second to the same chat, short bursts tolerated
MAX_UPDATE_BYTES = 64 * 1024
TELEGRAM_API = "https://api.telegram.org"
TOKEN_REJECTED = "Telegram rejected the token"


class TelegramChannel:
    name = CHANNEL
    settings = "[telegram] token and api_base_url"

    def __init__(self, config: TelegramConfig, public_url: str, staff_chat_id: int = 0):
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.staff_chat_id = staff_chat_id
        self._requests = (AiohttpRequest(), AiohttpRequest())  # sending and getUpdates, as PTB keeps them
        builder = (Application.builder().token(config.token).updater(None)
                   .request(self._requests[0]).get_updates_request(self._requests[1]))
        if config.api_base_url:
            base = config.api_base_url.rstrip("/")
            builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
        limiter = AIORateLimiter(overall_max_rate=config.messages_per_second, max_retries=0)
        self.application = builder.rate_limiter(limiter).build()
        self._per_chat: dict[int, AsyncLimiter] = {}
        self._polling: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self.intake: Any = None  # the app's Intake, for polling mode

    @property
    def bot(self) -> Bot:
        return self.application.bot

    # Lifecycle -------------------------------------------------------------------------------------

    async def start_sending(self) -> None:
        """What sending needs, without a call to Telegram: its HTTP sessions. So a Bot API that is down or refuses
        the token never stops a process; the server checks the token and sets the webhook in :meth:`set_up`."""
        for request in self._requests:
            await request.initialize()

    async def set_up(self) -> None:
        """One try at what receiving needs: getMe (the token), then the webhook set at Telegram, or polling.
        Raises :class:`~bot.health.ChannelDown` with what to check; :class:`~bot.health.Health` tries again."""
        try:
            await self.application.initialize()  # getMe
            if not self.application.running:
                await self.application.start()
            if self.config.mode == "polling":
                await self.bot.delete_webhook()
                if self._polling is None:
                    self._polling = asyncio.create_task(self._poll(), name="telegram-polling")
            elif self.public_url:
                await self.bot.set_webhook(
                    url=f"{self.public_url}/telegram/webhook", secret_token=self.config.webhook_secret or None,
                    allowed_updates=ALLOWED_UPDATES,
                )
        except InvalidToken:  # (its text holds the token)
            raise ChannelDown(TOKEN_REJECTED, "[telegram] token (or HELPLINE_TELEGRAM_TOKEN)") from None
        except RetryAfter as error:
            raise ChannelDown("Telegram asks to wait (429)", retry_after=_seconds(error.retry_after)) from None
        except BadRequest as error:
            raise ChannelDown(f"Telegram refused the webhook: {error.message[:100]}",
                              "[server] public_url (Telegram needs an https URL it can reach)") from None
        except NetworkError as error:
            raise ChannelDown(_trouble(error), f"the network and [telegram] api_base_url (now {self.api_base_url})") \
                from None
        except TelegramError as error:
            raise ChannelDown(f"Telegram answered {type(error).__name__}", "the token and the bot in BotFather") \
                from None

    @property
    def api_base_url(self) -> str:
        return (self.config.api_base_url or TELEGRAM_API).rstrip("/")

    async def close(self) -> None:
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        for request in self._requests:  # opened by start_sending even when the setup never worked
            await request.shutdown()

    # Inbound ---------------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return self.message_routes()

    def message_routes(self) -> list[web.RouteDef]:
        """The webhooks that carry workers' messages (the front process reads them itself)."""
        return [web.post("/telegram/webhook", self.webhook)]

    async def webhook(self, request: web.Request) -> web.Response:
        expected = self.config.webhook_secret
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if expected and not secrets.compare_digest(given.encode(), expected.encode()):
            log.warning("telegram webhook: wrong or missing secret token; nothing stored")
            raise web.HTTPUnauthorized(text="wrong secret token")
        if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPDATE_BYTES, actual_size=request.content_length)
        try:
            raw = await request.read()
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError, web.RequestPayloadError):
            log.warning("telegram webhook: not a JSON update; nothing stored")
            raise web.HTTPBadRequest(text="expected a JSON update") from None
        if too_deep(raw, data):
            log.warning("telegram webhook: an update nested over %d levels deep; nothing stored", MAX_JSON_DEPTH)
            raise web.HTTPBadRequest(text=f"an update nests at most {MAX_JSON_DEPTH} levels deep")
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise web.HTTPBadRequest(text="an update is a JSON object with an update_id")
        await self.take(request.app[INTAKE], data)
        return web.Response(status=200)

    async def take(self, intake: Any, data: dict) -> None:
        """Hand one update to the pipeline (the webhook and polling both come here)."""
        update = self.parse(data)
        try:
            inbound = self.inbound(update, data) if update is not None else None
        except (AttributeError, TypeError, ValueError) as error:  # a chat missing, an id that is no number
            log.warning("telegram update %s ignored: %s", data.get("update_id"), type(error).__name__)
            inbound = None
        if inbound is None:
            log.info("telegram update %s ignored (%s)", data.get("update_id"), _kind(data))
            return
        try:
            reply = await intake.submit(inbound)
        except Unavailable:
            raise web.HTTPServiceUnavailable(text="try again") from None
        if update.callback_query is not None:
            self._later(self._answer_callback(update.callback_query.id, reply.notice))

    def parse(self, data: dict) -> Update | None:
        """PTB's Update, also for the older update shapes of Telegram's own samples (users without is_bot,
        callback queries without chat_instance), which PTB 22 refuses as they are."""
        for attempt in (data, _completed(data)):
            try:
                return Update.de_json(attempt, self.bot)
            except Exception as error:  # anything PTB cannot read is not an update we take
                failure = error
        log.warning("telegram update %s could not be read: %s", data.get("update_id"), scrub(str(failure)))
        return None

    def inbound(self, update: Update, data: dict) -> Inbound | None:
        """The update as an Inbound, or None for what the pipeline does not take (groups, unknown kinds)."""
        provider_id = str(update.update_id)
        now = datetime.now(UTC)
        member = update.my_chat_member
        if member is not None:
            if member.chat.type != "private" or not isinstance(member.chat.id, int):
                return None
            kind = "blocked" if member.new_chat_member.status == "kicked" else "unblocked"
            return Inbound(CHANNEL, str(member.chat.id), provider_id, "", now, kind=kind)
        query = update.callback_query
        if query is not None:
            if query.message is not None and not isinstance(query.message.chat.id, int):
                raise ValueError("a chat id is a number")
            if query.message is not None and query.message.chat.id == self.staff_chat_id:
                return Inbound(CHANNEL, str(self.staff_chat_id), provider_id, "", now, choice=query.data or "",
                               name=query.from_user.first_name, kind="staff", sender_id=str(query.from_user.id))
            if query.message is None or query.message.chat.type != "private":
                return None
            return Inbound(CHANNEL, str(query.message.chat.id), provider_id, query.data or "", now,
                           choice=query.data or "", language_hint=query.from_user.language_code,
                           name=query.from_user.first_name)
        message = update.message or update.edited_message
        if message is not None and not isinstance(message.chat.id, int):
            raise ValueError("a chat id is a number")
        if message is not None and message.chat.id == self.staff_chat_id and update.message is not None:
            return self._staff_message(message, provider_id, now)
        if message is None or message.chat.type != "private":
            return None  # other groups are ignored: never a place for workers' conversations
        media: list[str] = []
        if message.photo:
            media.append(f"telegram:photo:{message.photo[-1].file_id}")
        if message.document:
            media.append(f"telegram:document:{message.document.file_id}")
        if message.location:
            media.append(f"geo:{message.location.latitude},{message.location.longitude}")
        if message.contact:
            media.append(f"tel:{message.contact.phone_number}")
        user = message.from_user
        return Inbound(
            CHANNEL, str(message.chat.id), provider_id, message.text or message.caption or "", now,
            media=tuple(media), language_hint=user.language_code if user else None,
            name=user.first_name if user else None,
            kind="edited" if update.edited_message is not None else "message",
        )

    def _staff_message(self, message, provider_id: str, now: datetime) -> Inbound | None:
        """A staff member's reply to a case message, or /done; other chatter in the group is not kept."""
        replied = message.reply_to_message
        if replied is None or message.from_user is None or message.from_user.is_bot:
            return None
        return Inbound(CHANNEL, str(self.staff_chat_id), provider_id, message.text or message.caption or "", now,
                       name=message.from_user.first_name, kind="staff", sender_id=str(message.from_user.id),
                       reply_to=f"{message.chat.id}:{replied.message_id}")

    async def _answer_callback(self, query_id: str, notice: str | None) -> None:
        try:
            await self.bot.answer_callback_query(query_id, text=notice)
        except TelegramError as error:  # too late or already answered: the button still worked
            log.info("answerCallbackQuery failed: %s", error)

    def _later(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll(self) -> None:
        """Development without a public URL: long-poll getUpdates, same pipeline."""
        offset = 0
        while True:
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=25, allowed_updates=ALLOWED_UPDATES)
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
                continue
            except (NetworkError, TimedOut) as error:
                log.warning("getUpdates failed: %s", error)
                await asyncio.sleep(3)
                continue
            for update in updates:
                try:
                    await self.take(self.intake, update.to_dict())
                except web.HTTPServiceUnavailable:
                    await asyncio.sleep(1)
                    break  # not acknowledged: getUpdates gives it again
                offset = update.update_id + 1

    # Outbound --------------------------------------------------------------------------------------

    async def send(self, pending: Pending) -> str | None:
        chat_id = int(pending.address)
        limiter = self._per_chat.get(chat_id)
        if limiter is None:
            if len(self._per_chat) > 10_000:  # forget idle chats now and then
                self._per_chat.clear()
            limiter = self._per_chat[chat_id] = AsyncLimiter(PER_CHAT_BURST, PER_CHAT_BURST)
        await limiter.acquire()
        buttons = pending.body.get("buttons") or []
        if pending.body.get("staff"):  # Claim and Resolve side by side (a digest's Claim buttons three a row)
            keys = [InlineKeyboardButton(label, callback_data=value) for label, value in buttons]
            rows = [keys[start:start + 3] for start in range(0, len(keys), 3)]
        else:
            rows = [[InlineKeyboardButton(label, callback_data=value)] for label, value in buttons]
        markup = InlineKeyboardMarkup(rows) if buttons else None
        reply_to = pending.body.get("reply_to")
        thread = None
        if reply_to and ":" in reply_to:  # under the case's alert; sent anyway if that message is gone
            thread = ReplyParameters(int(reply_to.rsplit(":", 1)[1]), allow_sending_without_reply=True)
        try:
            message = await self.bot.send_message(chat_id, pending.body.get("text") or " ", reply_markup=markup,
                                                  reply_parameters=thread)
        except RetryAfter as error:
            raise SendError(f"Telegram 429: retry after {error.retry_after}", retry_after=_seconds(error.retry_after)) \
                from None
        except Forbidden as error:
            raise SendError(f"Telegram 403: {error.message}", permanent=True, opted_out=True) from None
        except BadRequest as error:
            raise SendError(f"Telegram 400: {error.message}", permanent=True) from None
        except InvalidToken:
            raise SendError("Telegram 401: the token was rejected", down=TOKEN_REJECTED) from None
        except (TimedOut, NetworkError) as error:
            raise SendError(f"network: {error.message}", down=_trouble(error)) from None
        # message_id counts per chat: with the chat id it is unique, and a staff reply can name the message.
        return f"{chat_id}:{message.message_id}"


def _trouble(error: NetworkError) -> str:
    """Why the Bot API could not be used, short and safe to show (no URL: the token is in its path)."""
    if isinstance(error, TimedOut):
        return "no answer from the Telegram Bot API in time"
    if isinstance(error.__cause__, aiohttp.ClientError | OSError):  # from telegram_request: no HTTP answer at all
        return "cannot reach the Telegram Bot API"
    return f"the Telegram Bot API answered: {error.message[:100]}"  # a 5xx: its status or description


def _seconds(value: Any) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


def _kind(data: dict) -> str:
    return ", ".join(key for key in data if key != "update_id") or "empty"


def _completed(data: dict) -> dict:
    """A copy with the fields PTB requires and old samples lack filled in with neutral values."""

    def fill(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            value = {k: fill(v, k) for k, v in value.items()}
            if key in ("from", "user", "new_chat_member", "old_chat_member") and "id" in value:
                value.setdefault("is_bot", False)
                value.setdefault("first_name", "")
            if key == "callback_query":
                value.setdefault("chat_instance", "")
            if key == "chat" and "id" in value:
                value.setdefault("type", "private")
            return value
        if isinstance(value, list):
            return [fill(v, key) for v in value]
        return value

    return fill(data)
