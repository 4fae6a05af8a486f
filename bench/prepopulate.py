"""Fill a helpline database with stored conversations, with the bot's own code, before `helpline serve` starts.

Conversations are first driven through the bot's own :class:`~bot.pipeline.Pipeline` and :class:`Store`
in-process (the same flows, catalogs, data key and schema as the server): contacts, sessions, inbound and
outbound messages, cases and case events, all sealed with the data key. Replies are then marked sent with
``Store.mark_sent``, as the delivery worker would after the provider accepted them, so the outbox is empty.

That runs at about 800 messages a second on this machine, so past ``real_max`` conversations (or
``real_seconds``), the rest are *cloned* from the real ones: each clone copies a real conversation's rows with
a new address (its own keyed-hash lookup key), new provider ids and case references, and every sealed value
unsealed and sealed again with the data key (fresh nonces), so the rows, their sizes and indexes are what the
pipeline writes. ``python bench/prepopulate.py --config C --conversations N`` does it by hand.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.walks import Step, Walk, complaint, rights

TELEGRAM_BASE = 1_000_000_000


def sms_address(index: int) -> str:
    return f"+60{index:010d}"


def telegram_chat(index: int) -> int:
    return TELEGRAM_BASE + index


def address_for(channel: str, index: int) -> str:
    return sms_address(index) if channel == "sms" else str(telegram_chat(index))


def make_pipeline(config):
    """The pipeline exactly as ``bot.app.build_bot`` makes it for this config."""
    from bot.app import load_content
    from bot.clock import SystemClock, SystemRandomness
    from bot.pipeline import Pipeline, PipelineSettings
    from bot.staff import Staff, StaffSettings
    from bot.triage import Triage

    content = load_content(config)
    staff = Staff(StaffSettings(config.escalation.telegram_chat_id, config.escalation.oncall_numbers,
                                config.escalation.claim_timeout_minutes, config.sms.segment_budget), content.catalogs)
    return Pipeline(content.flows, content.catalogs, SystemClock(), SystemRandomness(),
                    PipelineSettings(config.session.idle_minutes, config.sms.segment_budget,
                                     config.security.messages_per_minute), staff=staff, triage=Triage())


def inbound_for(channel: str, index: int, provider_id: str, step: Step):
    """The Inbound the channel would make of this step (as bot/channels/*.py do)."""
    from bot.messages import Inbound

    now = datetime.now(UTC)
    if channel == "sms":
        return Inbound("sms", sms_address(index), provider_id, step.text, now)
    if step.press:
        return Inbound("telegram", str(telegram_chat(index)), provider_id, step.text, now, choice=step.text,
                       language_hint="en", name="Worker")
    return Inbound("telegram", str(telegram_chat(index)), provider_id, step.text, now, language_hint="en",
                   name="Worker")


def conversation_walk(rng: random.Random) -> Walk:
    """Stored conversations: rights lookups and complaints 3:2 (no danger cases: their escalation timers would
    fire during the benchmark)."""
    if rng.random() < 0.4:
        return complaint(rng.randint(1, 8))
    return rights(rng.randint(1, 8), rng.randint(1, 6))


def channel_for(index: int) -> str:
    return "telegram" if index % 5 == 0 else "sms"


def prepopulate(config_path: str | Path, conversations: int, *, real_max: int = 5000, real_seconds: float = 60.0,
                start_index: int = 1, seed: int = 1, log=print) -> dict:
    """Add ``conversations`` stored conversations (contacts ``start_index`` ..) to the configured database."""
    from bot.config import load_config
    from bot.security import sealer_for
    from bot.store.sqlite import Store

    config = load_config(str(config_path), environ={})
    sealer = sealer_for(config, create=True)
    store = Store(config.storage.database, sealer)
    pipeline = make_pipeline(config)
    rng = random.Random(seed + start_index)
    started = time.perf_counter()
    real = 0
    messages = 0
    index = start_index
    end = start_index + conversations
    while index < end and real < real_max and time.perf_counter() - started < real_seconds:
        batch_end = min(end, index + 25)
        with store.transaction():  # like the intake's group commit: one transaction for many messages
            for i in range(index, batch_end):
                channel = channel_for(i)
                for n, step in enumerate(conversation_walk(rng).steps):
                    with store.transaction():
                        pipeline.handle(store, inbound_for(channel, i, f"pre{i}s{n}", step))
                    messages += 1
                real += 1
            now = datetime.now(UTC)
            sent = store.db.execute("SELECT message_id FROM outbox ORDER BY message_id").fetchall()
            for (message_id,) in sent:  # what the delivery worker does once the provider took each reply
                store.mark_sent(message_id, f"SMpre{message_id:030d}", now)
        index = batch_end
    real_done = time.perf_counter() - started
    cloned = 0
    if index < end:
        cloned = _clone(store, sealer, index, end, start_index, rng, log)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    total = time.perf_counter() - started
    result = {"conversations": conversations, "real": real, "cloned": cloned, "messages_real": messages,
              "real_seconds": round(real_done, 2), "seconds": round(total, 2),
              "real_messages_per_second": round(messages / real_done, 1) if real_done else 0.0}
    log(f"  prepopulated {conversations} conversations ({real} through the pipeline at "
        f"{result['real_messages_per_second']} msg/s, {cloned} cloned) in {total:.1f} s")
    return result


def _clone(store, sealer, index: int, end: int, first_real: int, rng: random.Random, log) -> int:
    """Clones of the real conversations ``first_real`` .. ``index - 1`` for contacts ``index`` .. ``end - 1``."""
    from bot.cases import new_reference
    from bot.clock import SystemRandomness

    db: sqlite3.Connection = store.db.conn
    templates = list(range(max(first_real, index - 400), index))
    rows = {}
    for t in templates:
        channel = channel_for(t)
        key = sealer.lookup_key(channel, address_for(channel, t))
        contact = db.execute("SELECT id, channel, name, language, opted_out, created_at, last_seen_at, role "
                             "FROM contacts WHERE channel = ? AND address_key = ?", [channel, key]).fetchone()
        if contact is None:
            continue
        cid = contact[0]
        rows[t] = {
            "contact": contact,
            "session": db.execute("SELECT node, slots, updated_at FROM sessions WHERE contact_id = ?",
                                  [cid]).fetchone(),
            "messages": db.execute("SELECT direction, channel, provider_id, body, status, created_at, updated_at "
                                   "FROM messages WHERE contact_id = ? ORDER BY id", [cid]).fetchall(),
            "cases": [(case, db.execute("SELECT kind, actor, detail, created_at FROM case_events WHERE case_id = ? "
                                        "ORDER BY id", [case[0]]).fetchall())
                      for case in db.execute("SELECT id, status, urgent, kind, category, country, language, details, "
                                             "created_at, updated_at, claimed_by, claimed_at, handoff, "
                                             "alert_message_id, reporter_key FROM cases WHERE contact_id = ?",
                                             [cid]).fetchall()],
        }
    if not rows:
        raise RuntimeError("no real conversation to clone from")
    keys = list(rows)
    references = {r for (r,) in db.execute("SELECT reference FROM issued_references")}
    randomness = SystemRandomness()

    def reseal(value):
        return sealer.seal(sealer.unseal(value)) if value else value

    cloned = 0
    started = time.perf_counter()
    next_contact = (db.execute("SELECT COALESCE(MAX(id), 0) FROM contacts").fetchone()[0]) + 1
    next_message = (db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]) + 1
    next_case = (db.execute("SELECT COALESCE(MAX(id), 0) FROM cases").fetchone()[0]) + 1
    chunk = 2000
    for chunk_start in range(index, end, chunk):
        contacts, sessions, messages, cases, events, issued = [], [], [], [], [], []
        for i in range(chunk_start, min(end, chunk_start + chunk)):
            template = rows[keys[rng.randrange(len(keys))]]
            channel = template["contact"][1]
            address = address_for(channel, i)
            c = template["contact"]
            contacts.append((next_contact, channel, sealer.lookup_key(channel, address), sealer.seal(address),
                             reseal(c[2]), c[3], c[4], c[5], c[6], c[7]))
            if template["session"]:
                node, slots, updated = template["session"]
                sessions.append((next_contact, node, reseal(slots), updated))
            for n, (direction, mchannel, provider_id, body, status, created, updated) in enumerate(template["messages"]):
                if direction == "in":
                    provider_id = f"clone{i}s{n}"
                elif provider_id is not None:
                    provider_id = "h:" + sealer.lookup_key("provider", f"SMclone{next_message:029d}")
                messages.append((next_message, next_contact, direction, mchannel, provider_id, reseal(body), status,
                                 created, updated))
                next_message += 1
            for case, case_events in template["cases"]:
                reference = new_reference(randomness)
                while reference in references:
                    reference = new_reference(randomness)
                references.add(reference)
                issued.append((reference,))
                cases.append((next_case, reference, next_contact, case[1], case[2], case[3], case[4], case[5],
                              case[6], reseal(case[7]), case[8], case[9], case[10], case[11], case[12], None,
                              case[14]))
                for kind, actor, detail, created in case_events:
                    events.append((next_case, kind, actor, reseal(detail), created))
                next_case += 1
            next_contact += 1
            cloned += 1
        with db:
            db.executemany("INSERT INTO contacts (id, channel, address_key, address, name, language, opted_out, "
                           "created_at, last_seen_at, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", contacts)
            db.executemany("INSERT INTO sessions (contact_id, node, slots, updated_at) VALUES (?, ?, ?, ?)", sessions)
            db.executemany("INSERT INTO messages (id, contact_id, direction, channel, provider_id, body, status, "
                           "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", messages)
            db.executemany("INSERT INTO issued_references (reference) VALUES (?)", issued)
            db.executemany("INSERT INTO cases (id, reference, contact_id, status, urgent, kind, category, country, "
                           "language, details, created_at, updated_at, claimed_by, claimed_at, handoff, "
                           "alert_message_id, reporter_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           cases)
            db.executemany("INSERT INTO case_events (case_id, kind, actor, detail, created_at) VALUES (?, ?, ?, ?, ?)",
                           events)
    log(f"  cloned {cloned} conversations in {time.perf_counter() - started:.1f} s")
    return cloned


def database_bytes(path: str | Path) -> dict:
    """Size of the database (after a checkpoint: the file holds everything), and per table where SQLite has dbstat."""
    path = str(path)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        result = {"bytes": page_size * pages, "free_bytes": page_size * free,
                  "workers": db.execute("SELECT COUNT(*) FROM contacts WHERE role = 'worker'").fetchone()[0],
                  "messages": db.execute("SELECT COUNT(*) FROM messages").fetchone()[0],
                  "cases": db.execute("SELECT COUNT(*) FROM cases").fetchone()[0]}
        try:
            tables = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
            result["tables"] = {name: size for name, size in tables}
        except sqlite3.Error:
            pass
        return result
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the TOML config `helpline serve` will use")
    parser.add_argument("--conversations", type=int, required=True)
    parser.add_argument("--real-max", type=int, default=5000, help="at most this many through the pipeline")
    parser.add_argument("--real-seconds", type=float, default=60.0, help="at most this long through the pipeline")
    args = parser.parse_args()
    prepopulate(args.config, args.conversations, real_max=args.real_max, real_seconds=args.real_seconds)


if __name__ == "__main__":
    main()
