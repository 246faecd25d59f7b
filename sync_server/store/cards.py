"""SQL for cards, their chain state, lifecycle log, pending loads and the blacklist."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from protocol import uidlist
from protocol.errors import ProtocolError
from sync_server.store import ledger


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


# -- cards -------------------------------------------------------------------------------


def insert_card(db: Database, uid: bytes, card_no: str, holder_id: str, ctype: int, valid_from: int,
                valid_until: int, now: int) -> int:
    cur = db.execute(
        "INSERT INTO cards (uid, card_no, holder_id, type, valid_from, valid_until, issued, status_at, "
        "purse_acct, credit_acct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
        [uid, card_no, holder_id, ctype, valid_from, valid_until, now, now])
    cid = int(cur.lastrowid or 0)
    db.execute("UPDATE cards SET purse_acct = ?, credit_acct = ? WHERE id = ?",
               [ledger.account(db, "purse", cid), ledger.account(db, "credit", cid), cid])
    db.execute("INSERT INTO card_chain (card_id) VALUES (?)", [cid])
    return cid


def card(db: Database, *, uid: bytes | None = None, card_no: str | None = None,
         card_id: int | None = None) -> dict[str, Any] | None:
    if uid is not None:
        rows = _rows(db.execute("SELECT * FROM cards WHERE uid = ?", [uid]))
    elif card_no is not None:
        rows = _rows(db.execute("SELECT * FROM cards WHERE card_no = ?", [card_no]))
    else:
        rows = _rows(db.execute("SELECT * FROM cards WHERE id = ?", [card_id]))
    return rows[0] if rows else None


def set_status(db: Database, card_id: int, status: str, reason: str, now: int) -> None:
    db.execute("UPDATE cards SET status = ?, status_reason = ?, status_at = ? WHERE id = ?",
               [status, reason, now, card_id])


def set_replaced(db: Database, old_id: int, new_id: int, now: int) -> None:
    db.execute("UPDATE cards SET replaced_by = ?, replaced_at = ? WHERE id = ?", [new_id, now, old_id])


def replaced_into(db: Database, card_id: int) -> list[dict[str, Any]]:
    """The cards this card replaced (directly)."""
    return _rows(db.execute("SELECT * FROM cards WHERE replaced_by = ? ORDER BY id", [card_id]))


def set_transferred(db: Database, card_id: int) -> None:
    db.execute("UPDATE cards SET transferred = 1 WHERE id = ?", [card_id])


def log(db: Database, card_id: int, now: int, action: str, detail: str = "") -> None:
    db.execute("INSERT INTO card_log (card_id, at, action, detail) VALUES (?, ?, ?, ?)",
               [card_id, now, action, detail])


def card_log(db: Database, card_id: int) -> list[dict[str, Any]]:
    return _rows(db.execute("SELECT at, action, detail FROM card_log WHERE card_id = ? ORDER BY id", [card_id]))


def chain(db: Database, card_id: int) -> dict[str, Any]:
    return _rows(db.execute("SELECT * FROM card_chain WHERE card_id = ?", [card_id]))[0]


def set_chain_state(db: Database, card_id: int, state: str, since: int | None) -> None:
    db.execute("UPDATE card_chain SET state = ?, state_since = ? WHERE card_id = ?", [state, since, card_id])


def stale_pending_chains(db: Database, before: int) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT c.id, c.uid, c.card_no, ch.head_counter, ch.top_counter, ch.state_since FROM card_chain ch "
        "JOIN cards c ON c.id = ch.card_id WHERE ch.state = 'pending' AND ch.state_since < ?", [before]))


def overdue_credit(db: Database, before: int) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT c.id, c.uid, c.card_no, c.valid_until, ch.top_balance, ch.credit_since FROM card_chain ch "
        "JOIN cards c ON c.id = ch.card_id WHERE c.status = 'active' AND ch.credit_since IS NOT NULL "
        "AND ch.credit_since < ? AND ch.top_balance + (SELECT COALESCE(SUM(l.amount), 0) FROM loads l "
        "WHERE l.card_id = c.id AND l.status = 'pending') < 0", [before]))


def replaced_in_credit(db: Database, before: int) -> list[dict[str, Any]]:
    """Replaced cards whose records took them below zero before ``before`` (the ledger says
    whether that credit was repaid since)."""
    return _rows(db.execute(
        "SELECT c.* FROM cards c JOIN card_chain ch ON ch.card_id = c.id WHERE c.status = 'replaced' "
        "AND ch.credit_since IS NOT NULL AND ch.credit_since < ?", [before]))


def due_transfers(db: Database, replaced_before: int) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT c.*, ch.state AS chain_state FROM cards c JOIN card_chain ch ON ch.card_id = c.id "
        "WHERE c.status = 'replaced' AND c.transferred = 0 AND c.replaced_at <= ?", [replaced_before]))


def _uid_key_of(ref: str) -> bytes | None:
    """The 7-byte UID key of a ref written as 4- or 7-byte UID hex, else None."""
    try:
        return uidlist.uid_key(bytes.fromhex(ref))
    except (ValueError, ProtocolError):
        return None


def cards_by_refs(db: Database, refs: list[str]) -> dict[str, dict[str, Any]]:
    """Look cards up by card number or UID hex (4 or 7 bytes); the key is the ref as given.
    Batched by index (a graduating class or a building of 2,500 cards in a few queries)."""
    out: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(refs))
    for i in range(0, len(unique), 500):
        part = unique[i:i + 500]
        sql = "SELECT * FROM cards WHERE card_no IN ({})".format(",".join("?" * len(part)))
        for row in _rows(db.execute(sql, part)):
            out[row["card_no"]] = row
    by_uid = {k: ref for ref in unique if ref not in out and (k := _uid_key_of(ref)) is not None}
    keys = list(by_uid)
    for i in range(0, len(keys), 500):
        kpart = keys[i:i + 500]
        sql = "SELECT * FROM cards WHERE uid IN ({})".format(",".join("?" * len(kpart)))
        for row in _rows(db.execute(sql, kpart)):
            out[by_uid[row["uid"]]] = row
    return out


# -- pending loads ---------------------------------------------------------------------------


def add_load(db: Database, card_id: int, amount: int, kind: int, now: int, note: str,
             corrects: int | None = None) -> int:
    """Queue a load for the card with the next per-card sequence; returns the sequence.
    ``corrects``: the rid of the sale a correction gives money back for."""
    db.execute("UPDATE cards SET load_seq = load_seq + 1 WHERE id = ?", [card_id])
    seq = db.execute("SELECT load_seq FROM cards WHERE id = ?", [card_id]).fetchone()[0]
    db.execute("INSERT INTO loads (card_id, seq, amount, kind, created, note, corrects) VALUES (?, ?, ?, ?, ?, ?, ?)",
               [card_id, seq, amount, kind, now, note, corrects])
    return seq


def corrected(db: Database, rid: int) -> int:
    """Cents already given back for the sale ``rid`` by corrections not withdrawn."""
    return db.execute("SELECT COALESCE(SUM(amount), 0) FROM loads WHERE corrects = ? AND status != 'cancelled'",
                      [rid]).fetchone()[0]


def loads_of(db: Database, card_id: int) -> list[dict[str, Any]]:
    return _rows(db.execute("SELECT seq, amount, kind, status, created, collected_at, note FROM loads "
                            "WHERE card_id = ? ORDER BY seq", [card_id]))


def pending_loads_fingerprint(db: Database, first: int) -> int:
    """A number that changes whenever the ``first`` oldest pending loads terminals are sent
    change (no terminal is sent more): it reads at most ``first`` rows, however many loads
    are pending."""
    n, total = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM (SELECT l.id FROM loads l JOIN cards c ON c.id = l.card_id "
        "WHERE l.status = 'pending' AND c.status = 'active' ORDER BY l.id LIMIT ?)", [first]).fetchone()
    return (n * 2654435761 + total) & 0x7FFFFFFF


def pending_loads(db: Database, limit: int) -> list[tuple[bytes, int, int, int]]:
    """(uid, seq, amount, kind) of the ``limit`` oldest uncollected loads of cards not on the
    blacklist (oldest first, so a card's loads come in sequence order)."""
    return db.execute(
        "SELECT c.uid, l.seq, l.amount, l.kind FROM loads l JOIN cards c ON c.id = l.card_id "
        "WHERE l.status = 'pending' AND c.status = 'active' ORDER BY l.id LIMIT ?",
        [limit]).fetchall()


def in_transit(db: Database, card_id: int) -> int:
    return db.execute("SELECT COALESCE(SUM(amount), 0) FROM loads WHERE card_id = ? AND status = 'pending'",
                      [card_id]).fetchone()[0]


def pending_loads_total(db: Database) -> int:
    """Cents of every load not collected yet (what the ledger's loads-in-transit account owes)."""
    return db.execute("SELECT COALESCE(SUM(amount), 0) FROM loads WHERE status = 'pending'").fetchone()[0]


def cancel_pending_loads(db: Database, card_id: int) -> int:
    """Mark the card's uncollected loads cancelled; returns their total."""
    total = in_transit(db, card_id)
    db.execute("UPDATE loads SET status = 'cancelled' WHERE card_id = ? AND status = 'pending'", [card_id])
    return total


def loads_by_seq(db: Database, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, str]]:
    """(card id, seq) -> (amount, status) for the loads that exist among ``pairs``."""
    out = {}
    for card_id, seq in set(pairs):
        row = db.execute("SELECT amount, status FROM loads WHERE card_id = ? AND seq = ?", [card_id, seq]).fetchone()
        if row is not None:
            out[(card_id, seq)] = (row[0], row[1])
    return out


