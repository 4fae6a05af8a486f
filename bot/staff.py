"""Staff: alerts to the staff group, claims, live hand-off, and re-escalation of unclaimed urgent cases.

Everything here runs inside the pipeline's transaction and speaks only through the outbox, so an alert is
stored with the message that caused it and is delivered (and retried) like any other message. Texts for
staff are English and carry no phone number; texts for workers come from the catalogs, in their language.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.cases import FINAL_STATUSES, can_move, next_safe_moment
from bot.clock import Clock
from bot.flows.engine import Say
from bot.i18n import Catalogs, _
from bot.messages import CAPABILITIES, Inbound
from bot.render import render
from bot.store.sqlite import Contact, Database, Store, iso

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

MAX_QUOTE = 600
MAX_ROUNDS_DOUBLING = 4
DELAY_WARNING_MINUTES = 1  # re-escalation intervals grow 1x, 2x, 4x, 8x, 16x the claim timeout, then stay
URGENT = 1  # outbox priority of staff messages about a real urgent case: they go before the others waiting
GROUP_PER_MINUTE = 20  # Telegram: messages a minute to one group. More waiting than this come as one digest
DIGEST_LINES = 30  # cases a digest lists with a line and a Claim button; the rest by reference only
DIGEST_LINE = 110  # characters at most a line: 30 of them and the references of the rest fit one message
MAX_TEXT = 4000  # Telegram takes 4,096 characters
ONCALL_DIGEST_GATHER = timedelta(minutes=1)  # pages held beyond the hourly cap gather this long into one SMS
SIMULATED = "🧪 SIMULATED (from /simulator, not a real worker) · "


@dataclass(frozen=True, slots=True)
class StaffSettings:
    chat_id: int = 0
    oncall_numbers: tuple[str, ...] = ()
    claim_timeout_minutes: int = 10
    sms_budget: int = 3
    oncall_pages_per_case: int = 3
    oncall_pages_per_hour: int = 10

    @classmethod
    def from_config(cls, config: Config) -> StaffSettings:
        escalation = config.escalation
        return cls(escalation.telegram_chat_id, escalation.oncall_numbers, escalation.claim_timeout_minutes,
                   config.sms.segment_budget, escalation.oncall_pages_per_case, escalation.oncall_pages_per_hour)


def staff_name(inbound: Inbound) -> str:
    return f"{inbound.name or 'staff'} (telegram:{inbound.sender_id})"


class Staff:
    def __init__(self, settings: StaffSettings, catalogs: Catalogs):
        self.settings = settings
        self.catalogs = catalogs

    # Alerts ----------------------------------------------------------------------------------------

    def alert(self, store: Store, case: dict, worker: Contact, trigger: str, reason: str, now: datetime,
              why: str | None = None) -> bool:
        """Tell staff a worker needs a person; urgent cases are escalated again until someone claims them.
        Returns whether anyone was told (a message to the staff group queued, or on-call numbers paged): the
        worker is told only what is true. ``why`` is ``reason`` without the worker's words, for digests."""
        urgent = case["urgent"]
        reference = case["reference"]
        head = f"🚨 URGENT · case {reference}" if urgent else f"🙋 A worker asks for a person · case {reference}"
        text = (
            f"{SIMULATED if case.get('simulated') else ''}{head}\n"
            f"Language: {worker.language or 'not chosen'} · Channel: {worker.channel} · "
            f"Country: {case.get('country') or 'unknown'}\n"
            f"Why: {reason}\n"
            f"Message: “{_quote(trigger)}”\n"
            "Claim it, then reply to this message to write to the worker; /done (as a reply) hands them back."
        )
        buttons = [["Claim", f"claim:{case['reference']}"], ["Resolve", f"resolve:{case['reference']}"]]
        summary = f"alert: {why or reason}" if urgent else "asks for a person"
        message_id = self.to_group(store, text, case, now, buttons=buttons, urgent=urgent, why=summary)
        if message_id is not None:  # a hand-off only where staff can answer: else the worker stays with the bot
            fields: dict = {"handoff": 1}
            if not case.get("alert_message_id"):
                fields["alert_message_id"] = message_id
            store.update_case(case["id"], now, **fields)
            store.case_event(case["id"], "alerted", "bot", reason, now)
        else:
            store.case_event(case["id"], "not_alerted", "bot", "no staff group is configured", now)
        paged = False
        if urgent and not case.get("claimed_by"):
            store.schedule_escalation(case["id"], now + timedelta(minutes=self.settings.claim_timeout_minutes))
            if message_id is None:  # no staff group to alert: wake the on-call staff at once
                paged = self.page_oncall(store, case, now, "no staff group is configured")
        return message_id is not None or paged

    def to_group(self, store: Store, text: str, case: dict | None, now: datetime,
                 buttons: list | None = None, *, urgent: bool = False, why: str = "a notice") -> int | None:
        """Queue a message to the staff group, threaded under the case's alert. None without a group.

        ``urgent`` (about a real urgent case) goes before everything else waiting for the group; ``why`` is what
        a digest says of it, without the worker's words, if it waits among more than Telegram lets the group
        take in a minute."""
        if not self.settings.chat_id:
            log.error("staff alert not sent: [escalation] telegram_chat_id is not set (%s)",
                      case["reference"] if case else "-")
            return None
        group = store.contact("telegram", str(self.settings.chat_id), now, role="staff")
        body: dict = {"text": text, "buttons": buttons or [], "staff": True, "why": why}
        first = urgent and case is not None and not case.get("simulated")
        if case is not None:
            body["case"] = case["reference"]
            body["urgent"] = bool(case.get("urgent"))
            body["simulated"] = bool(case.get("simulated"))
            if case.get("alert_message_id"):
                body["reply_to_id"] = case["alert_message_id"]
        message_id = store.queue_outbound(group, body, now, priority=URGENT if first else 0)
        self._digest_if_crowded(store, group, now)
        return message_id

    # Digests: never more waiting for the group than it can take in a minute ---------------------------

    def _digest_if_crowded(self, store: Store, group: Contact, now: datetime) -> None:
        """When more messages wait for the group than Telegram lets it take in a minute, the non-urgent ones
        become one digest message (and the urgent ones too, if they alone are that many). The head is left:
        it may be in flight."""
        waiting = [(message_id, priority) for message_id, priority, head in store.waiting(group.id) if not head]
        if len(waiting) <= GROUP_PER_MINUTE:
            return
        plain = [message_id for message_id, priority in waiting if not priority]
        urgent = [message_id for message_id, priority in waiting if priority]
        for batch, priority in ((plain, 0), (urgent, URGENT)):
            if len(batch) > 1 and (priority == 0 or len(batch) > GROUP_PER_MINUTE):
                self._digest(store, group, batch, priority, now)

    def _digest(self, store: Store, group: Contact, message_ids: list[int], priority: int, now: datetime) -> None:
        """Replace these waiting messages with one listing their cases (urgent first, and why), with a Claim
        button for each; a claim posts what waited for the case (:meth:`_post_digested`)."""
        cases: dict[str, dict] = {}
        replaced = 0
        digested: dict[str, list[int]] = {}
        for message_id, body in store.take_from_outbox(message_ids, "digested", now):
            if body.get("digest"):  # an earlier digest still waiting: merged into this one
                replaced += body.get("replaced", 0)
                for entry in body["digest"]:
                    _merge(cases, entry["reference"], entry["urgent"], entry["simulated"], entry["why"])
                continue
            replaced += 1
            reference = body.get("case") or "-"
            _merge(cases, reference, bool(body.get("urgent")), bool(body.get("simulated")), {body.get("why", ""): 1})
            if body.get("case"):
                digested.setdefault(reference, []).append(message_id)
        for reference, ids in digested.items():
            case = store.case(reference)
            if case is not None:
                store.case_event(case["id"], "digested", "bot", json.dumps(ids), now)
        entries = sorted(cases.values(), key=lambda e: (e["simulated"], not e["urgent"], e["reference"] == "-"))
        text, buttons = _digest_text(entries, replaced)
        store.queue_outbound(group, {"text": text, "buttons": buttons, "staff": True, "why": "digest",
                                     "digest": entries, "replaced": replaced}, now, priority=priority)
        log.warning("staff group: %d waiting messages (%d cases) replaced by one digest", replaced, len(entries))

    def _post_digested(self, store: Store, case: dict, who: str, now: datetime) -> None:
        """A claimed case whose messages went into a digest: post them now, as one message staff can reply to
        (it becomes the case's thread)."""
        events = store.case_events(case["id"])
        since = max((i for i, e in enumerate(events) if e["kind"] == "digest_posted"), default=-1)
        ids = [i for e in events[since + 1:] if e["kind"] == "digested" for i in json.loads(e["detail"] or "[]")]
        if not ids:
            return
        texts = [body.get("text", "") for body in store.bodies(ids)]
        text = f"📌 Case {case['reference']}, taken by {who}. What waited for it in a digest:\n\n"
        text += "\n\n".join(texts)
        if len(text) > MAX_TEXT - 100:
            text = text[:MAX_TEXT - 100] + "…"
        text += "\n\nReply to this message to write to the worker; /done (as a reply) hands them back."
        stale = {**case, "alert_message_id": None}  # the alert was never posted: nothing to thread under
        message_id = self.to_group(store, text, stale, now, buttons=[["Resolve", f"resolve:{case['reference']}"]],
                                   urgent=True, why="posted for the staff member who took it")
        if message_id is not None:
            store.update_case(case["id"], now, alert_message_id=message_id)
            store.case_event(case["id"], "digest_posted", "bot", None, now)

    # On-call ---------------------------------------------------------------------------------------

    def page_oncall(self, store: Store, case: dict, now: datetime, why: str) -> bool:
        """SMS every on-call number (no case details beyond the reference: phones are not private), at most
        ``oncall_pages_per_case`` times a case and ``oncall_pages_per_hour`` times an hour; a page beyond the
        hour's cap waits for one digest SMS (:meth:`send_oncall_digest`). Simulated cases never page.
        Returns whether on-call staff are (or will be) told of the case."""
        settings = self.settings
        if not settings.oncall_numbers:
            return False
        if case.get("simulated"):
            store.case_event(case["id"], "oncall_not_paged", "bot", "a simulated case never pages on-call", now)
            return False
        if store.oncall_pages(case_id=case["id"], statuses=("paged", "held", "digested")) \
                >= settings.oncall_pages_per_case:
            store.case_event(case["id"], "oncall_not_paged", "bot",
                             f"paged {settings.oncall_pages_per_case} times already ([escalation] "
                             "oncall_pages_per_case)", now)
            return True  # they were told of this case
        if store.oncall_pages(since=now - timedelta(hours=1)) >= settings.oncall_pages_per_hour:
            store.record_oncall_page(case["id"], case["reference"], "held", now)
            store.case_event(case["id"], "oncall_held", "bot",
                             f"{settings.oncall_pages_per_hour} pages this hour already ([escalation] "
                             f"oncall_pages_per_hour): in the next digest SMS ({why})", now)
            return True
        self._sms_oncall(store, f"Helpline: urgent case {case['reference']} needs a person ({why}). "
                                f"{self._where_to_look()}", now, case["reference"])
        store.record_oncall_page(case["id"], case["reference"], "paged", now)
        store.case_event(case["id"], "oncall_paged", "bot", f"{len(settings.oncall_numbers)} number(s): {why}",
                         now)
        return True

    def send_oncall_digest(self, store: Store, now: datetime) -> int:
        """One SMS for the pages held beyond the hourly cap (gathered for a minute, at most one an hour):
        "N more urgent cases need a person", with their references. Returns 1 if it was queued."""
        held = store.held_oncall_pages()
        if not held or held[0][3] > iso(now - ONCALL_DIGEST_GATHER):
            return 0
        if store.oncall_pages(since=now - timedelta(hours=1), statuses=("digest",)):
            return 0
        store.mark_oncall_pages([page_id for page_id, *_ in held], "digested")
        references: list[str] = []
        for _id, case_id, reference, _at in held:
            case = store.case_by_id(case_id) if case_id is not None else None
            if case is None or case["claimed_by"] or case["status"] in FINAL_STATUSES or reference in references:
                continue  # taken or finished meanwhile: no longer waiting for a person
            references.append(reference)
        if not references:
            return 0
        listed = ", ".join(references[:15]) + (f" and {len(references) - 15} more" if len(references) > 15 else "")
        count = len(references)
        self._sms_oncall(store, f"Helpline: {count} more urgent case{'s' if count > 1 else ''} need"
                                f"{'' if count > 1 else 's'} a person: {listed}. {self._where_to_look()}", now)
        store.record_oncall_page(None, "", "digest", now)
        return 1

    def _sms_oncall(self, store: Store, text: str, now: datetime, reference: str | None = None) -> None:
        for number in self.settings.oncall_numbers:
            phone = store.contact("sms", number, now, role="oncall")
            body: dict = {"text": text, "buttons": [], "staff": True}
            if reference:
                body["case"] = reference
            store.queue_outbound(phone, body, now)

    def _where_to_look(self) -> str:
        if self.settings.chat_id:
            return "Please open the staff group now."
        return "Please run: helpline cases list --urgent"

    def warn_delays(self, store: Store, now: datetime) -> int:
        """Tell staff when a reply to a worker with an urgent case has waited in the outbox over a minute
        (the provider is down, or refusing): once an hour per case."""
        count = 0
        for contact_id in store.delayed_workers(now - timedelta(minutes=DELAY_WARNING_MINUTES)):
            case = store.handoff_case_for(contact_id)
            if case is None or not case["urgent"]:
                continue
            recent = [e for e in store.case_events(case["id"]) if e["kind"] == "delivery_delayed"
                      and e["created_at"] > iso(now - timedelta(hours=1))]
            if recent:
                continue
            self.to_group(store, f"⚠️ Replies to the worker of urgent case {case['reference']} have waited over "
                                 f"{DELAY_WARNING_MINUTES} minute(s): the SMS or Telegram provider may be down. "
                                 "They are retried; reach the worker another way if you can.", case, now,
                          urgent=True, why="replies to the worker are delayed")
            store.case_event(case["id"], "delivery_delayed", "bot", None, now)
            count += 1
        return count

    def run_escalations(self, store: Store, now: datetime) -> int:
        """Alert again, and page on-call staff, for every urgent case whose claim timer ran out."""
        count = 0
        for case_id, round_ in store.due_escalations(now):
            case = store.case_by_id(case_id)
            if case is None or case["claimed_by"] or case["status"] in ("resolved", "closed"):
                store.cancel_escalation(case_id)
                continue
            waited = _minutes_since(case["created_at"], now)
            self.to_group(store, f"⏰ Still not claimed after {waited} min: case {case['reference']}. "
                                 "Please claim it now.", case, now,
                          buttons=[["Claim", f"claim:{case['reference']}"]], urgent=True,
                          why=f"not claimed after {waited} min")
            self.page_oncall(store, case, now, f"not claimed after {waited} min")
            store.case_event(case_id, "reescalated", "bot", f"round {round_ + 1}", now)
            interval = self.settings.claim_timeout_minutes * 2 ** min(round_ + 1, MAX_ROUNDS_DOUBLING)
            store.schedule_escalation(case_id, now + timedelta(minutes=interval), round_ + 1)
            count += 1
        return count

    # Worker side -----------------------------------------------------------------------------------

    def relay_to_staff(self, store: Store, case: dict, worker: Contact, inbound: Inbound, now: datetime,
                       urgent: bool = False) -> None:
        """A worker's message during a hand-off, shown to staff under the case's alert."""
        text = inbound.text.strip() or "(no text)"
        if inbound.media:
            text += "\nAttachments: " + ", ".join(inbound.media)
        mark = "🚨 " if urgent else ""
        self.to_group(store, f"{mark}💬 Worker, case {case['reference']}: “{_quote(text)}”", case, now,
                      urgent=urgent or case["urgent"],
                      why="danger words from the worker" if urgent else "a message from the worker")
        store.case_event(case["id"], "relayed_to_staff", "worker", None, now)

    def say_to_worker(self, store: Store, worker: Contact, text: str, now: datetime, *, translate: bool = True,
                      not_before: datetime | None = None, **params: object) -> None:
        """Queue a message to a worker on their own channel: a catalog text in their language (``translate``)
        or a staff member's own words as they wrote them."""
        if translate:
            said = [Say(text, worker.language, dict(params))]
            rendered = render(said, CAPABILITIES[worker.channel], self.catalogs, worker.language,
                              self.settings.sms_budget)
            texts = [page.text for page in rendered.now] + rendered.later
        else:
            texts = [text]
        case = store.handoff_case_for(worker.id)
        for page in texts:
            body: dict = {"text": page, "buttons": []}
            if case is not None:
                body["case"] = case["reference"]  # if it cannot be delivered, staff are told
            store.queue_outbound(worker, body, now, not_before=not_before)

    def set_status(self, store: Store, reference: str, status: str, note: str | None, who: str,
                   now: datetime) -> str:
        """Move a case along its lifecycle; tell the worker, in their language, if they agreed to follow-up,
        and only within the hours they said are safe (queued until then). Raises ValueError if not allowed."""
        case = store.case(reference)
        if case is None:
            raise ValueError(f"no case {reference}")
        if not can_move(case["status"], status):
            raise ValueError(f"case {reference} cannot go from {case['status']} to {status}")
        with store.transaction():
            final = status in FINAL_STATUSES
            store.update_case(case["id"], now, status=status, **({"handoff": 0} if final else {}))
            if final:
                store.cancel_escalation(case["id"])
            store.case_event(case["id"], "status_changed", who, note, now)
            store.audit(who, "set_status", f"case:{reference}", f"{case['status']} -> {status}", now)
            details = case["details"]
            worker = store.contact_by_id(case["contact_id"]) if case["contact_id"] else None
            if worker is None or worker.opted_out or details.get("consent_follow_up") != "yes":
                return "the worker is not told (no consent to follow-up, anonymous, or opted out)"
            when = next_safe_moment(details.get("safe_time"), details.get("country"), now)
            if when is None:
                return "the worker is not told (they asked never to be written to)"
            # Discreet: a phone may be read by the employer, so the message itself says nothing of the case;
            # STATUS (behind the worker's PIN, if they set one) gives the status and the staff's note.
            self.say_to_worker(store, worker, _("There is news for you from the helpline. Send STATUS to see it."),
                               now, not_before=when)
        return "the worker is told now" if when == now else f"the worker is told at {iso(when)[:16]} UTC (safe hours)"

    def delivery_failed(self, store: Store, body: dict, reason: str, now: datetime) -> None:
        """A message to a worker about a case could not be delivered: the people on the case must know."""
        case = store.case(body["case"]) if body.get("case") and not body.get("staff") else None
        if case is None:
            return
        with store.transaction():
            self.to_group(store, f"⚠️ A message to the worker of case {case['reference']} could not be delivered "
                                 f"({reason}): “{_quote(body.get('text', ''))}”", case, now, urgent=case["urgent"],
                          why="a message to the worker could not be delivered")
            store.case_event(case["id"], "delivery_failed", "bot", reason, now)

    # Staff side ------------------------------------------------------------------------------------

    def handle(self, store: Store, inbound: Inbound, now: datetime) -> str | None:
        """A staff action from the staff group: a button, a reply to a case's message, or /done.
        Returns a short notice for the staff member (shown on the button press), if any."""
        who = staff_name(inbound)
        if inbound.choice:
            action, _, reference = inbound.choice.partition(":")
            if action == "claim":
                return self.claim(store, reference, who, now)
            if action == "resolve":
                return self.resolve(store, reference, who, now)
            return None
        case = store.case_for_staff_message("telegram", inbound.reply_to) if inbound.reply_to else None
        if case is None:
            return None  # group chatter, not about a case
        if inbound.text.strip().split("@")[0].lower() in ("/done", "/resolve"):
            return self.resolve(store, case["reference"], who, now)
        if not case["claimed_by"]:
            self.claim(store, case["reference"], who, now)
            case = store.case(case["reference"])
        worker = store.contact_by_id(case["contact_id"]) if case["contact_id"] else None
        if worker is None:
            self.to_group(store, f"Not sent: the worker of case {case['reference']} erased their data.", case, now,
                          why="a staff reply was not sent")
            return None
        if worker.opted_out:
            self.to_group(store, f"Not sent: the worker of case {case['reference']} has opted out (STOP) and gets "
                                 "no messages until they write START.", case, now, why="a staff reply was not sent")
            store.case_event(case["id"], "staff_reply_not_sent", who, "opted out", now)
            return None
        self.say_to_worker(store, worker, inbound.text, now, translate=False)
        store.case_event(case["id"], "staff_reply", who, inbound.text, now)
        return None

    def claim(self, store: Store, reference: str, who: str, now: datetime) -> str:
        case = store.case(reference)
        if case is None:
            return f"No case {reference}."
        if case["claimed_by"]:
            self._post_digested(store, case, case["claimed_by"], now)  # a Claim in a digest: what waited is shown
            return f"Already taken by {case['claimed_by']} at {case['claimed_at'][11:16]} UTC. Thank you."
        if case["status"] in ("resolved", "closed"):
            return f"Case {reference} is already {case['status']}."
        store.update_case(case["id"], now, claimed_by=who, claimed_at=iso(now), status="acknowledged", handoff=1)
        store.cancel_escalation(case["id"])
        store.case_event(case["id"], "claimed", who, None, now)
        self.to_group(store, f"✋ {who} took case {reference} at {iso(now)[11:16]} UTC.", case, now,
                      why=f"taken by {who}")
        self._post_digested(store, case, who, now)
        worker = store.contact_by_id(case["contact_id"]) if case["contact_id"] else None
        if worker is not None and not worker.opted_out:
            self.say_to_worker(store, worker, _("A person from the helpline is here now. You can write to them "
                                                "in this chat."), now)
        return f"You took case {reference}."

    def resolve(self, store: Store, reference: str, who: str, now: datetime) -> str:
        case = store.case(reference)
        if case is None:
            return f"No case {reference}."
        if case["status"] in ("resolved", "closed") and not case["handoff"]:
            return f"Case {reference} is already {case['status']}."
        store.update_case(case["id"], now, status="resolved", handoff=0)
        store.cancel_escalation(case["id"])
        store.case_event(case["id"], "resolved", who, None, now)
        self.to_group(store, f"✅ {who} resolved case {reference}; the worker is back with the bot.", case, now,
                      why=f"resolved by {who}")
        worker = store.contact_by_id(case["contact_id"]) if case["contact_id"] else None
        if worker is not None and not worker.opted_out:
            self.say_to_worker(store, worker, _("Our staff member has finished this conversation. Send MENU to see "
                                                "the menu, or write to us again at any time."), now)
        return f"Case {reference} resolved."


