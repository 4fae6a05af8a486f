"""The database schema, as versioned migrations (sqlite-utils ``Migrations``).

Never edit a migration that has shipped: add a new one. Each runs once, in order, in a transaction; a
database made by an older version is brought to the newest schema when the bot opens it.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("helpline")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE contacts (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            address_key TEXT NOT NULL,          -- keyed hash of the address: finds a contact without plaintext
            address TEXT NOT NULL,              -- sealed
            name TEXT,                          -- sealed
            language TEXT,
            opted_out INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            UNIQUE (channel, address_key)
        );
        CREATE TABLE sessions (
            contact_id INTEGER PRIMARY KEY REFERENCES contacts(id) ON DELETE CASCADE,
            node TEXT,                          -- the node waiting for an answer; NULL when at rest
            slots TEXT NOT NULL DEFAULT '{}',   -- sealed JSON
            updated_at TEXT NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            channel TEXT NOT NULL,
            provider_id TEXT,                   -- inbound: MessageSid/update_id; outbound: set when sent
            body TEXT NOT NULL,                 -- sealed JSON: text, buttons, media
            status TEXT NOT NULL,               -- in: received; out: queued, sending, sent, delivered, failed
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (channel, direction, provider_id)
        );
        CREATE INDEX messages_contact ON messages (contact_id, id);
        CREATE TABLE outbox (
            message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
            contact_id INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT
        );
        CREATE INDEX outbox_due ON outbox (next_attempt_at);
        CREATE INDEX outbox_contact ON outbox (contact_id, message_id);
        CREATE TABLE cases (
            id INTEGER PRIMARY KEY,
            reference TEXT NOT NULL UNIQUE,
            contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
            status TEXT NOT NULL,
            urgent INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL,                 -- complaint, handoff, danger
            category TEXT,
            country TEXT,
            language TEXT,
            details TEXT NOT NULL DEFAULT '{}', -- sealed JSON: the worker's answers
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX cases_contact ON cases (contact_id);
        CREATE TABLE case_events (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT,                        -- sealed
            created_at TEXT NOT NULL
        );
        CREATE INDEX case_events_case ON case_events (case_id, id);
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT,
            detail TEXT,
            created_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_reference_history(db: Database) -> None:
    """References are never reused, even after a case is erased: keep every one ever issued."""
    db.executescript(
        """
        CREATE TABLE issued_references (reference TEXT PRIMARY KEY);
        INSERT OR IGNORE INTO issued_references (reference) SELECT reference FROM cases;
        """
    )


@migrations()
def m003_staff_handoff(db: Database) -> None:
    """Staff take cases and talk to workers through the bot; unclaimed urgent cases are escalated again."""
    db.executescript(
        """
        ALTER TABLE contacts ADD COLUMN role TEXT NOT NULL DEFAULT 'worker';  -- worker, staff (group), oncall
        ALTER TABLE cases ADD COLUMN claimed_by TEXT;
        ALTER TABLE cases ADD COLUMN claimed_at TEXT;
        ALTER TABLE cases ADD COLUMN handoff INTEGER NOT NULL DEFAULT 0;     -- 1 while a person is wanted
        ALTER TABLE cases ADD COLUMN alert_message_id INTEGER;               -- our id of the staff alert
        CREATE TABLE escalations (
            case_id INTEGER PRIMARY KEY REFERENCES cases(id) ON DELETE CASCADE,
            round INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL
        );
        CREATE INDEX escalations_due ON escalations (next_at);
        """
    )


@migrations()
def m004_anonymous_reports(db: Database) -> None:
    """An anonymous report keeps no contact, only a keyed hash of it, so STATUS works from the same phone."""
    db.executescript(
        """
        ALTER TABLE cases ADD COLUMN reporter_key TEXT;
        CREATE INDEX cases_status ON cases (status, urgent);
        """
    )


@migrations()
def m005_privacy(db: Database) -> None:
    """A worker's own PIN for case details, and the anonymous statistics that old cases are reduced to."""
    db.executescript(
        """
        ALTER TABLE contacts ADD COLUMN pin_hash TEXT;
        CREATE TABLE statistics (
            period TEXT NOT NULL,               -- YYYY-MM the case was opened
            kind TEXT NOT NULL,
            category TEXT NOT NULL DEFAULT '',
            country TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL DEFAULT '',
            urgent INTEGER NOT NULL DEFAULT 0,
            cases INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (period, kind, category, country, language, urgent)
        );
        """
    )


@migrations()
def m006_indexes_for_scale(db: Database) -> None:
    """Keep per-message and per-second work flat as the database grows (found by bench/run.py)."""
    db.executescript(
        """
        CREATE INDEX messages_held ON messages (contact_id) WHERE status = 'held';
        CREATE INDEX messages_created ON messages (created_at);
        """
    )


