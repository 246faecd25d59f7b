"""SQL of the upload path: terminal chain state, stored records, card chain state, the batch
write (records 128 rows a statement, ledger lines and chain updates in one ``executemany``
each), anomalies and gaps;
records of one card through the (uid, counter) index kept in ``cardindex``."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from sync_server import store
from sync_server.store import cardindex

INDEX_CATCH_UP_ROWS = 20000  # index the record tail once it is this long

# Bind BLOB parameters of bulk inserts as ``bytearray``: CPython's sqlite3 sends every ``bytes``
# (and None) parameter through its adapter registry, whose miss costs a failing attribute lookup
# that formats an AttributeError (about 1 us per parameter); a bytearray is bound directly.
BLOB = bytearray

_RECORD_COLUMNS = ("terminal_id, seq, uid, counter, type, flags, time, amount, balance_after, status, held, "
                   "purse, credit, posting, raw")
ROW_WIDTH = 15  # values of a record row
_INSERT_RECORD = "INSERT INTO records ({}) VALUES ({})".format(_RECORD_COLUMNS, ",".join("?" * ROW_WIDTH))
_UPDATE_CHAIN = ("UPDATE card_chain SET head_counter = ?, head_balance = ?, top_counter = ?, top_balance = ?, "
                 "state = ?, state_since = ?, credit_since = ? WHERE card_id = ?")
_CARD_STATE = ("SELECT c.uid, c.id, ch.head_counter, ch.head_balance, ch.top_counter, ch.top_balance, "
               "ch.state, ch.state_since, ch.credit_since FROM cards c JOIN card_chain ch ON ch.card_id = c.id "
               "WHERE c.uid IN (%s)")


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def terminal_chain(db: Database, tid: int) -> tuple[int, bytes | None, int]:
    """(highest contiguous seq stored, link of that record, highest seq stored)."""
    row = db.execute("SELECT acked_seq, acked_link, max_seq FROM terminals WHERE id = ?", [tid]).fetchone()
    return row[0], row[1], row[2]


def set_terminal_chain(db: Database, tid: int, acked: int, link: bytes | None, max_seq: int, now: int) -> None:
    db.execute("UPDATE terminals SET acked_seq = ?, acked_link = ?, max_seq = ?, last_seen = ? WHERE id = ?",
               [acked, link, max_seq, now, tid])


def stored_raw(db: Database, tid: int, lo: int, hi: int) -> dict[int, bytes]:
    """seq -> raw record of terminal ``tid`` for lo <= seq <= hi."""
    return dict(db.execute("SELECT seq, raw FROM records WHERE terminal_id = ? AND seq BETWEEN ? AND ?",
                           [tid, lo, hi]).fetchall())


def seqs_above(db: Database, tid: int, seq: int) -> list[int]:
    return [r[0] for r in db.execute("SELECT seq FROM records WHERE terminal_id = ? AND seq > ? ORDER BY seq",
                                     [tid, seq])]


def card_states(db: Database, uids: Sequence[bytes]) -> dict[bytes, list[Any]]:
    """uid -> [card id, head counter, head balance, top counter, top balance, state,
    state since, credit since] for the issued cards among ``uids``."""
    out: dict[bytes, list[Any]] = {}
    for i in range(0, len(uids), 900):
        part = list(map(BLOB, uids[i:i + 900]))
        for row in db.execute(_CARD_STATE % ",".join("?" * len(part)), part):
            out[row[0]] = list(row[1:])
    return out


def card_records(db: Database, uid: bytes, counter: int | None = None, min_counter: int | None = None,
                 statuses: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Stored records of one card (all, one counter, or above ``min_counter``), by counter.

    Indexed rows are found through ``cardindex``; the tail past its watermark is scanned.
    """
    mark, rids = cardindex.lookup(db, uid, counter, min_counter)
    where, args = "", []
    if counter is not None:
        where, args = " AND counter = ?", [counter]
    elif min_counter is not None:
        where, args = " AND counter > ?", [min_counter]
    only = "" if statuses is None else " AND status IN ({})".format(",".join(str(int(s)) for s in statuses))
    cols = "rid, terminal_id, seq, counter, type, flags, time, amount, balance_after, status, held, raw"
    sql = (f"SELECT {cols} FROM records WHERE rid IN (SELECT value FROM json_each(?)) AND uid = ?{only} "
           f"UNION ALL SELECT {cols} FROM records WHERE rid > ? AND uid = ?{where}{only} ORDER BY counter, rid")
    return _rows(db.execute(sql, [json.dumps(rids), uid, mark, uid] + args))


def recent_records(db: Database, uid: bytes, limit: int) -> list[dict[str, Any]]:
    rows = card_records(db, uid)
    return rows[-limit:]


def index_lag(db: Database) -> int:
    """Records not yet in the card index."""
    return max_rid(db) - cardindex.watermark(db)


def catch_up_index(db: Database, min_rows: int = INDEX_CATCH_UP_ROWS) -> int:
    """Index the record tail if it holds at least ``min_rows`` rows; returns rows indexed.

    Only committed records are indexed (the index is another file, written by its own
    connection): call it outside a transaction that stores records.
    """
    return cardindex.catch_up(db, min_rows)


