"""Server secrets: the three master keys and the admin token, made once per database.

The terminal master derives each terminal's key (``protocol.crypto.terminal_key``); the card
and issuer masters go into provisioning bundles so terminals can derive card keys. The admin
token comes from ``CAMPUSCARD_ADMIN_TOKEN`` when set, else from the database.

Usage::

    ring = keys.KeyRing.load(db)
    ring.verifier(1001).ok(record)          # record MAC check with a cached key schedule
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from protocol import crypto, records
from sync_server import store
from sync_server.store import config as cfg

MASTER_NAMES = ("terminal_master", "card_master", "issuer_master")
TOKEN_ENV = "CAMPUSCARD_ADMIN_TOKEN"


def ensure_secrets(db: store.Database) -> None:
    """Generate the masters and the admin token if this database has none yet."""
    with store.transaction(db):
        for name in MASTER_NAMES:
            if cfg.get_secret(db, name) is None:
                cfg.put_secret(db, name, os.urandom(32))
        if cfg.get_secret(db, "admin_token") is None:
            cfg.put_secret(db, "admin_token", secrets.token_urlsafe(32).encode())


def admin_token(db: store.Database) -> str:
    env = os.environ.get(TOKEN_ENV)
    if env:
        return env
    value = cfg.get_secret(db, "admin_token")
    if value is None:
        raise RuntimeError("database has no admin token; run `campuscard server` once to initialise it")
    return value.decode()


class RecordVerifier:
    """HMAC-SHA256 over record bytes 0-55 with the pads of one key precomputed."""

    __slots__ = ("key", "inner", "outer")

    def __init__(self, key: bytes) -> None:
        self.key = key
        block = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\x00")  # RFC 2104
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def ok(self, rec: bytes) -> bool:
        """True if the 8-byte MAC at the end of ``rec`` matches (constant-time compare)."""
        inner = self.inner.copy()
        inner.update(rec[:_MAC_AT])
        outer = self.outer.copy()
        outer.update(inner.digest())
        return hmac.compare_digest(outer.digest()[:records.MAC_SIZE], rec[_MAC_AT:])


_MAC_AT = records.RECORD_SIZE - records.MAC_SIZE


class KeyRing:
    """The masters of one database and a cache of derived terminal keys."""

    def __init__(self, terminal_master: bytes, card_master: bytes, issuer_master: bytes) -> None:
        self.terminal_master = terminal_master
        self.card_master = card_master
        self.issuer_master = issuer_master
        self._verifiers: dict[int, RecordVerifier] = {}

    @classmethod
    def load(cls, db: store.Database) -> KeyRing:
        ensure_secrets(db)
        values = [cfg.get_secret(db, name) for name in MASTER_NAMES]
        return cls(*[v or b"" for v in values])

    def terminal_key(self, terminal_id: int) -> bytes:
        return self.verifier(terminal_id).key

    def verifier(self, terminal_id: int) -> RecordVerifier:
        v = self._verifiers.get(terminal_id)
        if v is None:
            v = self._verifiers[terminal_id] = RecordVerifier(
                crypto.terminal_key(self.terminal_master, terminal_id))
        return v