def _merge(cases: dict[str, dict], reference: str, urgent: bool, simulated: bool, why: dict[str, int]) -> None:
    entry = cases.setdefault(reference, {"reference": reference, "urgent": False, "simulated": simulated, "why": {}})
    entry["urgent"] = entry["urgent"] or urgent
    for reason, count in why.items():
        entry["why"][reason] = entry["why"].get(reason, 0) + count


def _digest_text(entries: list[dict], replaced: int) -> tuple[str, list]:
    """The digest's text (each case with why, urgent first; beyond :data:`DIGEST_LINES`, references only) and
    its Claim buttons."""
    lines = [f"📋 {replaced} messages for this group waited longer than Telegram lets a bot post here "
             f"({GROUP_PER_MINUTE} a minute), so they come as one. Cases, urgent first:"]
    buttons = []
    rest = []
    for entry in entries:
        if entry["reference"] == "-" or len(buttons) >= DIGEST_LINES:
            rest.append(entry["reference"])
            continue
        why = "; ".join(reason + (f" ×{count}" if count > 1 else "") for reason, count in entry["why"].items())
        mark = "🧪 simulated · " if entry["simulated"] else ""
        line = f"{'🚨' if entry['urgent'] else '•'} {entry['reference']} {mark}{'URGENT · ' if entry['urgent'] else ''}"
        lines.append(line + (why if len(line + why) <= DIGEST_LINE else why[:DIGEST_LINE - len(line) - 1] + "…"))
        buttons.append([f"Claim {entry['reference']}", f"claim:{entry['reference']}"])
    rest = [reference for reference in rest if reference != "-"]
    footer = ("Press Claim to take a case: what waited for it is then posted here, to reply to. "
              "Every case: helpline cases list")
    if rest:
        room = MAX_TEXT - len("\n".join(lines)) - len(footer) - 100  # (Telegram counts an emoji twice)
        shown: list[str] = []
        for reference in rest:
            if sum(len(r) + 2 for r in shown) + len(reference) > room:
                break
            shown.append(reference)
        lines.append("Also: " + ", ".join(shown) + (f" and {len(rest) - len(shown)} more" if len(shown) < len(rest)
                                                    else ""))
    lines.append(footer)
    return "\n".join(lines), buttons


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE] + "…"


def _minutes_since(stamp: str, now: datetime) -> int:
    return max(0, int((now - datetime.fromisoformat(stamp)).total_seconds() // 60))


class EscalationTimer:
    """Checks the escalation timers in the database every few seconds (they survive a restart)."""

    def __init__(self, database: Database, staff: Staff, clock: Clock, on_queued: Callable[[], None],
                 interval: float = 1.0, release_held: Callable[[Store], int] | None = None):
        self.database = database
        self.staff = staff
        self.clock = clock
        self.on_queued = on_queued
        self.interval = interval
        self.release_held = release_held
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="helpline-escalations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> int:
        """Run the timers that are due now; returns how many cases were escalated again."""
        count = await self.database.call(self._run_due, self.clock.now())
        if count:
            self.on_queued()
        return count

    def _run_due(self, store: Store, now: datetime) -> int:
        with store.transaction():
            count = self.staff.run_escalations(store, now) + self.staff.warn_delays(store, now)
            count += self.staff.send_oncall_digest(store, now)
            if self.release_held is not None:
                count += self.release_held(store)
            return count

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("escalation check failed; trying again")
            await asyncio.sleep(self.interval)