def pending_loads_of(db: Database, card_ids: list[int]) -> dict[tuple[int, int], tuple[int, str]]:
    """(card id, seq) -> (amount, 'pending') of the uncollected loads of ``card_ids``."""
    out: dict[tuple[int, int], tuple[int, str]] = {}
    for i in range(0, len(card_ids), 900):
        part = card_ids[i:i + 900]
        # "+status": look the cards up by card_id, not every pending load by status
        sql = "SELECT card_id, seq, amount FROM loads WHERE +status = 'pending' AND card_id IN ({})".format(
            ",".join("?" * len(part)))
        for card_id, seq, amount in db.execute(sql, part):
            out[(card_id, seq)] = (amount, "pending")
    return out


def oldest_pending_load(db: Database, card_id: int, amount: int) -> int | None:
    row = db.execute("SELECT seq FROM loads WHERE card_id = ? AND status = 'pending' AND amount = ? "
                     "ORDER BY seq LIMIT 1", [card_id, amount]).fetchone()
    return None if row is None else row[0]


def collect_loads(db: Database, rows: list[tuple[int, int, int, int, int]]) -> None:
    """rows: (collected_at, terminal id, terminal seq, card id, load seq)."""
    db.conn.executemany("UPDATE loads SET status = 'collected', collected_at = ?, "
                        "note = note || printf(' collected by %d#%d', ?, ?) WHERE card_id = ? AND seq = ?", rows)


