"""The turn as an ordered chain: each stage of a worker's message is one small handler, tried in this order.

    blocked → edited → danger → flood_limit → opt_out → keywords → handoff → pages → evidence → flow

A handler takes the :class:`bot.pipeline.Turn` and returns True when it handled the message (the turn then
stops and is finished); False passes the message on. ``flow`` always takes what is left. Global keywords are
one registry too, name → handler, as the flows' actions are (:mod:`bot.flows.actions`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.cases import parse_reference
from bot.i18n import _, as_number, normalise
from bot.keywords import Keyword

if TYPE_CHECKING:
    from bot.pipeline import Turn

# Conversation slots and pseudo-nodes the stages read and write (re-exported by bot.pipeline).
RESUME = "@resume"  # the pseudo-node of "continue where you left off, or start again?"
DELETE = "@delete"  # the pseudo-node of "delete all your data?"
PAGES = "_pages"  # SMS pages not yet sent, until the worker replies 0
SAVED = "_saved_node"
EVIDENCE = "_evidence"  # media sent before a case exists, attached when one opens
PAUSED = "_paused_node"  # where a worker was when danger interrupted the flow
TYPED = "_typed"  # when the worker's last typed messages came (seconds): what the flood limit counts

Handler = Callable[["Turn"], bool]
KeywordHandler = Callable[["Turn", Keyword], None]


# The chain, stage by stage -------------------------------------------------------------------------

def blocked(turn: Turn) -> bool:
    """The worker blocked the bot (an opt-out) or unblocked it (an opt-in): nothing to answer."""
    kind = turn.inbound.kind
    if kind not in ("blocked", "unblocked"):
        return False
    turn.send_nothing = True
    if kind == "blocked":
        turn.store.opt_out(turn.contact.id, "worker", turn.now)
    elif turn.contact.opted_out:
        turn.store.update_contact(turn.contact.id, opted_out=0)
        turn.store.audit("worker", "opt_in", f"contact:{turn.contact.id}", None, turn.now)
    return True


def edited(turn: Turn) -> bool:
    """A correction counts only as the answer to a waiting question."""
    if turn.inbound.kind == "edited" and (turn.conversation.node in (None, RESUME) or turn.contact.opted_out):
        turn.send_nothing = True
        return True
    return False


def danger(turn: Turn) -> bool:
    """Danger comes before everything else, opted out or not: staff see it, the worker gets help."""
    turn.assessment = turn.p.triage.assess(turn.inbound.text)
    if not turn.assessment.urgent:
        return False
    if turn.contact.opted_out:
        turn.store.update_contact(turn.contact.id, opted_out=0)
        turn.store.audit("worker", "opt_in", f"contact:{turn.contact.id}", "danger message", turn.now)
    handoff = turn.store.handoff_case_for(turn.contact.id)
    if handoff is not None:
        turn.p.staff.relay_to_staff(turn.store, handoff, turn.contact, turn.inbound, turn.now, urgent=True)
    if handoff is None or not handoff["urgent"]:
        turn.conversation.slots[PAUSED] = turn.conversation.node
        turn.enter("danger")
    return True


def flood_limit(turn: Turn) -> bool:
    """Past the limit a message is stored all the same; one polite word, then quiet until the worker slows down."""
    recent = typed_in_the_last_minute(turn)
    limit = turn.p.settings.messages_per_minute
    if recent <= limit:
        return False
    if recent == limit + 1 and not turn.contact.opted_out:
        turn.conversation.say(_("You sent many messages in a short time. We have them all. Please wait a "
                                "minute before you send more."))
    else:
        turn.send_nothing = True
    return True


def opt_out(turn: Turn) -> bool:
    """Reads the message's keyword (``turn.keyword``, for the stages after this one). An opted-out worker is
    answered again only after START, UNSTOP/YES or SOS; anything else is stored, never answered."""
    keyword = turn.p.keywords.match(turn.inbound.text, commands=turn.caps.buttons)
    if turn.caps.sms and normalise(turn.inbound.text) in turn.p.settings.sms_opt_out_words:
        keyword = Keyword("stop")  # the carrier's rule, on SMS only
    if keyword is not None and keyword.name == "opt_in" and not turn.contact.opted_out:
        keyword = None  # "yes" is an ordinary answer unless the worker opted out
    turn.keyword = keyword
    if not turn.contact.opted_out:
        return False
    if keyword is not None and keyword.name in ("start", "opt_in", "sos"):
        turn.store.update_contact(turn.contact.id, opted_out=0)
        turn.store.audit("worker", "opt_in", f"contact:{turn.contact.id}", None, turn.now)
        return False
    turn.send_nothing = True  # they asked for no messages
    return True


def keywords(turn: Turn) -> bool:
    """A global keyword works from any point of a conversation: its handler in :data:`KEYWORDS`."""
    keyword = turn.keyword
    if keyword is None:
        return False
    turn.conversation.slots.pop(PAGES, None)
    turn.conversation.slots.pop(SAVED, None)
    KEYWORDS[keyword.name](turn, keyword)
    return True


def handoff(turn: Turn) -> bool:
    """During a hand-off the worker talks to staff, not to the flows (unless a flow is under way)."""
    if turn.conversation.node is not None:
        return False
    case = turn.store.handoff_case_for(turn.contact.id)
    if case is None:
        return False
    turn.p.staff.relay_to_staff(turn.store, case, turn.contact, turn.inbound, turn.now)
    if turn.inbound.media:
        turn.store.case_event(case["id"], "evidence", "worker", json.dumps(list(turn.inbound.media)), turn.now)
    if not case["claimed_by"]:
        turn.conversation.say(_("We passed your message on. A person from the helpline will answer here soon."))
    return True


def pages(turn: Turn) -> bool:
    """A 0 while SMS pages wait: the next page; finish() keeps the rest for the next 0."""
    slots = turn.conversation.slots
    if not (slots.get(PAGES) and as_number(turn.inbound.text) == 0):
        return False
    first, *rest = slots.pop(PAGES)
    turn.reply.outbound_ids.append(turn.store.queue_outbound(turn.contact, {"text": first, "buttons": []},
                                                             turn.now))
    if rest:
        slots[PAGES] = rest
    return True


def evidence(turn: Turn) -> bool:
    """A photo, document, location or contact without words (or with only a reference): kept with the case."""
    inbound = turn.inbound
    if not inbound.media or (inbound.text.strip() and not parse_reference(inbound.text)):
        return False
    conversation = turn.conversation
    named = parse_reference(inbound.text) if inbound.text.strip() else None
    case = turn.store.case(named) if named else turn.store.open_case_for(turn.contact.id)
    if case is not None and not turn.store.owns_case(case, turn.contact):
        case = None  # someone else's reference: treated as no case, and says nothing about it
    if case is not None:
        turn.store.case_event(case["id"], "evidence", "worker", json.dumps(list(inbound.media)), turn.now)
        conversation.say(_("Thank you. We added this to your case {reference}."), reference=case["reference"])
    else:
        conversation.slots.setdefault(EVIDENCE, []).extend(inbound.media)
        conversation.say(_("Thank you, we keep it safe. If it is about a problem, send MENU and choose "
                           "\"Report a problem\": we will add it to your report."))
    if conversation.node not in (None, RESUME):
        turn.p.engine.ask_again(conversation)
    return True


def flow(turn: Turn) -> bool:
    """Everything else is an answer to the conversation: the flows (or a resume or delete question)."""
    turn.conversation.slots.pop(PAGES, None)
    turn.answer()
    return True


CHAIN: tuple[Handler, ...] = (blocked, edited, danger, flood_limit, opt_out, keywords, handoff, pages, evidence,
                              flow)


def typed_in_the_last_minute(turn: Turn) -> int:
    """How many messages the worker typed in the last minute, this one included; 0 for a button pressed or
    a "0" for the next page: paging through an answer is reading, not flooding."""
    slots = turn.conversation.slots
    if turn.inbound.choice or (slots.get(PAGES) and as_number(turn.inbound.text) == 0):
        return 0
    now = round(turn.now.timestamp(), 3)
    typed = [moment for moment in slots.get(TYPED, []) if moment > now - 60] + [now]
    slots[TYPED] = typed[-(turn.p.settings.messages_per_minute + 2):]  # enough to know the limit is passed
    return len(typed)


# Global keywords, one handler each -----------------------------------------------------------------

def stop(turn: Turn, keyword: Keyword) -> None:
    turn.conversation.say(_("You will get no more messages from us. Send START to come back at any time."))
    turn.reply.events.append("opted_out")
    turn.opt_out = True
    turn.conversation.node = None


def leave(turn: Turn, keyword: Keyword) -> None:
    turn.conversation.node = None
    turn.conversation.say(_("OK, we stopped there."))
    turn.enter("main.menu")


def start(turn: Turn, keyword: Keyword) -> None:
    if keyword.argument and turn.p.catalogs.best_match(keyword.argument):
        turn.set_language(turn.p.catalogs.best_match(keyword.argument))  # a deep link: /start my
    menu(turn, keyword)


def menu(turn: Turn, keyword: Keyword) -> None:
    turn.enter("main.menu" if not turn.new_contact else "main")


def language(turn: Turn, keyword: Keyword) -> None:
    turn.enter("language")


def sos(turn: Turn, keyword: Keyword) -> None:
    turn.enter("danger")


def status(turn: Turn, keyword: Keyword) -> None:
    turn.status(keyword.argument)


def delete(turn: Turn, keyword: Keyword) -> None:
    conversation = turn.conversation
    conversation.slots[SAVED] = conversation.node
    conversation.node = DELETE
    conversation.say(_("This deletes your messages and your contact from the helpline. Reports you made are kept "
                       "without your name or number. Delete now?"),
                     ((_("Yes, delete my data"), True), (_("No, keep it"), True)))


def pin(turn: Turn, keyword: Keyword) -> None:
    turn.pin(keyword.argument)


# One per name in bot.keywords.KEYWORDS (a test holds them equal).
KEYWORDS: dict[str, KeywordHandler] = {
    "menu": menu,
    "language": language,
    "stop": stop,
    "leave": leave,
    "start": start,
    "opt_in": start,  # reaches here only from an opted-out worker, whom the opt-out stage has just let back in
    "status": status,
    "sos": sos,
    "delete": delete,
    "pin": pin,
}
