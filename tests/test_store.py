"""The SQLite store on a real file: migrations, WAL, de-duplication, the outbox order, and erasure."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.store.schema import migrations
from bot.store.sqlite import Store

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ALL_MIGRATIONS = ["m001_initial", "m002_reference_history", "m003_staff_handoff", "m004_anonymous_reports",
                  "m005_privacy", "m006_indexes_for_scale", "m007_outbox_by_channel", "m008_outbox_heads",
                  "m009_outbox_head_set_on_insert", "m010_indexes_per_message", "m011_key_fingerprint",
                  "m012_outbox_in_doubt",
                  "m013_staff_priority_and_pages", "m014_status_lock"]


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "helpline.db"


@pytest.fixture
def store(path):
    store = Store(path)
    yield store
    store.close()


def read(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """What another process would see in the file: a separate, plain connection."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# Migrations --------------------------------------------------------------------------------------------


def test_fresh_database_ends_with_every_migration_applied(store, path):
    assert [m.name for m in migrations.applied(store.db)] == ALL_MIGRATIONS
    assert migrations.pending(store.db) == []
    assert read(path, "SELECT name FROM _sqlite_migrations WHERE migration_set = 'helpline' ORDER BY rowid") == [
        (name,) for name in ALL_MIGRATIONS
    ]


def test_fresh_database_has_every_table(store):
    assert {"contacts", "sessions", "messages", "outbox", "cases", "case_events", "audit",
            "issued_references"} <= set(store.db.table_names())


def test_opening_twice_applies_nothing_again(path):
    Store(path).close()
    store = Store(path)
    try:
        assert [m.name for m in migrations.applied(store.db)] == ALL_MIGRATIONS
    finally:
        store.close()
    assert read(path, "SELECT COUNT(*) FROM _sqlite_migrations") == [(len(ALL_MIGRATIONS),)]


def make_old_database(path: Path) -> None:
    """A database as the version before m002 left it, with a worker and a case in it."""
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m002_reference_history")
    assert [m.name for m in migrations.applied(db)] == ["m001_initial"]
    db.execute(
        "INSERT INTO contacts (id, channel, address_key, address, name, language, created_at, last_seen_at)"
        " VALUES (1, 'sms', 'key-of-old-worker', '+60111111111', 'Old Worker', 'my', ?, ?)",
        [NOW.isoformat(), NOW.isoformat()],
    )
    db.execute(
        "INSERT INTO cases (id, reference, contact_id, status, urgent, kind, category, country, language, details,"
        " created_at, updated_at) VALUES (1, 'OLD-1234', 1, 'new', 0, 'complaint', 'wages', 'MY', 'my',"
        " '{\"employer\":\"Acme\"}', ?, ?)",
        [NOW.isoformat(), NOW.isoformat()],
    )
    db.close()


def test_database_from_an_older_version_is_brought_to_the_newest_schema(path):
    make_old_database(path)

    store = Store(path)
    try:
        assert [m.name for m in migrations.applied(store.db)] == ALL_MIGRATIONS
        assert "issued_references" in store.db.table_names()
    finally:
        store.close()


def test_database_from_an_older_version_keeps_its_data(path):
    make_old_database(path)

    store = Store(path)
    try:
        case = store.case("OLD-1234")
        assert case is not None
        assert case["details"] == {"employer": "Acme"}
        assert case["contact_id"] == 1
        assert store.contact_by_id(1).name == "Old Worker"
        assert store.reference_taken("OLD-1234")
    finally:
        store.close()
    assert read(path, "SELECT reference FROM issued_references") == [("OLD-1234",)]


def test_replies_queued_before_the_outbox_knew_channels_are_still_sent_on_theirs(path):
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m007_outbox_by_channel")
    for contact, channel in ((1, "sms"), (2, "telegram")):
        db.execute("INSERT INTO contacts (id, channel, address_key, address, language, created_at, last_seen_at)"
                   " VALUES (?, ?, ?, ?, 'en', ?, ?)", [contact, channel, f"key{contact}", f"{contact}00", NOW, NOW])
        db.execute("INSERT INTO messages (id, contact_id, direction, channel, body, status, created_at, updated_at)"
                   " VALUES (?, ?, 'out', ?, '{\"text\": \"hi\"}', 'queued', ?, ?)",
                   [contact, contact, channel, NOW, NOW])
        db.execute("INSERT INTO outbox (message_id, contact_id, next_attempt_at) VALUES (?, ?, ?)",
                   [contact, contact, NOW.isoformat()])
    db.close()

    store = Store(path)
    try:
        assert store.outbox_channels() == {"sms": 1, "telegram": 1}
        assert [(p.contact_id, p.channel) for p in store.due(NOW, channel="telegram")] == [(2, "telegram")]
        assert [(p.contact_id, p.channel) for p in store.due(NOW, channel="sms")] == [(1, "sms")]
    finally:
        store.close()