@functools.cache  # the same string object: its hash is kept
def _insert_records(n: int) -> str:
    return f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES {store.values(n, ROW_WIDTH)}"


def write_batch(db: Database, flat: list[Any], status_updates: list[tuple[int, int]],
                batch: tuple[int, int, int, int, int]) -> None:
    """Store one upload: the batch row, the record rows (``flat``: their ``ROW_WIDTH`` values
    each, end to end, as ``insert_records`` takes them) and re-linked records."""
    db.execute("INSERT INTO batches (terminal_id, received, count, stored, rejected) VALUES (?, ?, ?, ?, ?)", batch)
    store.bulk(db, _insert_records, flat, ROW_WIDTH)
    if status_updates:
        db.conn.executemany("UPDATE records SET status = ? WHERE rid = ?", status_updates)


def update_chains(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """rows: (head, head balance, top, top balance, state, since, credit since, card id)."""
    if rows:
        db.conn.executemany(_UPDATE_CHAIN, rows)


def max_rid(db: Database) -> int:
    return db.execute("SELECT COALESCE(MAX(rid), 0) FROM records").fetchone()[0]


def records_after(db: Database, rid: int) -> dict[bytes, int]:
    """uid -> number of records stored after record ``rid``."""
    return dict(db.execute("SELECT uid, COUNT(*) FROM records WHERE rid > ? GROUP BY uid", [rid]).fetchall())


def insert_records(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """Just the record rows (no batch, ledger or chain): the raw rate the benchmark compares with.

    Row: terminal id, seq, uid, counter, type, flags, time, amount, balance after, status, held,
    purse, credit, posting, raw; uid and raw as ``BLOB`` (bytes work too, slower).
    """
    db.conn.executemany(_INSERT_RECORD, rows)


def status_counts(db: Database) -> dict[int, int]:
    return dict(db.execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall())


def record_rows(db: Database, tid: int, seqs: list[int]) -> list[dict[str, Any]]:
    if not seqs:
        return []
    return _rows(db.execute("SELECT * FROM records WHERE terminal_id = ? AND seq IN ({}) ORDER BY "
                            "seq".format(",".join("?" * len(seqs))), [tid] + seqs))


def count_records(db: Database) -> int:
    return db.execute("SELECT COUNT(*) FROM records").fetchone()[0]


# -- anomalies and sequence gaps ------------------------------------------------------------------


def add_anomalies(db: Database, rows: list[tuple[int, str, int | None, int | None, bytes | None, str]]) -> None:
    """rows: (at, kind, terminal id, seq, uid, detail)."""
    if rows:
        db.conn.executemany("INSERT INTO anomalies (at, kind, terminal_id, seq, uid, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       rows)


def add_anomaly_once(db: Database, at: int, kind: str, uid: bytes, detail: str) -> None:
    """An anomaly about card ``uid``, unless one of ``kind`` is open for it already (a sweep
    that finds the same thing every 30 s says it once)."""
    if db.execute("SELECT 1 FROM anomalies WHERE kind = ? AND uid = ? AND status = 'open' LIMIT 1",
                  [kind, uid]).fetchone() is None:
        add_anomalies(db, [(at, kind, None, None, uid, detail)])


def resolve_anomalies(db: Database, kind: str, now: int, terminal_id: int | None = None,
                      seq: int | None = None, uid: bytes | None = None) -> int:
    cond, args = ["kind = ?", "status = 'open'"], [kind]
    for column, value in (("terminal_id", terminal_id), ("seq", seq), ("uid", uid)):
        if value is not None:
            cond.append(f"{column} = ?")
            args.append(value)
    return db.execute("UPDATE anomalies SET status = 'resolved', resolved_at = ? WHERE " + " AND ".join(cond),
                      [now] + args).rowcount


def anomalies(db: Database, status: str | None = "open", kind: str | None = None,
              limit: int = 200) -> list[dict[str, Any]]:
    cond, args = [], []
    if status:
        cond.append("status = ?")
        args.append(status)
    if kind:
        cond.append("kind = ?")
        args.append(kind)
    where = (" WHERE " + " AND ".join(cond)) if cond else ""
    return _rows(db.execute(f"SELECT * FROM anomalies{where} ORDER BY id DESC LIMIT ?", args + [limit]))


def gaps(db: Database, tid: int) -> list[tuple[int, int, int]]:
    return db.execute("SELECT first_seq, last_seq, since FROM seq_gaps WHERE terminal_id = ? ORDER BY first_seq",
                      [tid]).fetchall()


def replace_gaps(db: Database, tid: int, new: list[tuple[int, int, int]]) -> None:
    db.execute("DELETE FROM seq_gaps WHERE terminal_id = ?", [tid])
    db.conn.executemany("INSERT INTO seq_gaps (terminal_id, first_seq, last_seq, since) VALUES (?, ?, ?, ?)",
                   [(tid, a, b, since) for a, b, since in new])
