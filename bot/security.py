"""Encryption at rest: personal fields sealed with AES-GCM, contacts found by keyed hash (HMAC).

The data key is 32 random bytes, written in base64: ``[security] data_key`` (better the environment,
``HELPLINE_SECURITY_DATA_KEY``) or a key file (``[security] key_file``, default: beside the database, made
with 0600 permissions on first start). Two subkeys are derived from it with HKDF, one to encrypt, one to
hash addresses, so the lookup column says nothing without the key.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.config import Config

PREFIX = "v1:"
KEY_BYTES = 32


class DataKeyError(Exception):
    """The data key is missing, malformed, or not the one the data was sealed with."""


class CryptoSealer:
    """Seals text with AES-256-GCM (a random 96-bit nonce per value); lookup keys are HMAC-SHA256."""

    def __init__(self, data_key: bytes):
        if len(data_key) != KEY_BYTES:
            raise DataKeyError(f"the data key must be {KEY_BYTES} bytes (base64 of 32 random bytes)")
        derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"helpline data key v1").derive(data_key)
        self._aead = AESGCM(derived[:32])
        self._mac_key = derived[32:]

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
    """The data key and where it came from. With ``create``, a missing key file is made (0600)."""
    if config.security.data_key:
        return parse_key(config.security.data_key, "[security] data_key"), "config"
    path = key_file_path(config)
    if path.exists():
        return parse_key(path.read_text(encoding="ascii"), str(path)), str(path)
    if not create:
        raise DataKeyError(f"no data key: set [security] data_key (or HELPLINE_SECURITY_DATA_KEY) or create "
                        f"{path} by starting `helpline serve` once")
    write_key_file(path, new_key())
    return parse_key(path.read_text(encoding="ascii"), str(path)), f"{path} (new)"


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
    key, _where = load_key(config, create=create)
    return CryptoSealer(key)


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
        store.sealer = new
    return counts
