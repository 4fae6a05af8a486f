"""The one road every message takes: deduplicate, store, keywords, flow, cases, outbox.

:meth:`Pipeline.handle` runs on the database thread inside the caller's transaction, so an inbound
message, everything it changes and every reply it queues are stored together or not at all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import sms
from bot.cases import STATUS_NAMES, new_reference, parse_reference
from bot.clock import Clock, Randomness
from bot.flows.actions import ACTIONS
from bot.flows.engine import Conversation, Engine, Say
from bot.flows.model import FlowSet
from bot.handlers import CHAIN, DELETE, EVIDENCE, PAGES, PAUSED, RESUME, SAVED, TYPED  # noqa: F401 (re-exported)
from bot.i18n import Catalogs, _, as_number, normalise
from bot.keywords import Keyword, KeywordTable
from bot.messages import CAPABILITIES, SIMULATED_CHANNELS, Inbound, Reply
from bot.render import render
from bot.staff import Staff, StaffSettings
from bot.store.sqlite import Contact, Store, iso
from bot.triage import Assessment, Triage

log = logging.getLogger(__name__)

KEEP_AFTER_END = ("country", EVIDENCE, TYPED)  # slots worth remembering between conversations
NOT_DETAILS = {"language", "reference", "topic", "alerted"}  # conversation slots that say nothing about the case
PIN_TRIES = 5  # wrong PINs in a row before STATUS is locked
PIN_LOCK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    idle_minutes: int = 60
    sms_budget: int = 3
    messages_per_minute: int = 20
    part_grace_seconds: float = 3.0
    sms_opt_out_words: frozenset[str] = frozenset()  # normalised; a carrier's wider list of opt-out words


class Pipeline:
    """Turns one stored inbound message into the worker's next replies and the case changes it causes."""

    def __init__(self, flows: FlowSet, catalogs: Catalogs, clock: Clock, randomness: Randomness,
                 settings: PipelineSettings | None = None, staff: Staff | None = None,
                 triage: Triage | None = None):
        self.flows = flows
        self.catalogs = catalogs
        self.engine = Engine(flows, catalogs)
        self.keywords = KeywordTable(catalogs)
        self.clock = clock
        self.randomness = randomness
        self.settings = settings or PipelineSettings()
        self.staff = staff or Staff(StaffSettings(), catalogs)
        self.triage = triage or Triage()

    def handle(self, store: Store, inbound: Inbound) -> Reply:
        """Store ``inbound`` and everything it leads to. A provider id seen before gets no second reply."""
        now = self.clock.now()
        staff = inbound.kind == "staff"
        contact = store.contact(inbound.channel, inbound.address, now, None if staff else inbound.name,
                                role="staff" if staff else "worker")
        body = {"text": inbound.text, "media": list(inbound.media), "choice": inbound.choice}
        if staff:
            body.update(sender=inbound.sender_id, reply_to=inbound.reply_to)
        hold = self._may_continue(inbound)
        status = "held" if hold else "received"
        if store.store_inbound(contact.id, inbound.channel, inbound.provider_id, body, now, status) is None:
            return Reply(duplicate=True)
        if staff:
            return Reply(notice=self.staff.handle(store, inbound, now))
        if hold:
            return Reply(events=["held"])  # stored; taken with its next part, or alone after the grace window
        held = store.take_held(contact.id)
        if held:  # the earlier parts of this long SMS: one input, in order
            inbound = dataclasses.replace(inbound, text="".join([*held, inbound.text]))
        return self._process(store, contact, inbound, now)

    def release_held(self, store: Store) -> int:
        """SMS held as possible first parts whose grace window ended without a next part: take each as it
        is. Returns how many workers' messages were taken."""
        now = self.clock.now()
        count = 0
        for contact_id, provider_id in store.held_before(now - timedelta(seconds=self.settings.part_grace_seconds)):
            contact = store.contact_by_id(contact_id)
            texts = store.take_held(contact_id)
            if contact is None or not texts:
                continue
            inbound = Inbound(contact.channel, contact.address, provider_id, "".join(texts), now)
            with store.transaction():
                self._process(store, contact, inbound, now)
            count += 1
        return count

    def _may_continue(self, inbound: Inbound) -> bool:
        """An SMS exactly as long as one part of a long SMS (153 or 152 GSM-7 characters, 67 or 66 UCS-2 units)
        may be a first part that the network delivered alone: hold it for the grace window. Danger is never
        held."""
        if inbound.channel != "sms" or not self.settings.part_grace_seconds or not inbound.text:
            return False
        info = sms.segment_info(inbound.text)
        part = info.units in ((152, 153) if info.encoding == "GSM-7" else (66, 67))
        return part and not self.triage.assess(inbound.text).urgent

    def _process(self, store: Store, contact: Contact, inbound: Inbound, now: datetime) -> Reply:
        turn = Turn(self, store, contact, inbound, now)
        try:
            with store.transaction():
                turn.run()
        except Exception:
            # A flow or content error must never lose the message or leave the worker without an answer.
            log.exception("pipeline failed for message %s on %s", inbound.provider_id, inbound.channel)
            turn = Turn(self, store, contact, inbound, now)
            turn.conversation.said = [Say(_("Sorry, something went wrong on our side. Please send MENU to "
                                            "start again."), turn.conversation.language)]
            turn.finish(reset=True)
        return turn.reply


