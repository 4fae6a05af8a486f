"""SQLite storage through sqlite-utils, used from one thread so the event loop never waits on the disk.

:class:`Store` holds the connection and the queries, all synchronous; :class:`Database` runs them on its
own single thread (``await database.call(fn, ...)``). Personal fields go through a :class:`Sealer`, so they
can be encrypted at rest without changing any caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
import sqlite_utils

from bot.redact import scrub
from bot.store.schema import migrations

T = TypeVar("T")
log = logging.getLogger(__name__)
# A worker's words in a text for staff: between “ and ” (the alert's message and danger words, a relayed message,
# an undelivered reply). Greedy within a line: the words themselves may hold quotes; _quote keeps them on one.
WORKER_WORDS = re.compile(r"“[^\n]*”")
ERASED_WORDS = "“(erased at the worker's request)”"


class Sealer(Protocol):
    """Turns personal fields into what is stored, and back; gives lookup keys for addresses. ``fingerprint``
    identifies its key (None: not checked against the database)."""

    fingerprint: str | None

    def seal(self, text: str) -> str: ...

    def unseal(self, stored: str) -> str: ...

    def lookup_key(self, channel: str, address: str) -> str: ...


class KeyMismatch(Exception):
    """The database was sealed with another data key than the one it is opened with. ``stored`` is the
    fingerprint the database holds (None when it holds none yet and a sealed value did not open)."""

    def __init__(self, message: str, stored: str | None = None):
        super().__init__(message)
        self.stored = stored


# The data key's fingerprint in the ``meta`` table (migration m011); a sealer that has none (PlainSealer) is
# not checked.
KEY_FINGERPRINT = "key_fingerprint"
# Where a sealed value is found first, to check a key against a database made before fingerprints.
_SEALED_SAMPLES = (("contacts", "address"), ("cases", "details"), ("messages", "body"), ("sessions", "slots"),
                   ("case_events", "detail"))


class PlainSealer:
    """Stores personal fields as they are; lookups by SHA-256 so the lookup column holds no address."""

    fingerprint = None

    def seal(self, text: str) -> str:
        return text

    def unseal(self, stored: str) -> str:
        return stored

    def lookup_key(self, channel: str, address: str) -> str:
        return hashlib.sha256(f"{channel}\x00{address}".encode()).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """How moments are stored. Cached: a message's turn stores the same moment a dozen times. (The zone is
    part of the key: equal moments in two zones are equal datetimes, but are written differently.)"""
    return _iso(moment, moment.tzinfo)


@lru_cache(maxsize=256)
def _iso(moment: datetime, _zone: object) -> str:
    return moment.isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    channel: str
    address: str
    name: str | None
    language: str | None
    opted_out: bool
    created: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """An outbound message waiting in the outbox."""

    message_id: int
    contact_id: int
    channel: str
    address: str
    body: dict
    attempts: int
    opted_out: bool = False
    in_doubt_since: str | None = None  # a send of it may be at the provider since then (a crash, a lost answer)


class Store:
    """Every query the bot makes. Call only from the database thread (see :class:`Database`)."""

    def __init__(self, path: str | Path, sealer: Sealer | None = None):
        """Open (or make) the database and bring it to the newest schema. A sealer with a ``fingerprint``
        (the data key's) is checked against the one the database holds, before anything is migrated or
        written: a wrong key raises :class:`KeyMismatch`. A database without one yet gets it, once a sealed
        value it already holds (if any) opens with this key."""
        self.path = str(path)
        self.sealer = sealer or PlainSealer()
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        self.db = sqlite_utils.Database(conn)
        try:
            if self.path != ":memory:":
                self.db.enable_wal()
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA secure_delete = ON")  # erased data is overwritten, not left in free pages
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA busy_timeout = 5000")
            fingerprint = getattr(self.sealer, "fingerprint", None)
            recorded = self._check_key(fingerprint)
            migrations.apply(self.db)
            self._checkpoint_due = False  # an erasure was written: empty the WAL once it is committed
            if fingerprint is not None and not recorded:
                self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                                [KEY_FINGERPRINT, fingerprint])
                self._check_key(fingerprint)  # another process may have written its own meanwhile
        except BaseException:
            conn.close()
            raise

    @staticmethod
    def holds_data(path: str | Path) -> bool:
        """Whether a database at ``path`` holds helpline data: a key fingerprint or any personal field. Only
        read (a missing file is not made); a file that is not a database raises ``sqlite3.DatabaseError``."""
        if str(path) == ":memory:" or not Path(path).exists():
            return False
        conn = sqlite3.connect(str(path), timeout=5.0)
        try:
            tables = _tables(conn)
            if "meta" in tables and conn.execute("SELECT 1 FROM meta WHERE name = ?", [KEY_FINGERPRINT]).fetchone():
                return True
            return any(table in tables and conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                       for table, _column in _SEALED_SAMPLES)
        finally:
            conn.close()

    def _check_key(self, fingerprint: str | None) -> bool:
        """Raise :class:`KeyMismatch` when the sealer's key is not the database's: its fingerprint differs
        from the stored one or, with none stored yet, a sealed value does not open with it. Returns whether
        the database holds the fingerprint already."""
        if fingerprint is None:
            return False
        conn = self.db.conn
        tables = _tables(conn)
        stored = None
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", [KEY_FINGERPRINT]).fetchone()
            stored = row[0] if row else None
        if stored is not None:
            if not hmac.compare_digest(stored, fingerprint):
                raise KeyMismatch("the key fingerprint stored in the database is another key's", stored)
            return True
        for table, column in _SEALED_SAMPLES:
            if table not in tables:
                continue
            row = conn.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT 1").fetchone()
            if row is not None:
                try:
                    self.sealer.unseal(row[0])
                except Exception as error:  # whatever the sealer raises: the value does not open
                    raise KeyMismatch(f"a value stored in it does not open with this key: {error}") from None
                return False
        return False

    def set_key_fingerprint(self, fingerprint: str) -> None:
        """Record a new data key's fingerprint (``rotate-key``, inside its transaction)."""
        self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                        " SET value = excluded.value", [KEY_FINGERPRINT, fingerprint])

    def close(self) -> None:
        self.db.close()

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the live database (SQLite's online backup), safe while the bot serves.
        The copy is as encrypted as the original: keep the key apart from it."""
        destination = sqlite3.connect(str(target))
        try:
            self.db.conn.backup(destination, pages=1024)
        finally:
            destination.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction, or a savepoint inside one: all of it is stored, or none.

        Savepoints all share one name: SQLite releases or rolls back to the innermost of that name, and the
        statements stay in sqlite3's cache (sqlite-utils' ``atomic`` names each one afresh, which makes every
        savepoint a new statement to compile: there are several per message)."""
        conn = self.db.conn
        if not conn.in_transaction:
            # IMMEDIATE: the write lock is taken (waiting up to busy_timeout) before the first read. A deferred
            # transaction that reads and then writes fails at once if another connection (a CLI command beside
            # `serve`) committed in between, instead of waiting its turn.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if self._checkpoint_due:
                self._checkpoint()
            return
        conn.execute("SAVEPOINT helpline")
        try:
            yield
        except BaseException:
            if conn.in_transaction:  # an error may have ended the whole transaction already
                conn.execute("ROLLBACK TO SAVEPOINT helpline")
                conn.execute("RELEASE SAVEPOINT helpline")
            raise
        conn.execute("RELEASE SAVEPOINT helpline")

    def _checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it, so erased rows do not linger in old WAL frames
        (``secure_delete`` overwrites them in the database itself)."""
        self._checkpoint_due = False
        try:
            busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as error:
            log.warning("after an erasure, the WAL could not be emptied (%s); it is at the next checkpoint", error)
            return
        if busy:
            log.warning("after an erasure, the WAL could not be emptied (another connection reads); it is at the "
                        "next checkpoint")

    def ping(self) -> bool:
        return self.db.execute("SELECT 1").fetchone() == (1,)

    # Contacts -------------------------------------------------------------------------------------

    def contact(self, channel: str, address: str, now: datetime, name: str | None = None,
                role: str = "worker") -> Contact:
        """The contact for this address, created on first contact (a staff group or on-call phone has its
        ``role``, so it is never counted or treated as a worker)."""
        key = self.sealer.lookup_key(channel, address)
        row = self.db.execute(
            "SELECT id, name, language, opted_out, last_seen_at FROM contacts WHERE channel = ? AND address_key = ?",
            [channel, key],
        ).fetchone()
        if row is not None:
            seen = iso(now)
            if row[4][:13] != seen[:13]:  # to the hour: retention counts days, and a write per message costs
                self.db.execute("UPDATE contacts SET last_seen_at = ? WHERE id = ?", [seen, row[0]])
            stored_name = self.sealer.unseal(row[1]) if row[1] else None
            return Contact(row[0], channel, address, stored_name, row[2], bool(row[3]))
        cursor = self.db.execute(
            "INSERT INTO contacts (channel, address_key, address, name, created_at, last_seen_at, role)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [channel, key, self.sealer.seal(address), self.sealer.seal(name) if name else None, iso(now), iso(now),
             role],
        )
        return Contact(cursor.lastrowid, channel, address, name, None, False, created=True)

    def contact_by_id(self, contact_id: int) -> Contact | None:
        row = self.db.execute(
            "SELECT id, channel, address, name, language, opted_out FROM contacts WHERE id = ?", [contact_id]
        ).fetchone()
        if row is None:
            return None
        name = self.sealer.unseal(row[3]) if row[3] else None
        return Contact(row[0], row[1], self.sealer.unseal(row[2]), name, row[4], bool(row[5]))

    def update_contact(self, contact_id: int, **fields: Any) -> None:
        unknown = set(fields) - {"language", "opted_out", "role"}
        if unknown:
            raise ValueError(f"contacts fields cannot be updated: {unknown}")
        assignments = ", ".join(f"{field} = ?" for field in fields)  # names checked above; values bound
        self.db.execute(f"UPDATE contacts SET {assignments} WHERE id = ?", [*fields.values(), contact_id])

    def opt_out(self, contact_id: int, actor: str, now: datetime) -> None:
        """Nothing more is sent to this contact until they opt in again."""
        with self.transaction():
            self.update_contact(contact_id, opted_out=1)
            self.audit(actor, "opt_out", f"contact:{contact_id}", None, now)

    # Messages and the outbox ----------------------------------------------------------------------

    def store_inbound(self, contact_id: int, channel: str, provider_id: str, body: dict, now: datetime,
                      status: str = "received") -> int | None:
        """Store an inbound message; None when this provider id was stored before (a duplicate)."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO messages (contact_id, direction, channel, provider_id, body, status,"
            " created_at, updated_at) VALUES (?, 'in', ?, ?, ?, ?, ?, ?)",
            [contact_id, channel, provider_id, self._seal_json(body), status, iso(now), iso(now)],
        )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def take_held(self, contact_id: int) -> list[str]:
        """The texts of this contact's held messages, oldest first, now taken (no longer held)."""
        rows = self.db.execute(
            "SELECT id, body FROM messages WHERE contact_id = ? AND direction = 'in' AND status = 'held' ORDER BY id",
            [contact_id]).fetchall()
        for row in rows:
            self.db.execute("UPDATE messages SET status = 'received' WHERE id = ?", [row[0]])
        return [self._unseal_json(row[1]).get("text", "") for row in rows]

    def held_before(self, before: datetime) -> list[tuple[int, str]]:
        """(contact, provider id of its last held message) for every contact whose held messages are due.
        Runs every second: it must read the held messages only (index ``messages_held``; only inbound messages
        are ever held). Naming ``direction = 'in'`` here let SQLite pick ``messages_inbound`` and read every
        inbound message ever stored: 0.9 s a second with 100,000 stored conversations."""
        return self.db.execute(
            "SELECT contact_id, MAX(provider_id) FROM messages WHERE status = 'held'"
            " GROUP BY contact_id HAVING MAX(created_at) < ?", [iso(before)]).fetchall()

    def queue_outbound(self, contact: Contact, body: dict, now: datetime, not_before: datetime | None = None,
                       priority: int = 0) -> int:
        """Put a message in the outbox; the delivery worker sends it, not before ``not_before`` if given
        (a worker's safe hours). ``priority`` 1 (a staff message about an urgent case) goes before the
        contact's messages of priority 0 that wait (migration m013)."""
        cursor = self.db.execute(
            "INSERT INTO messages (contact_id, direction, channel, body, status, created_at, updated_at)"
            " VALUES (?, 'out', ?, ?, 'queued', ?, ?)",
            [contact.id, contact.channel, self._seal_json(body), iso(now), iso(now)],
        )
        when = iso(max(now, not_before) if not_before else now)
        if priority:
            return self._queue_first(contact, cursor.lastrowid, when, priority)
        self.db.execute(  # the head (sent first) when nothing else of this contact's waits (migration m009)
            "INSERT INTO outbox (message_id, contact_id, channel, next_attempt_at, head)"
            " VALUES (?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM outbox WHERE contact_id = ?))",
            [cursor.lastrowid, contact.id, contact.channel, when, contact.id],
        )
        return cursor.lastrowid

    def _queue_first(self, contact: Contact, message_id: int, when: str, priority: int) -> int:
        """Into the outbox before every message of lower priority: it becomes the head unless the head has as
        high a priority. A head it replaces may be in flight; the delivery worker sends one message of a contact
        at a time, so the new head waits for that send, and the old one (if retried) comes after it."""
        head = self.db.execute("SELECT message_id, priority FROM outbox WHERE contact_id = ? AND head = 1",
                               [contact.id]).fetchone()
        first = head is None or head[1] < priority
        if head is not None and first:
            self.db.execute("UPDATE outbox SET head = 0 WHERE message_id = ?", [head[0]])
        self.db.execute(
            "INSERT INTO outbox (message_id, contact_id, channel, next_attempt_at, head, priority)"
            " VALUES (?, ?, ?, ?, ?, ?)", [message_id, contact.id, contact.channel, when, int(first), priority])
        return message_id

    def waiting(self, contact_id: int) -> list[tuple[int, int, bool]]:
        """(message id, priority, head) of every message of this contact in the outbox, oldest first."""
        return [(row[0], row[1], bool(row[2])) for row in self.db.execute(
            "SELECT message_id, priority, head FROM outbox WHERE contact_id = ? ORDER BY message_id", [contact_id])]

    def take_from_outbox(self, message_ids: list[int], status: str, now: datetime) -> list[tuple[int, dict]]:
        """Take these messages out of the outbox unsent, marked ``status`` (``digested``: one digest message
        carries them instead); returns (id, body) of each, oldest first. Never the head: it may be in flight."""
        taken = []
        for message_id in sorted(message_ids):
            row = self.db.execute("SELECT m.body FROM outbox o JOIN messages m ON m.id = o.message_id"
                                  " WHERE o.message_id = ? AND o.head = 0", [message_id]).fetchone()
            if row is None:
                continue
            self.db.execute("DELETE FROM outbox WHERE message_id = ?", [message_id])
            self.db.execute("UPDATE messages SET status = ?, updated_at = ? WHERE id = ?",
                            [status, iso(now), message_id])
            taken.append((message_id, self._unseal_json(row[0])))
        return taken

    def message_status(self, message_id: int) -> str | None:
        row = self.db.execute("SELECT status FROM messages WHERE id = ?", [message_id]).fetchone()
        return row[0] if row else None

    def due(self, now: datetime, limit: int = 100, busy: frozenset[int] = frozenset(),
            channel: str | None = None) -> list[Pending]:
        """Outbox messages due now on ``channel`` (on any when None), at most one per contact: the oldest (the
        ``head``, kept by triggers), so each contact's order is kept. Contacts in ``busy`` (a message of theirs
        is being sent) are left out. Only heads are read, in the order of an index, so a contact's backlog
        costs nothing to skip."""
        on_channel = "o.channel = :channel AND" if channel is not None else ""
        rows = self.db.execute(
            f"""
            SELECT o.message_id, o.contact_id, m.channel, c.address, m.body, o.attempts, c.opted_out,
                   o.in_doubt_since
            FROM outbox o
            JOIN messages m ON m.id = o.message_id
            JOIN contacts c ON c.id = o.contact_id
            WHERE o.head = 1 AND {on_channel} o.next_attempt_at <= :now
              AND o.contact_id NOT IN (SELECT value FROM json_each(:busy))
            ORDER BY o.next_attempt_at, o.message_id
            LIMIT :limit
            """,
            {"channel": channel, "now": iso(now), "busy": json.dumps(sorted(busy)),
             "limit": limit},
        ).fetchall()
        pending = [
            Pending(r[0], r[1], r[2], self.sealer.unseal(r[3]), self._unseal_json(r[4]), r[5], bool(r[6]), r[7])
            for r in rows
        ]
        for item in pending:
            if item.body.get("reply_to_id"):  # threading: the provider's id of the message this one answers
                row = self.db.execute("SELECT provider_id FROM messages WHERE id = ?",
                                      [item.body["reply_to_id"]]).fetchone()
                item.body["reply_to"] = row[0] if row else None
        return pending

    def outbox_channels(self) -> dict[str, int]:
        """How many messages wait in the outbox, by channel."""
        return dict(self.db.execute("SELECT channel, COUNT(*) FROM outbox GROUP BY channel").fetchall())

    def oldest_due(self, channels: list[str]) -> dict[str, str]:
        """When the oldest message that can go next on each channel was (or will be) due, for /healthz."""
        oldest = {}
        for channel in channels:  # one index seek each (outbox_heads)
            row = self.db.execute("SELECT MIN(next_attempt_at) FROM outbox WHERE head = 1 AND channel = ?",
                                  [channel]).fetchone()
            if row[0] is not None:
                oldest[channel] = row[0]
        return oldest

    def next_due_at(self) -> str | None:
        row = self.db.execute("SELECT MIN(next_attempt_at) FROM outbox").fetchone()
        return row[0] if row else None

    def _provider_key(self, provider_id: str) -> str:
        """A provider's id for a message to a worker is kept as a keyed hash (a Telegram id is in it)."""
        return "h:" + self.sealer.lookup_key("provider", provider_id)

    def mark_sent(self, message_id: int, provider_id: str | None, now: datetime) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM outbox WHERE message_id = ?", [message_id])
            role = self.db.execute(
                "SELECT c.role FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.id = ?", [message_id]
            ).fetchone()
            if provider_id is not None and role is not None and role[0] == "worker":
                provider_id = self._provider_key(provider_id)
            self.db.execute(
                "UPDATE messages SET status = 'sent', provider_id = ?, updated_at = ? WHERE id = ?",
                [provider_id, iso(now), message_id],
            )

    def mark_in_doubt(self, message_ids: list[int], now: datetime) -> None:
        """These messages are about to be handed to their provider: until an outcome clears it, a send of each
        may be at the provider. An earlier mark is kept (a send from then may be there too)."""
        self.db.execute(
            "UPDATE outbox SET in_doubt_since = COALESCE(in_doubt_since, ?)"
            " WHERE message_id IN (SELECT value FROM json_each(?))", [iso(now), json.dumps(message_ids)])

    def mark_retry(self, message_id: int, error: str, next_attempt_at: datetime, in_doubt: bool = False) -> None:
        """Try again later. ``in_doubt``: the provider may have taken it (no answer came), so it stays in doubt
        and is looked up at the provider before it is sent again."""
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
            " in_doubt_since = CASE WHEN ? THEN in_doubt_since END WHERE message_id = ?",
            [scrub(error), iso(next_attempt_at), in_doubt, message_id],
        )

    def hold_in_doubt(self, message_id: int, reason: str, next_attempt_at: datetime) -> None:
        """Ask the provider again at ``next_attempt_at`` whether it took this message; not an attempt to send."""
        self.db.execute("UPDATE outbox SET last_error = ?, next_attempt_at = ? WHERE message_id = ?",
                        [reason, iso(next_attempt_at), message_id])

    def first_unrecorded(self, channel: str, provider_ids: list[str]) -> str | None:
        """The first of these provider ids (the provider's messages that match one in doubt) that no message of
        ours is marked with; None when each one is (the same text sent before, to the same worker)."""
        for provider_id in provider_ids:
            taken = self.db.execute(
                "SELECT 1 FROM messages WHERE channel = ? AND direction = 'out' AND provider_id IN (?, ?)",
                [channel, provider_id, self._provider_key(provider_id)]).fetchone()
            if taken is None:
                return provider_id
        return None

    def mark_failed(self, message_id: int, error: str, now: datetime) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM outbox WHERE message_id = ?", [message_id])
            self.db.execute(
                "UPDATE messages SET status = 'failed', updated_at = ? WHERE id = ?", [iso(now), message_id]
            )
            self.audit("delivery", "message_failed", str(message_id), scrub(error), now)

    def record_status(self, channel: str, provider_id: str, status: str, error: str | None) -> bool:
        """A provider's delivery report on an outbound message; a late report never moves a status back."""
        rank = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "undelivered": 3, "failed": 3}
        row = self.db.execute(
            "SELECT id, status FROM messages WHERE channel = ? AND direction = 'out' AND provider_id IN (?, ?)",
            [channel, provider_id, self._provider_key(provider_id)],
        ).fetchone()
        if row is None:
            return False
        if rank.get(status, 0) >= rank.get(row[1], 0):
            self.db.execute("UPDATE messages SET status = ?, updated_at = ? WHERE id = ?",
                            [status, iso(_utcnow()), row[0]])
        if error:
            self.audit("provider", "delivery_error", f"message:{row[0]}", scrub(f"{status} {error}"), _utcnow())
        return True

    def delayed_workers(self, before: datetime) -> list[int]:
        """Workers with a message in the outbox since before ``before``."""
        return [row[0] for row in self.db.execute(
            "SELECT DISTINCT o.contact_id FROM outbox o JOIN messages m ON m.id = o.message_id"
            " JOIN contacts c ON c.id = o.contact_id WHERE c.role = 'worker' AND m.created_at < ?", [iso(before)])]

    def backlog(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def messages_for(self, contact_id: int, after: int = 0, direction: str | None = None) -> list[dict]:
        """A contact's messages after ``after`` (by id), unsealed."""
        sql = "SELECT id, direction, body, status, created_at FROM messages WHERE contact_id = ? AND id > ?"
        params: list[Any] = [contact_id, after]
        if direction:
            sql += " AND direction = ?"
            params.append(direction)
        rows = self.db.execute(sql + " ORDER BY id", params).fetchall()
        return [
            {"id": r[0], "direction": r[1], "body": self._unseal_json(r[2]), "status": r[3], "created_at": r[4]}
            for r in rows
        ]

    def bodies(self, message_ids: list[int]) -> list[dict]:
        """The bodies of these messages, unsealed, in order."""
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        rows = self.db.execute(f"SELECT body FROM messages WHERE id IN ({marks}) ORDER BY id", message_ids)
        return [self._unseal_json(row[0]) for row in rows.fetchall()]

    # Sessions --------------------------------------------------------------------------------------

    def session(self, contact_id: int) -> tuple[str | None, dict, str] | None:
        row = self.db.execute(
            "SELECT node, slots, updated_at FROM sessions WHERE contact_id = ?", [contact_id]
        ).fetchone()
        return None if row is None else (row[0], self._unseal_json(row[1]), row[2])

    def save_session(self, contact_id: int, node: str | None, slots: dict, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO sessions (contact_id, node, slots, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (contact_id) DO UPDATE SET node = excluded.node, slots = excluded.slots,"
            " updated_at = excluded.updated_at",
            [contact_id, node, self._seal_json(slots), iso(now)],
        )

    # Cases -----------------------------------------------------------------------------------------

    def reference_taken(self, reference: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM issued_references WHERE reference = ?", [reference]
        ).fetchone() is not None

    def create_case(self, reference: str, contact_id: int | None, kind: str, urgent: bool, details: dict,
                    language: str | None, now: datetime, category: str | None = None,
                    country: str | None = None, reporter_key: str | None = None, simulated: bool = False) -> int:
        self.db.execute("INSERT INTO issued_references (reference) VALUES (?)", [reference])
        cursor = self.db.execute(
            "INSERT INTO cases (reference, contact_id, status, urgent, kind, category, country, language, details,"
            " created_at, updated_at, reporter_key, simulated) VALUES (?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [reference, contact_id, int(urgent), kind, category, country, language, self._seal_json(details),
             iso(now), iso(now), reporter_key, int(simulated)],
        )
        return cursor.lastrowid

    def cases(self, status: str | None = None, urgent: bool | None = None, limit: int = 500) -> list[dict]:
        """Cases, newest first, optionally only of one status, or only urgent ones."""
        sql, params = "SELECT * FROM cases WHERE 1 = 1", []
        if status:
            sql += " AND status = ?"
            params.append(status)
        if urgent is not None:
            sql += " AND urgent = ?"
            params.append(int(urgent))
        rows = self._query(sql + " ORDER BY urgent DESC, id DESC LIMIT ?", [*params, limit])
        return [self._case_row(row) for row in rows]

    def owns_case(self, case: dict, contact: Contact) -> bool:
        """Whether this contact made the case (also an anonymous one, by its keyed hash)."""
        if case["contact_id"] is not None:
            return case["contact_id"] == contact.id
        return bool(case.get("reporter_key")) and case["reporter_key"] == self.sealer.lookup_key(
            contact.channel, contact.address)

    def last_staff_message(self, case_id: int) -> str | None:
        row = self.db.execute(
            "SELECT detail FROM case_events WHERE case_id = ? AND kind IN ('staff_reply', 'status_changed')"
            " AND detail IS NOT NULL ORDER BY id DESC LIMIT 1", [case_id]).fetchone()
        return self.sealer.unseal(row[0]) if row else None

    def case(self, reference: str) -> dict | None:
        rows = list(self._query("SELECT * FROM cases WHERE reference = ?", [reference]))
        return self._case_row(rows[0]) if rows else None

    def open_case_for(self, contact_id: int, kind: str | None = None) -> dict | None:
        sql = "SELECT * FROM cases WHERE contact_id = ? AND status NOT IN ('resolved', 'closed')"
        params: list[Any] = [contact_id]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        rows = list(self._query(sql + " ORDER BY id DESC LIMIT 1", params))
        return self._case_row(rows[0]) if rows else None

    def update_case(self, case_id: int, now: datetime, **fields: Any) -> None:
        unknown = set(fields) - {"status", "urgent", "claimed_by", "claimed_at", "handoff", "alert_message_id"}
        if unknown:
            raise ValueError(f"case fields cannot be updated: {unknown}")
        self.db.table("cases").update(case_id, {**fields, "updated_at": iso(now)})

    def case_by_id(self, case_id: int) -> dict | None:
        rows = list(self._query("SELECT * FROM cases WHERE id = ?", [case_id]))
        return self._case_row(rows[0]) if rows else None

    def handoff_case_for(self, contact_id: int) -> dict | None:
        """The worker's case that is waiting for, or with, a person."""
        rows = list(self._query(
            "SELECT * FROM cases WHERE contact_id = ? AND handoff = 1 ORDER BY urgent DESC, id DESC LIMIT 1",
            [contact_id]))
        return self._case_row(rows[0]) if rows else None

    def case_for_staff_message(self, channel: str, provider_id: str) -> dict | None:
        """The case a staff member replied about: the one our alert or relayed message named."""
        row = self.db.execute(
            "SELECT body FROM messages WHERE channel = ? AND direction = 'out' AND provider_id = ?",
            [channel, provider_id],
        ).fetchone()
        if row is None:
            return None
        reference = self._unseal_json(row[0]).get("case")
        return self.case(reference) if reference else None

    # Escalation timers -----------------------------------------------------------------------------

    def schedule_escalation(self, case_id: int, next_at: datetime, round_: int = 0) -> None:
        self.db.execute(
            "INSERT INTO escalations (case_id, round, next_at) VALUES (?, ?, ?) ON CONFLICT (case_id) DO UPDATE"
            " SET round = excluded.round, next_at = excluded.next_at",
            [case_id, round_, iso(next_at)],
        )

    def cancel_escalation(self, case_id: int) -> None:
        self.db.execute("DELETE FROM escalations WHERE case_id = ?", [case_id])

    def due_escalations(self, now: datetime) -> list[tuple[int, int]]:
        """(case id, round) of every escalation timer that has run out."""
        return self.db.execute(
            "SELECT case_id, round FROM escalations WHERE next_at <= ? ORDER BY next_at", [iso(now)]
        ).fetchall()

    def case_event(self, case_id: int, kind: str, actor: str, detail: str | None, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO case_events (case_id, kind, actor, detail, created_at) VALUES (?, ?, ?, ?, ?)",
            [case_id, kind, actor, self.sealer.seal(detail) if detail else None, iso(now)],
        )

    def case_events(self, case_id: int) -> list[dict]:
        rows = self.db.execute(
            "SELECT kind, actor, detail, created_at FROM case_events WHERE case_id = ? ORDER BY id", [case_id]
        ).fetchall()
        return [
            {"kind": r[0], "actor": r[1], "detail": self.sealer.unseal(r[2]) if r[2] else None, "created_at": r[3]}
            for r in rows
        ]

    def _case_row(self, row: dict) -> dict:
        return {**row, "details": self._unseal_json(row["details"]), "urgent": bool(row["urgent"]),
                "simulated": bool(row.get("simulated"))}

    # On-call pages ---------------------------------------------------------------------------------

    def record_oncall_page(self, case_id: int | None, reference: str, status: str, now: datetime) -> None:
        self.db.execute("INSERT INTO oncall_pages (case_id, reference, status, created_at) VALUES (?, ?, ?, ?)",
                        [case_id, reference, status, iso(now)])

    def oncall_pages(self, *, case_id: int | None = None, since: datetime | None = None,
                     statuses: tuple[str, ...] = ("paged",)) -> int:
        """How many on-call pages (of these statuses) about one case, or since a moment."""
        sql = f"SELECT COUNT(*) FROM oncall_pages WHERE status IN ({','.join('?' * len(statuses))})"
        params: list[Any] = list(statuses)
        if case_id is not None:
            sql += " AND case_id = ?"
            params.append(case_id)
        if since is not None:
            sql += " AND created_at > ?"
            params.append(iso(since))
        return self.db.execute(sql, params).fetchone()[0]

    def held_oncall_pages(self) -> list[tuple[int, int | None, str, str]]:
        """(id, case id, reference, held at) of the pages held beyond the hourly cap, oldest first."""
        return self.db.execute("SELECT id, case_id, reference, created_at FROM oncall_pages WHERE status = 'held'"
                               " ORDER BY id").fetchall()

    def mark_oncall_pages(self, page_ids: list[int], status: str) -> None:
        self.db.execute(f"UPDATE oncall_pages SET status = ? WHERE id IN ({','.join('?' * len(page_ids))})",
                        [status, *page_ids])

    # Erasure and audit -----------------------------------------------------------------------------

    def erase_contact(self, contact_id: int, now: datetime, keep_address: bool = False) -> list[dict]:
        """Erase a worker: messages, session, name; their cases keep only category, country and dates.
        With ``keep_address`` the contact row (sealed address only) stays until a last message is sent
        (see :meth:`forget_contact`). Returns the cases that were open."""
        with self.transaction():
            row = self.db.execute("SELECT channel, address FROM contacts WHERE id = ?", [contact_id]).fetchone()
            if row is None:
                return []
            key = self.sealer.lookup_key(row[0], self.sealer.unseal(row[1]))
            cases = [self._case_row(r) for r in self._query(
                "SELECT * FROM cases WHERE contact_id = ? OR reporter_key = ?", [contact_id, key])]
            if cases:
                self._erase_staff_copies({case["reference"] for case in cases}, min(c["created_at"] for c in cases))
            self._erase_audit(contact_id)
            for case in cases:
                self.db.execute(
                    "UPDATE cases SET details = ?, contact_id = NULL, reporter_key = NULL, handoff = 0, updated_at = ?"
                    " WHERE id = ?", [self._seal_json({}), iso(now), case["id"]],
                )
                self.db.execute("UPDATE case_events SET detail = NULL WHERE case_id = ?", [case["id"]])
                self.case_event(case["id"], "erased", "worker", None, now)
            if keep_address:
                self.db.execute("DELETE FROM messages WHERE contact_id = ?", [contact_id])
                self.db.execute("DELETE FROM sessions WHERE contact_id = ?", [contact_id])
                self.db.execute("UPDATE contacts SET name = NULL WHERE id = ?", [contact_id])
            else:
                self.db.execute("DELETE FROM contacts WHERE id = ?", [contact_id])
            # Not "contact:<id>": an id is reused once its row is gone, and would name the next worker.
            self.audit("worker", "erase", None, f"a worker erased their data; {len(cases)} case(s) anonymised", now)
            self._checkpoint_due = True
        return [case for case in cases if case["status"] not in ("resolved", "closed")]

    def _erase_staff_copies(self, references: set[str], since: str) -> None:
        """The staff group's copies of an erased worker's words: in every message to staff about their cases the
        quoted words are replaced (the alert, relays, undelivered replies; queued ones go out without them),
        and staff members' replies to those messages, which reached the worker, are emptied."""
        rows = self.db.execute(
            "SELECT m.id, m.direction, m.body, m.provider_id FROM messages m JOIN contacts c ON c.id = m.contact_id"
            " WHERE c.role = 'staff' AND m.created_at >= ? ORDER BY m.id", [since]).fetchall()
        about_the_worker: set[str] = set()  # the provider's ids of our messages about their cases
        for message_id, direction, stored, provider_id in rows:
            body = self._unseal_json(stored)
            if direction == "out" and body.get("case") in references:
                body["text"] = WORKER_WORDS.sub(ERASED_WORDS, body.get("text", ""))
                if provider_id:
                    about_the_worker.add(provider_id)
            elif direction == "in" and body.get("reply_to") in about_the_worker:
                body["text"] = ""
            else:
                continue
            self.db.execute("UPDATE messages SET body = ? WHERE id = ?", [self._seal_json(body), message_id])

    def _erase_audit(self, contact_id: int) -> None:
        """Audit rows that name a worker or one of their messages (opt-outs, failed deliveries)."""
        self.db.execute(
            "DELETE FROM audit WHERE subject = ? OR subject IN (SELECT 'message:' || id FROM messages WHERE"
            " contact_id = ?) OR (action = 'message_failed' AND subject IN (SELECT CAST(id AS TEXT) FROM messages"
            " WHERE contact_id = ?))", [f"contact:{contact_id}", contact_id, contact_id])

    def set_pin(self, contact_id: int, pin: str | None) -> None:
        value = None if pin is None else self.sealer.lookup_key("pin", f"{contact_id}:{pin}")
        self.db.execute("UPDATE contacts SET pin_hash = ? WHERE id = ?", [value, contact_id])

    def pin_matches(self, contact_id: int, pin: str | None) -> bool | None:
        """None when the contact has no PIN; else whether ``pin`` is it."""
        row = self.db.execute("SELECT pin_hash FROM contacts WHERE id = ?", [contact_id]).fetchone()
        if row is None or row[0] is None:
            return None
        return pin is not None and hmac.compare_digest(row[0], self.sealer.lookup_key("pin", f"{contact_id}:{pin}"))

    def status_locked(self, contact_id: int, now: datetime) -> bool:
        """Whether too many wrong PINs locked this contact's STATUS (and PIN changes) until after ``now``."""
        row = self.db.execute("SELECT status_locked_until FROM contacts WHERE id = ?", [contact_id]).fetchone()
        return row is not None and row[0] is not None and row[0] > iso(now)

    def pin_failed(self, contact_id: int, tries: int, lock_until: datetime) -> bool:
        """Count a wrong PIN. The ``tries``-th in a row locks STATUS until ``lock_until`` and starts the count
        again; returns whether this one locked it."""
        self.db.execute("UPDATE contacts SET pin_failures = pin_failures + 1 WHERE id = ?", [contact_id])
        failures = self.db.execute("SELECT pin_failures FROM contacts WHERE id = ?", [contact_id]).fetchone()
        if failures is None or failures[0] < tries:
            return False
        self.db.execute("UPDATE contacts SET pin_failures = 0, status_locked_until = ? WHERE id = ?",
                        [iso(lock_until), contact_id])
        return True

    def pin_passed(self, contact_id: int) -> None:
        """The right PIN: the count of wrong ones starts again."""
        self.db.execute("UPDATE contacts SET pin_failures = 0 WHERE id = ? AND pin_failures > 0", [contact_id])

    def cases_of(self, contact: Contact) -> list[dict]:
        """Every case this contact made, open or finished, anonymous ones too (by their keyed hash)."""
        key = self.sealer.lookup_key(contact.channel, contact.address)
        return [self._case_row(r) for r in self._query(
            "SELECT * FROM cases WHERE contact_id = ? OR reporter_key = ? ORDER BY id", [contact.id, key])]

    def purge(self, cutoff: datetime, dry_run: bool = False) -> dict[str, int]:
        """Retention: finished cases last changed before ``cutoff`` become anonymous statistics (if the worker
        did not refuse statistics) and are deleted; older messages and sessions are deleted; contacts silent
        since then, with no open case, are deleted. References stay issued, so none is ever reused."""
        old_cases = [self._case_row(r) for r in self._query(
            "SELECT * FROM cases WHERE status IN ('resolved', 'closed') AND updated_at < ?", [iso(cutoff)])]
        counts = {
            "cases": len(old_cases),
            "messages": self.db.execute(
                "SELECT COUNT(*) FROM messages WHERE created_at < ? AND id NOT IN (SELECT message_id FROM outbox)",
                [iso(cutoff)]).fetchone()[0],
            "sessions": self.db.execute("SELECT COUNT(*) FROM sessions WHERE updated_at < ?",
                                        [iso(cutoff)]).fetchone()[0],
            "contacts": self.db.execute(
                "SELECT COUNT(*) FROM contacts WHERE last_seen_at < ? AND role = 'worker' AND id NOT IN"
                " (SELECT contact_id FROM cases WHERE contact_id IS NOT NULL AND status NOT IN ('resolved', 'closed'))",
                [iso(cutoff)]).fetchone()[0],
        }
        if dry_run:
            return counts
        with self.transaction():
            for case in old_cases:
                if case["details"].get("consent_stats") != "no":
                    self.db.execute(
                        "INSERT INTO statistics (period, kind, category, country, language, urgent, cases)"
                        " VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET cases = cases + 1",
                        [case["created_at"][:7], case["kind"], case["category"] or "", case["country"] or "",
                         case["language"] or "", int(case["urgent"])])
                self.db.execute("DELETE FROM cases WHERE id = ?", [case["id"]])
            self.db.execute("DELETE FROM messages WHERE created_at < ? AND id NOT IN (SELECT message_id FROM outbox)",
                            [iso(cutoff)])
            self.db.execute("DELETE FROM sessions WHERE updated_at < ?", [iso(cutoff)])
            self.db.execute(
                "DELETE FROM contacts WHERE last_seen_at < ? AND role = 'worker' AND id NOT IN"
                " (SELECT contact_id FROM cases WHERE contact_id IS NOT NULL AND status NOT IN ('resolved', 'closed'))",
                [iso(cutoff)])
            self.audit("retention", "purge", None, json.dumps(counts), _utcnow())
        return counts

    def statistics(self) -> list[dict]:
        return list(self._query("SELECT * FROM statistics ORDER BY period, kind, category, country"))

    def forget_contact(self, contact_id: int) -> None:
        """Remove what is left of an erased worker once their last message has gone."""
        self._erase_audit(contact_id)
        self.db.execute("DELETE FROM contacts WHERE id = ?", [contact_id])
        self._checkpoint_due = True

    def audit(self, actor: str, action: str, subject: str | None, detail: str | None, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO audit (actor, action, subject, detail, created_at) VALUES (?, ?, ?, ?, ?)",
            [actor, action, subject, detail, iso(now)],
        )

    # -----------------------------------------------------------------------------------------------

    def _query(self, sql: str, params: list | tuple = ()) -> list[dict]:
        """Rows as dicts, straight from the connection (sqlite-utils' query() wraps each read in a savepoint,
        which the hot path does not need)."""
        cursor = self.db.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _seal_json(self, value: dict) -> str:
        return self.sealer.seal(orjson.dumps(value).decode())

    def _unseal_json(self, stored: str) -> dict:
        return orjson.loads(self.sealer.unseal(stored))


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class Database:
    """Runs :class:`Store` calls on one dedicated thread, so the event loop never blocks on SQLite."""

    def __init__(self, store_factory: Callable[[], Store]):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="helpline-db")
        self._store: Store | None = None
        self._factory = store_factory

    async def open(self) -> None:
        self._store = await self._run(self._factory)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(store, *args)`` on the database thread and return its result."""
        store = self._store
        if store is None:
            raise RuntimeError("database is not open")
        return await self._run(fn, store, *args)

    async def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await self._run(store.close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
