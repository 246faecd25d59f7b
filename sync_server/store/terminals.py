"""SQL for merchants, terminals, heartbeats and the nonces terminals have used."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from sync_server.store import ledger

_HEARTBEAT = ("journal_fill", "unacked", "last_seq", "blacklist_version", "access_version",
              "offline_since", "firmware", "clock_drift")


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def add_merchant(db: Database, name: str, now: int) -> int:
    cur = db.execute("INSERT INTO merchants (name, payable_acct, held_acct, created) VALUES (?, 0, 0, ?)",
                     [name, now])
    mid = cur.lastrowid
    assert mid is not None
    db.execute("UPDATE merchants SET payable_acct = ?, held_acct = ? WHERE id = ?",
               [ledger.account(db, "merchant", mid), ledger.account(db, "merchant_held", mid), mid])
    return mid


def merchant(db: Database, ref: int | str) -> dict[str, Any] | None:
    column = "id" if isinstance(ref, int) else "name"
    rows = _rows(db.execute(f"SELECT * FROM merchants WHERE {column} = ?", [ref]))
    return rows[0] if rows else None


def merchants(db: Database) -> list[dict[str, Any]]:
    return _rows(db.execute("SELECT * FROM merchants ORDER BY id"))


def add_terminal(db: Database, tid: int | None, merchant_id: int, role: str, name: str, now: int) -> int:
    cur = db.execute("INSERT INTO terminals (id, merchant_id, role, name, created) VALUES (?, ?, ?, ?, ?)",
                     [tid, merchant_id, role, name, now])
    assert cur.lastrowid is not None
    return cur.lastrowid


def terminal(db: Database, tid: int) -> dict[str, Any] | None:
    rows = _rows(db.execute("SELECT * FROM terminals WHERE id = ?", [tid]))
    return rows[0] if rows else None


def terminals(db: Database, merchant_id: int | None = None) -> list[dict[str, Any]]:
    if merchant_id is None:
        return _rows(db.execute("SELECT * FROM terminals ORDER BY id"))
    return _rows(db.execute("SELECT * FROM terminals WHERE merchant_id = ? ORDER BY id", [merchant_id]))


def merchants_of(db: Database, tids: list[int]) -> dict[int, int]:
    """terminal id -> merchant id for the registered ones among ``tids``."""
    if not tids:
        return {}
    sql = "SELECT id, merchant_id FROM terminals WHERE id IN ({})".format(",".join("?" * len(tids)))
    return dict(db.execute(sql, tids).fetchall())


def set_terminal_status(db: Database, tid: int, status: str) -> None:
    db.execute("UPDATE terminals SET status = ? WHERE id = ?", [status, tid])


def claim_nonce(db: Database, tid: int, nonce: bytes, ts: int) -> bool:
    """Remember ``nonce`` for terminal ``tid``; False if it was used before."""
    try:
        db.execute("INSERT INTO nonces (terminal_id, nonce, ts) VALUES (?, ?, ?)", [tid, nonce, ts])
    except sqlite3.IntegrityError:
        return False
    return True


def prune_nonces(db: Database, before: int) -> int:
    return db.execute("DELETE FROM nonces WHERE ts < ?", [before]).rowcount


def save_heartbeat(db: Database, tid: int, msg: dict[str, Any], now: int) -> None:
    sets = ", ".join(f"{name} = ?" for name in _HEARTBEAT)
    db.execute(f"UPDATE terminals SET {sets}, hb_time = ?, last_seen = ? WHERE id = ?",
               [msg[name] for name in _HEARTBEAT] + [now, now, tid])


def touch(db: Database, tid: int, now: int) -> None:
    db.execute("UPDATE terminals SET last_seen = ? WHERE id = ?", [now, tid])


def holding_records(db: Database, role: str | None = None) -> list[dict[str, Any]]:
    """Terminals (of ``role``, if given) that still hold unuploaded records: a sequence gap, or
    a heartbeat that named unacked records up to a sequence not stored yet (uploads after the
    heartbeat count: a till that sent everything it reported holds nothing)."""
    return _rows(db.execute(
        "SELECT id, role, MAX(COALESCE(last_seq, 0) - acked_seq, 0) AS not_stored, max_seq - acked_seq AS gap "
        "FROM terminals WHERE status = 'active' AND ((unacked > 0 AND COALESCE(last_seq, 0) > acked_seq) "
        "OR max_seq > acked_seq) AND (? IS NULL OR role = ?)", [role, role]))
