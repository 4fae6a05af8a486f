"""Encryption at rest: personal fields sealed with AES-GCM, contacts found by keyed hash (HMAC).

The data key is 32 random bytes, written in base64: ``[security] data_key`` (better the environment,
``HELPLINE_SECURITY_DATA_KEY``) or a key file (``[security] key_file``, default: beside the database, made
with 0600 permissions on first start of a new database). Two subkeys are derived from it with HKDF, one to
encrypt, one to hash addresses, so the lookup column says nothing without the key; a third derivation, under
its own label, is the key's fingerprint, kept in the database so that a wrong key is refused at open.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.config import Config
from bot.store.sqlite import KeyMismatch, Store

log = logging.getLogger(__name__)

PREFIX = "v1:"
KEY_BYTES = 32
# HKDF's label for the fingerprint: an output independent of the two subkeys (other label), so the stored
# fingerprint tells one key from another and nothing else about it.
FINGERPRINT_LABEL = b"helpline key fingerprint v1"


class DataKeyError(Exception):
    """The data key is missing, malformed, or not the one the data was sealed with."""


class CryptoSealer:
    """Seals text with AES-256-GCM (a random 96-bit nonce per value); lookup keys are HMAC-SHA256.
    ``where`` says where the key came from, for messages; ``fingerprint`` identifies the key."""

    def __init__(self, data_key: bytes, where: str = "the data key"):
        if len(data_key) != KEY_BYTES:
            raise DataKeyError(f"the data key must be {KEY_BYTES} bytes (base64 of 32 random bytes)")
        derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"helpline data key v1").derive(data_key)
        self._aead = AESGCM(derived[:32])
        self._mac_key = derived[32:]
        self.where = where
        self.fingerprint = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                info=FINGERPRINT_LABEL).derive(data_key).hex()

    def seal(self, text: str) -> str:
        nonce = os.urandom(12)  # what secrets.token_bytes returns, without its Python layers
        sealed = self._aead.encrypt(nonce, text.encode("utf-8"), None)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def unseal(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            raise DataKeyError("found a value that is not sealed: was this database made without encryption?")
        raw = base64.urlsafe_b64decode(stored[len(PREFIX):])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], None).decode("utf-8")
        except InvalidTag:
            raise DataKeyError("a value does not open with this data key: wrong key for this database?") from None

    def lookup_key(self, channel: str, address: str) -> str:
        return hmac.digest(self._mac_key, f"{channel}\x00{address}".encode(), "sha256").hex()  # one C call


def new_key() -> str:
    """A new data key, as it is written in config or the key file."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DataKeyError(f"{where}: the data key is not base64") from None
    if len(key) != KEY_BYTES:
        raise DataKeyError(f"{where}: the data key must be 32 bytes (44 characters of base64), not {len(key)}")
    return key


def key_file_path(config: Config) -> Path:
    if config.security.key_file:
        return Path(config.security.key_file)
    return Path(f"{config.storage.database}.key")


def load_key(config: Config, create: bool = False) -> tuple[bytes, str]:
    """The data key and where it came from. With ``create``, a missing key file is made (0600), but only for
    a new database: one that holds data is refused (:class:`DataKeyError`), as a new key would not open it."""
    if config.security.data_key:
        return parse_key(config.security.data_key, "[security] data_key"), "config"
    path = key_file_path(config)
    if path.exists():
        _warn_if_others_can_use(path)
        return parse_key(path.read_text(encoding="ascii"), str(path)), str(path)
    database = config.storage.database
    if Store.holds_data(database):
        raise DataKeyError(
            f"the database {database} holds data sealed with a data key, and that key is not here: neither "
            f"[security] data_key nor HELPLINE_SECURITY_DATA_KEY is set, and there is no key file {path} "
            f"([security] key_file). Restore the key from where you keep it (put the file back at {path}, or "
            "set HELPLINE_SECURITY_DATA_KEY) and start again. A new key would not open this data, so none was made")
    if not create:
        raise DataKeyError(f"no data key: set [security] data_key (or HELPLINE_SECURITY_DATA_KEY) or create "
                           f"{path} by starting `helpline serve` once")
    write_key_file(path, new_key())
    return parse_key(path.read_text(encoding="ascii"), str(path)), f"{path} (new)"