def test_database_is_in_wal_mode(store, path):
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert read(path, "PRAGMA journal_mode") == [("wal",)]


def test_foreign_keys_are_enforced(store):
    assert store.db.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_writes_are_visible_to_another_connection(store, path):
    contact = store.contact("sms", "+60123456789", NOW)
    store.store_inbound(contact.id, "sms", "SM1", {"text": "hi"}, NOW)

    assert read(path, "SELECT COUNT(*) FROM messages") == [(1,)]


# Inbound de-duplication ------------------------------------------------------------------------------------


def test_store_inbound_twice_with_the_same_provider_id_returns_none_the_second_time(store):
    contact = store.contact("sms", "+60123456789", NOW)

    first = store.store_inbound(contact.id, "sms", "SM-0001", {"text": "hello"}, NOW)
    second = store.store_inbound(contact.id, "sms", "SM-0001", {"text": "hello"}, NOW + timedelta(seconds=3))

    assert isinstance(first, int)
    assert second is None
    assert [m["body"] for m in store.messages_for(contact.id)] == [{"text": "hello"}]


def test_the_same_provider_id_on_another_channel_is_not_a_duplicate(store):
    sms = store.contact("sms", "+60123456789", NOW)
    telegram = store.contact("telegram", "5550001", NOW)

    assert store.store_inbound(sms.id, "sms", "42", {"text": "a"}, NOW) is not None
    assert store.store_inbound(telegram.id, "telegram", "42", {"text": "b"}, NOW) is not None


# The outbox ------------------------------------------------------------------------------------------------


def test_due_returns_only_the_oldest_outbox_message_per_contact(store):
    ana = store.contact("sms", "+60100000001", NOW)
    budi = store.contact("sms", "+60100000002", NOW)
    a1 = store.queue_outbound(ana, {"text": "a1"}, NOW)
    a2 = store.queue_outbound(ana, {"text": "a2"}, NOW)
    b1 = store.queue_outbound(budi, {"text": "b1"}, NOW)
    a3 = store.queue_outbound(ana, {"text": "a3"}, NOW)

    due = store.due(NOW)

    assert sorted((p.contact_id, p.message_id) for p in due) == sorted([(ana.id, a1), (budi.id, b1)])
    assert {p.message_id: p.body["text"] for p in due} == {a1: "a1", b1: "b1"}
    assert {p.address for p in due} == {"+60100000001", "+60100000002"}

    sent = []
    for _ in range(3):
        (pending,) = [p for p in store.due(NOW) if p.contact_id == ana.id]
        sent.append(pending.message_id)
        store.mark_sent(pending.message_id, f"SM{pending.message_id}", NOW)
    assert sent == [a1, a2, a3]
    assert [p.contact_id for p in store.due(NOW)] == [budi.id]


def test_a_contacts_later_message_waits_while_the_oldest_is_retrying(store):
    ana = store.contact("sms", "+60100000001", NOW)
    a1 = store.queue_outbound(ana, {"text": "a1"}, NOW)
    store.queue_outbound(ana, {"text": "a2"}, NOW)

    store.mark_retry(a1, "timeout", NOW + timedelta(seconds=30))

    assert store.due(NOW) == []
    later = store.due(NOW + timedelta(seconds=30))
    assert [(p.message_id, p.attempts) for p in later] == [(a1, 1)]


def test_messages_not_yet_due_are_not_returned(store):
    ana = store.contact("sms", "+60100000001", NOW)
    store.queue_outbound(ana, {"text": "later"}, NOW + timedelta(minutes=1))

    assert store.due(NOW) == []
    assert len(store.due(NOW + timedelta(minutes=1))) == 1


