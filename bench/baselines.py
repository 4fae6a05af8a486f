"""Baselines the benchmark compares the helpline with, each a server in its own process, on loopback only.

``bare``: a bare aiohttp handler that reads the Twilio webhook's form and answers an empty TwiML, no signature
check, no storage, no reply: the ceiling of HTTP handling in Python on this machine with this load generator.

``ptb``: what a Python developer would otherwise write: python-telegram-bot's ``ConversationHandler`` with
``PicklePersistence`` walking the same menu (language, main menu, rights by country and topic, the complaint
questions), fed the same Telegram updates through ``application.process_update`` behind an aiohttp webhook
(secret header checked), replying to the same fake Bot API. ``--rate-limiter`` adds PTB's ``AIORateLimiter``
(Telegram's 30 messages/s overall limit), as the helpline has.

Run: ``python bench/baselines.py bare --port P`` or ``python bench/baselines.py ptb --port P --api URL --data DIR``.
Both stop on SIGTERM, or by themselves after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import warnings
from pathlib import Path

from aiohttp import web
from providers import until_stopped  # a sibling script: both run as `python bench/<name>.py`

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


# Bare ---------------------------------------------------------------------------------------------

async def bare_sms(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def bare_telegram(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


def bare_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post("/twilio/sms", bare_sms)
    app.router.add_post("/telegram/webhook", bare_telegram)
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "outbox_backlog": 0})


# PTB ConversationHandler --------------------------------------------------------------------------

LANGUAGES = ["English", "বাংলা", "Indonesia", "မြန်မာ", "नेपाली"]
MENU = ["Know my rights", "Report a problem", "Talk to a person", "I am in danger now"]
COUNTRIES = ["Malaysia", "Singapore", "Thailand", "UAE", "Saudi Arabia", "Qatar", "Kuwait", "Another country"]
TOPICS = ["Passport and documents", "Wages and minimum wage", "Hours and rest days", "Recruitment fees and debt",
          "Where to complain", "Emergency numbers", "Back to main menu"]
MORE = ["Another topic", "Another country", "Main menu"]
ANON = ["Yes, you may contact me", "No, report without my contact"]
PROBLEMS = ["Wages not paid or kept back", "Recruitment fees or debt", "Passport or documents kept",
            "Lied to about the job or contract", "Too many hours, no rest day", "Violence, abuse or threats",
            "Locked in, cannot leave or talk to others", "Unsafe work or injury", "Bad housing",
            "No job when I arrived", "Something else"]
SECTORS = ["Domestic work", "Construction", "Factory", "Farm or plantation", "Fishing",
           "Services (shop, hotel, cleaning)", "Other work"]
WHEN = ["It is still happening", "This week", "This month", "1 to 6 months ago", "More than 6 months ago"]
SAFE = ["Any time", "Mornings, 6 to 9", "Evenings, 6 to 10", "Never: do not write to me"]
YES_NO = ["Yes", "No"]
ANSWER = ("Your employer may not keep your passport. Only a person with lawful authority may hold it, for example "
          "for a visa renewal. (Passports Act 1966 s.12(1)(f))\n\nWhat next?")

(LANG, MAIN, R_COUNTRY, R_TOPIC, R_MORE, C_ANON, C_WHAT, C_COUNTRY, C_SECTOR, C_EMPLOYER, C_WHEN, C_ACCOUNT,
 C_SAFE, C_FOLLOW, C_REFERRAL, C_STATS) = range(16)


def build_ptb(token: str, api: str, data: Path, rate_limiter: bool):
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
    from telegram.ext import (
        AIORateLimiter,
        Application,
        CallbackQueryHandler,
        CommandHandler,
        ConversationHandler,
        MessageHandler,
        PicklePersistence,
        filters,
    )

    def markup(labels: list[str]) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=str(n))]
                                     for n, label in enumerate(labels, 1)])

    async def say(update: Update, context, text: str, labels: list[str] | None = None) -> None:
        if update.callback_query is not None:
            await update.callback_query.answer()
        await context.bot.send_message(update.effective_chat.id, text,
                                       reply_markup=markup(labels) if labels else None)

    def choice(update: Update, count: int) -> int | None:
        raw = update.callback_query.data if update.callback_query else (update.message.text if update.message else "")
        try:
            number = int(str(raw).split()[0])
        except (ValueError, IndexError):
            return None
        return number if 1 <= number <= count else None

    async def start(update, context):
        await say(update, context, "Welcome to the migrant workers' helpline. It is free and private.\n\n"
                                   "Choose your language:", LANGUAGES)
        return LANG

    async def menu(update, context):
        await say(update, context, "How can we help you? Reply with a number.", MENU)
        return MAIN

    async def again(update, context, text, labels, state):
        await say(update, context, "Sorry, I did not understand. Please reply with one of the numbers.\n\n" + text,
                  labels)
        return state

    async def lang(update, context):
        number = choice(update, len(LANGUAGES))
        if number is None:
            return await again(update, context, "Choose your language:", LANGUAGES, LANG)
        context.user_data["language"] = ["en", "bn", "id", "my", "ne"][number - 1]
        await say(update, context, "Send MENU at any time to see the menu, LANG to change language, STOP to stop "
                                   "all messages.\n\nHow can we help you? Reply with a number.", MENU)
        return MAIN

    async def main_menu(update, context):
        number = choice(update, len(MENU))
        if number is None:
            return await again(update, context, "How can we help you? Reply with a number.", MENU, MAIN)
        if number == 1:
            await say(update, context, "Which country do you work in?", COUNTRIES)
            return R_COUNTRY
        if number == 2:
            await say(update, context, "We will ask a few short questions. Send MENU at any time to stop.\n\n"
                                       "Do you want us to be able to contact you about this report?", ANON)
            return C_ANON
        await say(update, context, "A person from the helpline will write to you here as soon as they can.")
        return ConversationHandler.END

    async def r_country(update, context):
        number = choice(update, len(COUNTRIES))
        if number is None:
            return await again(update, context, "Which country do you work in?", COUNTRIES, R_COUNTRY)
        context.user_data["country"] = number
        await say(update, context, "What do you want to know?", TOPICS)
        return R_TOPIC

    async def r_topic(update, context):
        number = choice(update, len(TOPICS))
        if number is None:
            return await again(update, context, "What do you want to know?", TOPICS, R_TOPIC)
        if number == len(TOPICS):
            return await menu(update, context)
        context.user_data["topic"] = number
        await say(update, context, ANSWER, MORE)
        return R_MORE

    async def r_more(update, context):
        number = choice(update, len(MORE))
        if number is None:
            return await again(update, context, "What next?", MORE, R_MORE)
        if number == 1:
            await say(update, context, "What do you want to know?", TOPICS)
            return R_TOPIC
        if number == 2:
            await say(update, context, "Which country do you work in?", COUNTRIES)
            return R_COUNTRY
        return await menu(update, context)

    def question(key: str, labels: list[str] | None, ask_next: str, next_labels: list[str] | None, state: int,
                 this_text: str, this_state: int, multiple: bool = False):
        async def handler(update, context):
            if labels is None:  # free text
                context.user_data[key] = (update.message.text if update.message else "")[:2000]
            elif multiple:
                raw = update.callback_query.data if update.callback_query else update.message.text
                numbers = [int(part) for part in str(raw).split() if part.isdigit() and 1 <= int(part) <= len(labels)]
                if not numbers:
                    return await again(update, context, this_text, labels, this_state)
                context.user_data[key] = numbers
            else:
                number = choice(update, len(labels))
                if number is None:
                    return await again(update, context, this_text, labels, this_state)
                context.user_data[key] = number
            if state == ConversationHandler.END:
                reference = f"B{update.effective_chat.id % 10**7:07d}"
                context.bot_data.setdefault("cases", {})[reference] = dict(context.user_data)
                await say(update, context, f"Thank you. Your case number is {reference}. Keep it: send STATUS "
                                           f"{reference} to check it. Our staff will look at your case.")
                return ConversationHandler.END
            await say(update, context, ask_next, next_labels)
            return state
        return handler

    what_text = "What happened? Send all the numbers that apply, for example: 1 4"
    chain = [  # (state, key, labels, text of this question, next state, next question, next labels, multiple)
        (C_ANON, "anonymous", ANON, "Do you want us to be able to contact you about this report?",
         C_WHAT, what_text, PROBLEMS, False),
        (C_WHAT, "problem", PROBLEMS, what_text, C_COUNTRY, "Which country are you working in?", COUNTRIES, True),
        (C_COUNTRY, "country", COUNTRIES, "Which country are you working in?", C_SECTOR, "What work do you do?",
         SECTORS, False),
        (C_SECTOR, "sector", SECTORS, "What work do you do?", C_EMPLOYER,
         "What is the name of the employer or agency? You can send 0 to skip.", None, False),
        (C_EMPLOYER, "employer", None, "", C_WHEN, "When did it happen?", WHEN, False),
        (C_WHEN, "when", WHEN, "When did it happen?", C_ACCOUNT,
         "In your own words, what happened? Write one message.", None, False),
        (C_ACCOUNT, "account", None, "", C_SAFE,
         "When is it safe for us to write to you? Your phone may be seen by others.", SAFE, False),
        (C_SAFE, "safe_time", SAFE, "When is it safe for us to write to you?", C_FOLLOW,
         "May our staff write to you about this report?", YES_NO, False),
        (C_FOLLOW, "consent_follow_up", YES_NO, "May our staff write to you about this report?", C_REFERRAL,
         "May we pass your report to a partner organisation that can help, such as a union or legal aid?", YES_NO,
         False),
        (C_REFERRAL, "consent_referral", YES_NO, "May we pass your report to a partner organisation?", C_STATS,
         "May we count your report, without your name or number, in statistics we share with partners?", YES_NO,
         False),
        (C_STATS, "consent_stats", YES_NO, "May we count your report in statistics?", ConversationHandler.END, "",
         None, False),
    ]
    typed = filters.TEXT & ~filters.COMMAND & ~filters.Regex(r"(?i)^\s*menu\s*$")
    states: dict = {
        LANG: [CallbackQueryHandler(lang), MessageHandler(typed, lang)],
        MAIN: [CallbackQueryHandler(main_menu), MessageHandler(typed, main_menu)],
        R_COUNTRY: [CallbackQueryHandler(r_country), MessageHandler(typed, r_country)],
        R_TOPIC: [CallbackQueryHandler(r_topic), MessageHandler(typed, r_topic)],
        R_MORE: [CallbackQueryHandler(r_more), MessageHandler(typed, r_more)],
    }
    for state, key, labels, text, next_state, next_text, next_labels, multiple in chain:
        handler = question(key, labels, next_text, next_labels, next_state, text, state, multiple)
        states[state] = [MessageHandler(typed, handler)] if labels is None else \
            [CallbackQueryHandler(handler), MessageHandler(typed, handler)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conversation = ConversationHandler(
            entry_points=[CommandHandler("start", start), MessageHandler(filters.TEXT, start)],
            states=states,
            fallbacks=[CommandHandler("menu", menu), MessageHandler(filters.Regex(r"(?i)^\s*menu\s*$"), menu)],
            name="helpline", persistent=True,
        )
    builder = (Application.builder().token(token).updater(None).base_url(f"{api}/bot").base_file_url(f"{api}/file/bot")
               .persistence(PicklePersistence(filepath=data / "ptb.pickle")))
    if rate_limiter:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=0))
    application = builder.build()
    application.add_handler(conversation)
    return application


def ptb_app(token: str, api: str, data: Path, secret: str, rate_limiter: bool) -> web.Application:
    from telegram import Update

    application = build_ptb(token, api, data, rate_limiter)

    async def webhook(request: web.Request) -> web.Response:
        if request.headers.get(SECRET_HEADER) != secret:
            raise web.HTTPUnauthorized()
        try:
            payload = json.loads(await request.read())
        except ValueError:
            raise web.HTTPBadRequest() from None
        await application.process_update(Update.de_json(payload, application.bot))
        return web.Response(status=200)

    async def lifecycle(app: web.Application):
        await application.initialize()
        await application.start()
        yield
        await application.stop()
        await application.shutdown()

    app = web.Application(client_max_size=64 * 1024)
    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/telegram/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    return app


async def run(app: web.Application, port: int, max_seconds: float) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    await until_stopped(max_seconds)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["bare", "ptb"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", default="", help="the fake Bot API's base URL (ptb)")
    parser.add_argument("--token", default="123456:BENCH-token")
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--data", type=Path, default=Path("."), help="folder for PicklePersistence's file (ptb)")
    parser.add_argument("--rate-limiter", action="store_true", help="add AIORateLimiter (ptb)")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.ERROR)
    app = bare_app() if args.kind == "bare" else ptb_app(args.token, args.api, args.data, args.secret,
                                                             args.rate_limiter)
    asyncio.run(run(app, args.port, args.max_seconds))


if __name__ == "__main__":
    main()