@migrations()
def m007_outbox_by_channel(db: Database) -> None:
    """Each channel's delivery reads its own due messages: a backlog on one (Telegram's pacing) never slows
    another's reads (found by bench/run.py)."""
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT '';
        UPDATE outbox SET channel = (SELECT channel FROM messages WHERE messages.id = outbox.message_id);
        CREATE INDEX outbox_channel_due ON outbox (channel, next_attempt_at, message_id);
        """
    )


@migrations()
def m008_outbox_heads(db: Database) -> None:
    """Only the oldest outbox message of each contact can be sent; mark it (``head``), and keep the mark in
    triggers so every insert and delete (cascades included) moves it. Reading what is due then walks one row
    per contact, never a contact's whole backlog: 1,000 staff alerts queued behind Telegram's 20 a minute
    made every read of the Telegram outbox walk all of them (found by bench/run.py)."""
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
        UPDATE outbox SET head = 1 WHERE message_id IN (SELECT MIN(message_id) FROM outbox GROUP BY contact_id);
        DROP INDEX outbox_channel_due;
        CREATE INDEX outbox_heads ON outbox (channel, next_attempt_at, message_id) WHERE head = 1;
        CREATE TRIGGER outbox_head_on_insert AFTER INSERT ON outbox
        WHEN NOT EXISTS (SELECT 1 FROM outbox WHERE contact_id = NEW.contact_id AND message_id < NEW.message_id)
        BEGIN
            UPDATE outbox SET head = 1 WHERE message_id = NEW.message_id;
        END;
        CREATE TRIGGER outbox_head_on_delete AFTER DELETE ON outbox WHEN OLD.head = 1
        BEGIN
            UPDATE outbox SET head = 1
            WHERE message_id = (SELECT MIN(message_id) FROM outbox WHERE contact_id = OLD.contact_id);
        END;
        """
    )


@migrations()
def m009_outbox_head_set_on_insert(db: Database) -> None:
    """The insert into the outbox sets ``head`` itself (``Store.queue_outbound``: head when the contact has
    nothing else waiting; message ids only grow, so that is "nothing older"), instead of a trigger that read
    the outbox and updated the new row a second time: the outbox insert was among the costliest statements of
    a message (bench/store_cost.py). The delete trigger still moves the mark along."""
    db.executescript("DROP TRIGGER outbox_head_on_insert;")


@migrations()
def m010_indexes_per_message(db: Database) -> None:
    """Two queries run for every worker message: the worker's case with a person (read in index order, no
    sort; the index holds only such cases), and how many messages the worker sent in the last minute (counted
    in an index of inbound messages by time, which holds every column the count reads, instead of reading
    every message of the worker's history: that grew with the history)."""
    db.executescript(
        """
        CREATE INDEX cases_handoff ON cases (contact_id, urgent, id) WHERE handoff = 1;
        CREATE INDEX messages_inbound ON messages (contact_id, created_at, direction) WHERE direction = 'in';
        """
    )


@migrations()
def m011_key_fingerprint(db: Database) -> None:
    """A small table of facts about the database itself; the first is the data key's fingerprint (derived
    from the key under its own label, see ``bot.security``), so a wrong or new key is refused at open
    instead of sealing new data under a key that cannot read the old."""
    db.executescript("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);")


@migrations()
def m012_outbox_in_doubt(db: Database) -> None:
    """When a send may be at the provider (``in_doubt_since``: the moment it was first read to be sent, set in
    the same trip as that read, cleared by its outcome), so that after a crash or a lost answer the bot asks the
    provider whether it took the message before sending it again (``bot.outbox``)."""
    db.executescript("ALTER TABLE outbox ADD COLUMN in_doubt_since TEXT;")


@migrations()
def m013_staff_priority_and_pages(db: Database) -> None:
    """Staff alerts are never stuck behind a queue, the simulator is no door into production, on-call phones
    are not flooded:

    - ``outbox.priority``: the staff group's messages about an urgent case go before the others waiting for
      it. The head of a contact is its highest priority, then oldest, message (a worker's messages all have
      priority 0, so theirs stays the oldest: their order is kept). Two index seeks find it: a partial index
      holds only the rows with a priority, so a worker's messages cost nothing more.
    - ``cases.simulated``: a case opened from the simulator (or ``helpline chat``), shown as such to staff,
      never paging on-call.
    - ``oncall_pages``: every page to on-call numbers (``paged``), held beyond the hourly cap (``held``, then
      ``digested``), and the digest SMS itself (``digest``), to count pages per case and per hour."""
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE cases ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
        DROP TRIGGER outbox_head_on_delete;
        CREATE INDEX outbox_priority ON outbox (contact_id, message_id) WHERE priority > 0;
        CREATE TRIGGER outbox_head_on_delete AFTER DELETE ON outbox WHEN OLD.head = 1
        BEGIN
            UPDATE outbox SET head = 1
            WHERE message_id = COALESCE(
                (SELECT MIN(message_id) FROM outbox WHERE contact_id = OLD.contact_id AND priority > 0),
                (SELECT MIN(message_id) FROM outbox WHERE contact_id = OLD.contact_id));
        END;
        CREATE TABLE oncall_pages (
            id INTEGER PRIMARY KEY,
            case_id INTEGER REFERENCES cases(id) ON DELETE SET NULL,
            reference TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,               -- paged, held, digested, digest
            created_at TEXT NOT NULL
        );
        CREATE INDEX oncall_pages_status ON oncall_pages (status, created_at);
        CREATE INDEX oncall_pages_case ON oncall_pages (case_id);
        """
    )


@migrations()
def m014_status_lock(db: Database) -> None:
    """Wrong PINs are counted per contact (the PIN is the contact's), and after too many STATUS is locked for a
    while: a phone in someone else's hands cannot try all 10,000 four-digit PINs."""
    db.executescript(
        """
        ALTER TABLE contacts ADD COLUMN pin_failures INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE contacts ADD COLUMN status_locked_until TEXT;
        """
    )