class Turn:
    """One worker message worked through: the conversation state before, and what it becomes."""

    def __init__(self, pipeline: Pipeline, store: Store, contact: Contact, inbound: Inbound, now: datetime):
        self.p = pipeline
        self.store = store
        self.contact = contact
        self.inbound = inbound
        self.now = now
        self.reply = Reply()
        session = store.session(contact.id)
        self.idle = False
        node, slots = None, {}
        if session is not None:
            node, slots, updated_at = session
            self.idle = datetime.fromisoformat(updated_at) < now - timedelta(minutes=pipeline.settings.idle_minutes)
        self.new_contact = session is None
        language = contact.language
        if language is None and contact.created:
            language = pipeline.catalogs.best_match(inbound.language_hint)
            if language:
                store.update_contact(contact.id, language=language)
        self.conversation = Conversation(node=node, slots=slots, language=language)
        self.caps = CAPABILITIES[inbound.channel]
        self.send_nothing = False
        self.opt_out = False
        self.erased = False
        self.assessment: Assessment | None = None  # set by the danger stage: what triage made of this message
        self.keyword: Keyword | None = None  # set by the opt-out stage: the global keyword this message is

    # The turn --------------------------------------------------------------------------------------

    def run(self) -> None:
        """Each stage of :data:`bot.handlers.CHAIN` in turn, until one handles the message; then finish."""
        for handler in CHAIN:
            if handler(self):
                break
        self.finish()

    def answer(self) -> None:
        conversation = self.conversation
        if self.new_contact:
            return self.enter("main")
        if conversation.node == RESUME:
            return self.resume_choice()
        if conversation.node == DELETE:
            return self.delete_choice()
        if conversation.node is None:
            conversation.say(_("Welcome back."))
            return self.enter("main.menu")
        if conversation.node not in self.p.flows.nodes:
            return self.enter("main.menu")  # the flows changed since this session was saved
        if self.idle:
            conversation.slots[SAVED] = conversation.node
            conversation.node = RESUME
            conversation.say(_("Welcome back. Do you want to continue where you left off?"),
                             ((_("Continue"), True), (_("Start again"), True)))
            return
        # The worker's words are kept whole: every channel already bounds a message (64 kB a request).
        self.p.engine.answer(conversation, self.inbound.text, self.inbound.choice, self.actions)

    def resume_choice(self) -> None:
        conversation = self.conversation
        saved = conversation.slots.pop(SAVED, None)
        typed = self.inbound.choice or self.inbound.text
        number = as_number(typed)
        word = normalise(typed)
        wants_to_continue = number == 1 or word == normalise(self.p.catalogs.gettext(conversation.language, "Continue"))
        if wants_to_continue and saved in self.p.flows.nodes:
            conversation.node = saved
            return self.p.engine.ask_again(conversation)
        self.enter("main.menu")

    def delete_choice(self) -> None:
        conversation = self.conversation
        saved = conversation.slots.pop(SAVED, None)
        typed = self.inbound.choice or self.inbound.text
        yes = normalise(self.p.catalogs.gettext(conversation.language, "Yes, delete my data"))
        if as_number(typed) != 1 and normalise(typed) != yes and self.p.engine.yes_no(typed) != "yes":
            conversation.node = saved if saved in self.p.flows.nodes else None
            conversation.say(_("Nothing was deleted."))
            if conversation.node:
                self.p.engine.ask_again(conversation)
            return
        self.erase()

    def erase(self) -> None:
        """Erase the worker's data (a confirmed DELETE, or a flow's ``erase`` action), tell staff of any open
        case, and tell the worker in their language; that last message is the contact's last trace."""
        open_cases = self.store.erase_contact(self.contact.id, self.now, keep_address=True)
        for case in open_cases:
            self.p.staff.to_group(self.store, f"🗑 The worker of case {case['reference']} deleted their data. The "
                                              "case keeps its category, country and dates only.", case, self.now)
        self.erased = True
        self.conversation.node = None
        self.conversation.say(_("Your data has been deleted. You can write to us again at any time."))

    def pin(self, argument: str) -> None:
        """PIN 2580 sets a PIN that STATUS then needs; PIN <old> <new> changes it, PIN <old> OFF removes it."""
        parts = argument.split()
        digits = [p for p in parts if p.isdigit() and 4 <= len(p) <= 8]
        has_pin = self.store.pin_matches(self.contact.id, None) is not None
        if not has_pin and len(parts) == 1 and digits:
            self.store.set_pin(self.contact.id, digits[0])
            self.conversation.say(_("Your PIN is set. From now on, send STATUS, your case number and your PIN, "
                                    "for example: STATUS K7F3-QP9M 2580"))
        elif has_pin and len(parts) == 2 and self.pin_refused(parts[0] if parts[0] in digits else None, "PIN"):
            return  # a change needs the old PIN: guesses count as at STATUS, or PIN <guess> <new> would try them all
        elif has_pin and len(parts) == 2:
            new = None if normalise(parts[1]) == "off" else parts[1]
            if new is not None and not (new.isdigit() and 4 <= len(new) <= 8):
                self.conversation.say(_("A PIN is 4 to 8 digits, for example: PIN 2580"))
                return
            self.store.set_pin(self.contact.id, new)
            self.conversation.say(_("Your PIN is changed.") if new else _("Your PIN is removed."))
        else:
            self.conversation.say(_("A PIN is 4 to 8 digits, for example: PIN 2580"))

    def enter(self, target: str) -> None:
        self.p.engine.enter(self.conversation, target, self.actions)

    # Actions the flows call ------------------------------------------------------------------------

    def actions(self, name: str, args: dict, conversation: Conversation) -> str | None:
        """A flow's action node: the handler of that name in the one registry (the loader accepts no other)."""
        return ACTIONS[name](self, args, conversation)

    def set_language(self, code: str | None) -> None:
        if code and self.p.catalogs.knows(code):
            self.conversation.language = code
            self.store.update_contact(self.contact.id, language=code)

    def open_case(self, kind: str, urgent: bool) -> dict:
        slots = self.conversation.slots
        reference = new_reference(self.p.randomness)
        while self.store.reference_taken(reference):
            reference = new_reference(self.p.randomness)
        details = {k: v for k, v in slots.items() if not k.startswith("_") and k not in NOT_DETAILS}
        if str(details.get("employer", "")).strip() in ("0", "-", ""):
            details.pop("employer", None)  # skipped
        anonymous = slots.get("anonymous") == "yes"
        case_id = self.store.create_case(
            reference, None if anonymous else self.contact.id, kind, urgent, details, self.conversation.language,
            self.now, category=_first(slots.get("problem")), country=slots.get("country"),
            reporter_key=self.store.sealer.lookup_key(self.contact.channel, self.contact.address) if anonymous
            else None, simulated=self.contact.channel in SIMULATED_CHANNELS,
        )
        self.store.case_event(case_id, "opened", "worker", None, self.now)
        if slots.get(EVIDENCE):
            self.store.case_event(case_id, "evidence", "worker", json.dumps(slots.pop(EVIDENCE)), self.now)
        slots["reference"] = reference
        self.reply.events.append(f"case_opened:{reference}")
        return {"id": case_id, "reference": reference}

    def escalate(self, urgent: bool) -> None:
        """Bring a person in: raise the worker's open case (urgent for danger), or open one; alert staff."""
        case = self.store.open_case_for(self.contact.id)
        if case is None:
            opened = self.open_case(kind="danger" if urgent else "handoff", urgent=urgent)
            case = self.store.case_by_id(opened["id"])
        else:
            self.conversation.slots["reference"] = case["reference"]
            if urgent and not case["urgent"]:
                self.store.update_case(case["id"], self.now, urgent=1)
                case = self.store.case_by_id(case["id"])
        self.store.case_event(case["id"], "urgent" if urgent else "handoff_requested", "worker", None, self.now)
        assessment = self.assessment
        if assessment is not None and assessment.urgent:
            reason = f"danger words ({assessment.category}: “{assessment.matched}”, {assessment.language})"
            why = f"danger words ({assessment.category})"
        else:
            reason = why = "pressed “I am in danger now” or sent SOS" if urgent else "asked to talk to a person"
        alerted = self.p.staff.alert(self.store, case, self.contact, self.inbound.text, reason, self.now, why=why)
        self.conversation.slots["alerted"] = "yes" if alerted else "no"  # the flow tells the worker only the truth
        self.reply.events.append(f"{'urgent' if urgent else 'handoff'}:{case['reference']}")

    def status(self, typed: str) -> None:
        conversation = self.conversation
        words = typed.split()
        pin = next((w for w in words if w.isdigit() and 4 <= len(w) <= 8), None)
        typed = " ".join(w for w in words if w != pin)
        if self.pin_refused(pin, "STATUS"):
            return
        reference = parse_reference(typed) if typed else None
        case = self.store.case(reference) if reference else None
        if typed and (case is None or not self.store.owns_case(case, self.contact)):
            # The same answer for someone else's case as for no case: references reveal nothing.
            conversation.say(_("We could not find a case with the reference {typed}. Please check it and send "
                               "STATUS and the reference again."), typed=typed.upper())
            return
        if case is None:
            case = self.store.open_case_for(self.contact.id)
        if case is None:
            conversation.say(_("Send STATUS and your case reference, for example: STATUS K7F3-QP9M"))
            return
        status = self.p.catalogs.gettext(conversation.language, STATUS_NAMES.get(case["status"], case["status"]))
        conversation.say(_("Case {reference}: {status}."), reference=case["reference"], status=status)
        last = self.store.last_staff_message(case["id"])
        if last:
            conversation.say(_("Last message from our staff: {message}"), message=last)

    def pin_refused(self, pin: str | None, where: str) -> bool:
        """For a worker with a PIN: whether to refuse (the answer said) because the PIN is missing or wrong, or
        because PIN_TRIES wrong ones in a row locked STATUS for PIN_LOCK (then also the right PIN is refused).
        Every wrong PIN counts, with a reference or without, as the PIN is one for all the worker's cases:
        counted per reference, a guesser would name other references (or none) to go on guessing."""
        matches = self.store.pin_matches(self.contact.id, pin)
        if matches is None:
            return False  # no PIN: the phone that made the case is enough
        locked = self.store.status_locked(self.contact.id, self.now)
        if matches and not locked:
            self.store.pin_passed(self.contact.id)
            return False
        if not locked and pin is not None and self.store.pin_failed(self.contact.id, PIN_TRIES, self.now + PIN_LOCK):
            self._record_lock(where)
            locked = True
        if locked:
            # Says only what the guesser already knows (a PIN is set, and their guesses were wrong); nothing of
            # any case, and the same whichever reference was sent.
            self.conversation.say(_("Too many wrong PINs. Please try again in one hour."))
        elif where == "STATUS":
            self.conversation.say(_("Send STATUS, your case number and your PIN, for example: STATUS K7F3-QP9M "
                                    "2580"))
        else:
            self.conversation.say(_("A PIN is 4 to 8 digits, for example: PIN 2580"))
        return True

    def _record_lock(self, where: str) -> None:
        """A lock is a case event on each of the worker's cases (someone may hold their phone), never the PIN."""
        detail = f"{PIN_TRIES} wrong PINs in a row ({where}); STATUS locked until {iso(self.now + PIN_LOCK)[:16]} UTC"
        for case in self.store.cases_of(self.contact):
            self.store.case_event(case["id"], "status_locked", "worker", detail, self.now)
        self.store.audit("worker", "status_locked", f"contact:{self.contact.id}", detail, self.now)

    # Finishing -------------------------------------------------------------------------------------

    def finish(self, reset: bool = False) -> None:
        conversation = self.conversation
        if reset:
            conversation.node = None
        if conversation.node is None:
            kept = {k: v for k, v in conversation.slots.items() if k in KEEP_AFTER_END}
            conversation.slots = kept
        if not self.send_nothing:
            rendered = render(conversation.said, self.caps, self.p.catalogs, conversation.language,
                              self.p.settings.sms_budget)
            if rendered.later:
                conversation.slots[PAGES] = rendered.later
            for page in rendered.now:
                body = {"text": page.text, "buttons": [[b.label, b.value] for b in page.buttons]}
                if self.opt_out:
                    body["opt_out_notice"] = True  # the one message an opted-out worker still gets
                if self.erased:
                    body["erase_after"] = True  # the contact's last trace goes once this is sent
                self.reply.outbound_ids.append(self.store.queue_outbound(self.contact, body, self.now))
        if self.opt_out:
            self.store.opt_out(self.contact.id, "worker", self.now)
        if not self.erased:
            self.save_session()

    def save_session(self) -> None:
        self.store.save_session(self.contact.id, self.conversation.node, self.conversation.slots, self.now)


def _first(value: object) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)

