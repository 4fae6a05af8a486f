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
    """The pipeline exactly as the server makes it for this config (``bot.app.build_bot``; nothing is started)."""
    from bot.app import build_bot

    return build_bot(config).pipeline


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
    """Clones of the real conversations ``first_real`` .. ``index - 1`` for contacts ``index`` .. ``end - 1``: every
    column copied as the pipeline wrote it, except identities (ids, address and its lookup key, provider ids, case
    references), and every sealed column (``bot.security.SEALED``) unsealed and sealed again (fresh nonce)."""
    from bot.cases import new_reference
    from bot.clock import SystemRandomness
    from bot.security import SEALED

    db: sqlite3.Connection = store.db.conn
    db.row_factory = sqlite3.Row
    columns = {table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
               for table in ("contacts", "sessions", "messages", "cases", "case_events")}
    templates = list(range(max(first_real, index - 400), index))
    rows = {}
    for t in templates:
        channel = channel_for(t)
        key = sealer.lookup_key(channel, address_for(channel, t))
        contact = db.execute("SELECT * FROM contacts WHERE channel = ? AND address_key = ?", [channel, key]).fetchone()
        if contact is None:
            continue
        cid = contact["id"]
        cases = db.execute("SELECT * FROM cases WHERE contact_id = ?", [cid]).fetchall()
        rows[t] = {
            "contacts": contact,
            "sessions": db.execute("SELECT * FROM sessions WHERE contact_id = ?", [cid]).fetchall(),
            "messages": db.execute("SELECT * FROM messages WHERE contact_id = ? ORDER BY id", [cid]).fetchall(),
            "cases": [(case, db.execute("SELECT * FROM case_events WHERE case_id = ? ORDER BY id",
                                        [case["id"]]).fetchall()) for case in cases],
        }
    db.row_factory = None
    if not rows:
        raise RuntimeError("no real conversation to clone from")
    by_channel: dict[str, list[int]] = {}
    for t in rows:
        by_channel.setdefault(rows[t]["contacts"]["channel"], []).append(t)
    references = {r for (r,) in db.execute("SELECT reference FROM issued_references")}
    randomness = SystemRandomness()

    def copy(table: str, row: sqlite3.Row, **override) -> tuple:
        values = []
        for column in columns[table]:
            if column in override:
                values.append(override[column])
            elif column in SEALED.get(table, ()) and row[column]:
                values.append(sealer.seal(sealer.unseal(row[column])))
            else:
                values.append(row[column])
        return tuple(values)

    def insert(table: str) -> str:
        return f"INSERT INTO {table} ({', '.join(columns[table])}) VALUES ({', '.join('?' * len(columns[table]))})"

    cloned = 0
    started = time.perf_counter()
    next_contact = db.execute("SELECT COALESCE(MAX(id), 0) FROM contacts").fetchone()[0] + 1
    next_message = db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0] + 1
    next_case = db.execute("SELECT COALESCE(MAX(id), 0) FROM cases").fetchone()[0] + 1
    next_event = db.execute("SELECT COALESCE(MAX(id), 0) FROM case_events").fetchone()[0] + 1
    chunk = 2000
    for chunk_start in range(index, end, chunk):
        batch: dict[str, list] = {"contacts": [], "sessions": [], "messages": [], "cases": [], "case_events": []}
        issued = []
        for i in range(chunk_start, min(end, chunk_start + chunk)):
            channel = channel_for(i)  # the clone is on the channel its index says, as the real ones are
            same = by_channel.get(channel) or next(iter(by_channel.values()))
            template = rows[same[rng.randrange(len(same))]]
            contact = template["contacts"]
            if contact["channel"] != channel:
                raise RuntimeError(f"no real {channel} conversation to clone from")
            address = address_for(channel, i)
            batch["contacts"].append(copy("contacts", contact, id=next_contact,
                                          address_key=sealer.lookup_key(channel, address),
                                          address=sealer.seal(address)))
            for session in template["sessions"]:
                batch["sessions"].append(copy("sessions", session, contact_id=next_contact))
            for n, message in enumerate(template["messages"]):
                provider_id = message["provider_id"]
                if message["direction"] == "in":
                    provider_id = f"clone{i}s{n}"
                elif provider_id is not None:
                    provider_id = "h:" + sealer.lookup_key("provider", f"SMclone{next_message:029d}")
                batch["messages"].append(copy("messages", message, id=next_message, contact_id=next_contact,
                                              provider_id=provider_id))
                next_message += 1
            for case, case_events in template["cases"]:
                reference = new_reference(randomness)
                while reference in references:
                    reference = new_reference(randomness)
                references.add(reference)
                issued.append((reference,))
                override = {"id": next_case, "reference": reference, "contact_id": next_contact}
                if "alert_message_id" in columns["cases"]:
                    override["alert_message_id"] = None
                batch["cases"].append(copy("cases", case, **override))
                for event in case_events:
                    batch["case_events"].append(copy("case_events", event, id=next_event, case_id=next_case))
                    next_event += 1
                next_case += 1
            next_contact += 1
            cloned += 1
        with db:
            for table, values in batch.items():
                if values:
                    db.executemany(insert(table), values)
            db.executemany("INSERT INTO issued_references (reference) VALUES (?)", issued)
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