# -- blacklist -------------------------------------------------------------------------------


def blacklist_version(db: Database) -> int:
    row = db.execute("SELECT MAX(version) FROM blacklist_log").fetchone()
    return row[0] or 0


def blacklist_floor(db: Database) -> int:
    """Oldest version a delta can start from (older log entries were pruned)."""
    row = db.execute("SELECT value FROM meta WHERE name = 'blacklist_floor'").fetchone()
    return 0 if row is None else row[0]


def blacklisted(db: Database, uid: bytes) -> dict[str, Any] | None:
    rows = _rows(db.execute("SELECT * FROM blacklist WHERE uid = ?", [uid]))
    return rows[0] if rows else None


def blacklist_add(db: Database, uid: bytes, card_id: int | None, reason: str, expires: int | None,
                  now: int) -> int:
    """Put ``uid`` on the list (or update its reason); returns the new list version."""
    if blacklisted(db, uid) is not None:
        db.execute("UPDATE blacklist SET reason = ? WHERE uid = ?", [reason, uid])
        return blacklist_version(db)
    version = blacklist_version(db) + 1
    db.execute("INSERT INTO blacklist_log (version, uid, added, at) VALUES (?, ?, 1, ?)", [version, uid, now])
    db.execute("INSERT INTO blacklist (uid, card_id, reason, version, added, expires) VALUES (?, ?, ?, ?, ?, ?)",
               [uid, card_id, reason, version, now, expires])
    return version


def blacklist_remove(db: Database, uid: bytes, now: int) -> int:
    if blacklisted(db, uid) is None:
        return blacklist_version(db)
    version = blacklist_version(db) + 1
    db.execute("INSERT INTO blacklist_log (version, uid, added, at) VALUES (?, ?, 0, ?)", [version, uid, now])
    db.execute("DELETE FROM blacklist WHERE uid = ?", [uid])
    return version


def blacklist_all(db: Database) -> list[dict[str, Any]]:
    return _rows(db.execute("SELECT uid, card_id, reason, version, added, expires FROM blacklist ORDER BY uid"))


def blacklist_uids(db: Database) -> list[bytes]:
    return [row[0] for row in db.execute("SELECT uid FROM blacklist ORDER BY uid")]


def blacklist_count(db: Database) -> int:
    return db.execute("SELECT COUNT(*) FROM blacklist").fetchone()[0]


def blacklist_page(db: Database, offset: int, limit: int) -> list[bytes]:
    """UID keys ``offset`` .. ``offset + limit`` of the list in ascending order."""
    return [row[0] for row in db.execute("SELECT uid FROM blacklist ORDER BY uid LIMIT ? OFFSET ?", [limit, offset])]


def blacklist_log_since(db: Database, version: int, limit: int = -1) -> list[tuple[bytes, int]]:
    """(uid, added) of the changes after ``version``, oldest first (at most ``limit``)."""
    return db.execute("SELECT uid, added FROM blacklist_log WHERE version > ? ORDER BY version LIMIT ?",
                      [version, limit]).fetchall()


def blacklist_expired(db: Database, now: int) -> list[bytes]:
    return [row[0] for row in db.execute("SELECT uid FROM blacklist WHERE expires IS NOT NULL AND expires < ?",
                                         [now])]


def prune_blacklist_log(db: Database, before: int) -> int:
    """Drop log entries older than ``before`` (keeping the newest); returns the new floor."""
    row = db.execute("SELECT MAX(version) FROM blacklist_log WHERE at < ?", [before]).fetchone()
    newest = blacklist_version(db)
    floor = min(row[0] or 0, newest - 1) if newest else 0
    if floor > blacklist_floor(db):
        db.execute("DELETE FROM blacklist_log WHERE version <= ?", [floor])
        db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('blacklist_floor', ?)", [floor])
    return blacklist_floor(db)