# Key files already warned about: `serve` reads its key more than once (the check before it listens, then
# the bot), and one warning is enough.
_warned: set[str] = set()


def _warn_if_others_can_use(path: Path) -> None:
    """Warn (not refuse: see docs/SECURITY.md, Keys) when the key file's group or others may read or write it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and str(path) not in _warned:
        _warned.add(str(path))
        log.warning("the data key file %s can be read or written by its group or others (mode %04o): with it and "
                    "a copy of the database anyone reads every worker's data. Run `chmod 600 %s`; if someone "
                    "else may have read it, run `helpline rotate-key` (with `serve` stopped)", path, mode, path)


def write_key_file(path: Path, key: str) -> None:
    """Write a key file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def sealer_for(config: Config, create: bool = False) -> CryptoSealer:
    key, where = load_key(config, create=create)
    return CryptoSealer(key, "[security] data_key (or HELPLINE_SECURITY_DATA_KEY)" if where == "config"
                        else where.removesuffix(" (new)"))


def open_store(config: Config, sealer: CryptoSealer | None = None, *, create_key: bool = False) -> Store:
    """The database, opened with its data key (``sealer``, else the configured one) and checked against the
    key fingerprint it holds. Raises :class:`DataKeyError`, saying what to do, when the key is missing or is
    not this database's; nothing is changed then."""
    sealer = sealer or sealer_for(config, create=create_key)
    try:
        return Store(config.storage.database, sealer)
    except KeyMismatch as error:
        raise DataKeyError(_wrong_key(config, sealer, error)) from None


def _wrong_key(config: Config, sealer: CryptoSealer, error: KeyMismatch) -> str:
    message = (f"the data key in {sealer.where} is not the one the database {config.storage.database} was sealed "
               f"with ({error}). Restore the right key from where you keep it ([security] key_file, or [security] "
               "data_key / HELPLINE_SECURITY_DATA_KEY) and start again; nothing was changed")
    pending = key_file_path(config).with_name(key_file_path(config).name + ".new")
    if not config.security.data_key and error.stored and pending.exists():
        try:
            with_pending = CryptoSealer(parse_key(pending.read_text(encoding="ascii"), str(pending)))
        except (DataKeyError, OSError):
            return message
        if hmac.compare_digest(with_pending.fingerprint, error.stored):
            message += (f". {pending} holds the key the database is sealed with now (a `helpline rotate-key` "
                        f"stopped before it replaced the key file): move it to {key_file_path(config)}")
    return message


# Every sealed column, by table: what rotate-key re-encrypts.
SEALED = {
    "contacts": ("address", "name"),
    "sessions": ("slots",),
    "messages": ("body",),
    "cases": ("details",),
    "case_events": ("detail",),
}


def rotate(store, new: CryptoSealer) -> dict[str, int]:
    """Re-encrypt every sealed value and recompute every lookup key with ``new``, in one transaction.
    ``store`` is open with the old key. Returns how many rows of each table were rewritten."""
    old = store.sealer
    counts: dict[str, int] = {}
    db = store.db
    with store.transaction():
        for table, columns in SEALED.items():
            key = "contact_id" if table == "sessions" else "id"
            rows = db.execute(f"SELECT {key}, {', '.join(columns)} FROM {table}").fetchall()
            for row in rows:
                values = [None if value is None else new.seal(old.unseal(value)) for value in row[1:]]
                sets = ", ".join(f"{column} = ?" for column in columns)
                db.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?", [*values, row[0]])
            counts[table] = len(rows)
        for contact_id, channel, address in db.execute("SELECT id, channel, address FROM contacts").fetchall():
            plain = new.unseal(address)
            old_key = old.lookup_key(channel, plain)
            db.execute("UPDATE contacts SET address_key = ? WHERE id = ?", [new.lookup_key(channel, plain), contact_id])
            db.execute("UPDATE cases SET reporter_key = ? WHERE reporter_key = ?",
                       [new.lookup_key(channel, plain), old_key])
        # Provider ids of messages to workers are kept as keyed hashes, which cannot be recomputed: forget
        # them (only late delivery reports on old messages need them).
        db.execute("UPDATE messages SET provider_id = NULL WHERE direction = 'out' AND provider_id LIKE 'h:%'")
        store.set_key_fingerprint(new.fingerprint)  # with the data: the database names its key at every commit
        store.sealer = new
    return counts