def test_a_contacts_backlog_is_left_out_while_one_of_its_messages_is_being_sent(store):
    staff_group = store.contact("telegram", "-100500", NOW, role="staff")
    worker = store.contact("telegram", "42", NOW)
    first_alert = store.queue_outbound(staff_group, {"text": "alert 0"}, NOW)
    for n in range(1, 300):
        store.queue_outbound(staff_group, {"text": f"alert {n}"}, NOW)
    reply = store.queue_outbound(worker, {"text": "hello"}, NOW)

    assert [p.message_id for p in store.due(NOW, channel="telegram")] == [first_alert, reply]
    assert [p.message_id for p in store.due(NOW, busy=frozenset({staff_group.id}), channel="telegram")] == [reply]


def test_reading_what_is_due_walks_only_the_oldest_message_of_each_contact(store):
    plan = store.db.execute(
        "EXPLAIN QUERY PLAN SELECT o.message_id FROM outbox o WHERE o.head = 1 AND o.channel = 'sms'"
        " AND o.next_attempt_at <= '2026' ORDER BY o.next_attempt_at, o.message_id LIMIT 5").fetchall()
    assert any("outbox_heads" in row[-1] for row in plan), plan


def plans(store, call) -> list[str]:
    """The query plan of every statement ``call`` runs on ``store``."""
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        store.db.conn.set_trace_callback(None)
    return [" ".join(row[-1] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in statements]


def test_the_queries_of_every_message_and_every_second_read_no_more_than_they_need(store):
    worker = store.contact("sms", "+60123456789", NOW)
    for n in range(50):  # a long history: none of it may be read
        store.store_inbound(worker.id, "sms", f"SM{n}", {"text": "hi"}, NOW - timedelta(days=1))
        store.queue_outbound(worker, {"text": "hello"}, NOW - timedelta(days=1))
    store.store_inbound(worker.id, "sms", "SMnow", {"text": "hi"}, NOW)
    [handoff] = plans(store, lambda: store.handoff_case_for(worker.id))
    assert "INDEX cases_handoff" in handoff and "TEMP B-TREE" not in handoff, handoff
    # and the timer's, every second: the held messages only, never every inbound message stored
    [held] = plans(store, lambda: store.held_before(NOW))
    assert "INDEX messages_held" in held, held


OPERATIONS = st.lists(st.tuples(st.sampled_from(["queue", "sent", "failed", "erase"]), st.integers(0, 2)),
                      max_size=40)


@given(operations=OPERATIONS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_each_contacts_oldest_outbox_message_is_its_head_whatever_happens(store, operations):
    store.db.execute("DELETE FROM contacts")
    contacts = [store.contact("sms", f"+6010000000{n}", NOW) for n in range(3)]
    for operation, n in operations:
        contact = contacts[n]
        queued = [p for p in store.due(NOW, limit=10) if p.contact_id == contact.id]
        if operation == "queue":
            store.queue_outbound(contact, {"text": "hi"}, NOW)
        elif operation == "sent" and queued:
            store.mark_sent(queued[0].message_id, f"SM{queued[0].message_id}", NOW)
        elif operation == "failed" and queued:
            store.mark_failed(queued[0].message_id, "no", NOW)
        elif operation == "erase":
            store.erase_contact(contact.id, NOW, keep_address=True)
        heads = dict(store.db.execute("SELECT contact_id, message_id FROM outbox WHERE head = 1").fetchall())
        oldest = dict(store.db.execute("SELECT contact_id, MIN(message_id) FROM outbox GROUP BY contact_id"))
        assert heads == oldest
        assert store.db.execute("SELECT COUNT(*) FROM outbox WHERE head = 1").fetchone()[0] == len(oldest)


def test_an_outbox_from_before_heads_is_sent_in_order_after_the_upgrade(path):
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m008_outbox_heads")
    db.execute("INSERT INTO contacts (id, channel, address_key, address, language, created_at, last_seen_at)"
               " VALUES (1, 'sms', 'key1', '100', 'en', ?, ?)", [NOW, NOW])
    for message in (7, 8, 9):
        db.execute("INSERT INTO messages (id, contact_id, direction, channel, body, status, created_at, updated_at)"
                   " VALUES (?, 1, 'out', 'sms', '{}', 'queued', ?, ?)", [message, NOW, NOW])
        db.execute("INSERT INTO outbox (message_id, contact_id, channel, next_attempt_at) VALUES (?, 1, 'sms', ?)",
                   [message, NOW.isoformat()])
    db.close()

    store = Store(path)
    try:
        sent = []
        for _ in range(3):
            (pending,) = store.due(NOW, channel="sms")
            sent.append(pending.message_id)
            store.mark_sent(pending.message_id, None, NOW)
        assert sent == [7, 8, 9]
        assert store.due(NOW, channel="sms") == []
    finally:
        store.close()


# Contacts --------------------------------------------------------------------------------------------------


def test_contacts_address_key_holds_no_plaintext_address(store, path):
    address = "+60123456789"
    contact = store.contact("sms", address, NOW)

    ((key,),) = read(path, "SELECT address_key FROM contacts WHERE id = ?", (contact.id,))
    assert address not in key
    assert "60123456789" not in key
    assert key == hashlib.sha256(f"sms\x00{address}".encode()).hexdigest()
    assert read(path, "SELECT COUNT(*) FROM contacts WHERE address_key LIKE ?", ("%123456789%",)) == [(0,)]


def test_the_same_address_finds_the_same_contact(store):
    first = store.contact("sms", "+60123456789", NOW)
    again = store.contact("sms", "+60123456789", NOW + timedelta(minutes=1))
    other_channel = store.contact("telegram", "+60123456789", NOW)

    assert first.created and not again.created
    assert again.id == first.id
    assert other_channel.id != first.id


# Erasure ---------------------------------------------------------------------------------------------------


def test_erase_contact_removes_the_contact_messages_and_session_and_keeps_the_case_emptied(store, path):
    worker = store.contact("sms", "+60123456789", NOW, name="Siti")
    bystander = store.contact("sms", "+60100000009", NOW)
    store.store_inbound(worker.id, "sms", "SM1", {"text": "my boss took my passport"}, NOW)
    store.queue_outbound(worker, {"text": "We are sorry to hear that."}, NOW)
    store.queue_outbound(bystander, {"text": "Hello."}, NOW)
    store.save_session(worker.id, "complaint.details", {"employer": "Acme"}, NOW)
    case_id = store.create_case("ABC-1234", worker.id, "complaint", False, {"employer": "Acme", "name": "Siti"},
                                "en", NOW, category="passport", country="MY")
    store.case_event(case_id, "note", "staff", "called the employer", NOW)

    erased = store.erase_contact(worker.id, NOW + timedelta(hours=1))

    assert [case["reference"] for case in erased] == ["ABC-1234"]  # the open cases it had
    assert store.contact_by_id(worker.id) is None
    assert store.messages_for(worker.id) == []
    assert store.session(worker.id) is None
    assert read(path, "SELECT COUNT(*) FROM messages WHERE contact_id = ?", (worker.id,)) == [(0,)]
    assert read(path, "SELECT COUNT(*) FROM outbox WHERE contact_id = ?", (worker.id,)) == [(0,)]
    assert [p.contact_id for p in store.due(NOW)] == [bystander.id]

    case = store.case("ABC-1234")
    assert case is not None
    assert case["details"] == {}
    assert case["contact_id"] is None
    assert (case["kind"], case["category"], case["country"]) == ("complaint", "passport", "MY")
    assert store.reference_taken("ABC-1234")
    assert all(event["detail"] is None for event in store.case_events(case_id))
    assert [event["kind"] for event in store.case_events(case_id)][-1] == "erased"


def test_erase_contact_leaves_no_trace_of_the_address_or_name(store, path):
    worker = store.contact("sms", "+60123456789", NOW, name="Siti")
    store.store_inbound(worker.id, "sms", "SM1", {"text": "Siti here"}, NOW)
    store.create_case("ABC-1234", worker.id, "complaint", False, {"name": "Siti"}, "en", NOW)

    store.erase_contact(worker.id, NOW)
    store.close()

    conn = sqlite3.connect(path)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert "Siti" not in dump
    assert "60123456789" not in dump


def test_erase_contact_is_recorded_in_the_audit_log_without_naming_the_contact(store, path):
    worker = store.contact("sms", "+60123456789", NOW)
    store.opt_out(worker.id, "worker", NOW)

    store.erase_contact(worker.id, NOW)

    # The opt-out named the contact: gone. The erasure is recorded, naming nobody (ids are reused).
    assert read(path, "SELECT actor, action, subject FROM audit") == [("worker", "erase", None)]
