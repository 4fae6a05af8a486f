"""The turn's chain (bot/handlers.py): its order as documented, its keyword registry, and stages on their own."""

from __future__ import annotations

import pytest

from bot import handlers
from bot.app import build_bot
from bot.handlers import CHAIN, PAGES
from bot.keywords import KEYWORDS
from bot.messages import Inbound
from bot.pipeline import Turn
from bot.security import open_store


def test_the_chain_runs_in_the_order_its_module_documents():
    names = [handler.__name__ for handler in CHAIN]
    assert names == ["blocked", "edited", "danger", "flood_limit", "opt_out", "keywords", "handoff", "pages",
                     "evidence", "flow"]
    assert " → ".join(names) in handlers.__doc__  # the line a reader sees first says the same


def test_every_keyword_has_one_handler_and_no_handler_is_for_a_keyword_that_is_not():
    assert set(handlers.KEYWORDS) == set(KEYWORDS)


@pytest.fixture
def turn_for(config, clock):
    """A Turn on the server's own pipeline and a fresh database, for one SMS text."""
    pipeline = build_bot(config, clock=clock).pipeline
    store = open_store(config)

    def turn(text: str, slots: dict | None = None) -> Turn:
        contact = store.contact("sms", "+60123456789", clock.now())
        if slots is not None:
            store.save_session(contact.id, "main.menu", slots, clock.now())
        return Turn(pipeline, store, contact, Inbound("sms", "+60123456789", "SM1", text, clock.now()), clock.now())

    yield turn
    store.close()


def test_pages_sends_the_next_page_for_a_0_and_keeps_the_rest(turn_for):
    turn = turn_for("0", {PAGES: ["page two", "page three"]})
    assert handlers.pages(turn) is True
    assert len(turn.reply.outbound_ids) == 1
    assert turn.conversation.slots[PAGES] == ["page three"]
    assert handlers.pages(turn_for("1", {PAGES: ["page two"]})) is False  # any other answer goes on down the chain


def test_the_flood_limit_passes_the_limit_then_answers_once_then_goes_quiet(turn_for):
    turn = turn_for("hello")
    limit = turn.p.settings.messages_per_minute
    assert [handlers.flood_limit(turn) for _ in range(limit)] == [False] * limit
    assert handlers.flood_limit(turn) is True and len(turn.conversation.said) == 1 and not turn.send_nothing
    assert handlers.flood_limit(turn) is True and turn.send_nothing


def test_danger_reads_every_message_but_stops_only_an_urgent_one(turn_for):
    calm = turn_for("what is the minimum wage")
    assert handlers.danger(calm) is False and calm.assessment is not None and not calm.assessment.urgent
    urgent = turn_for("my boss beats me and locked me in")
    assert handlers.danger(urgent) is True and urgent.assessment.urgent
    assert urgent.conversation.said  # the danger flow answered
