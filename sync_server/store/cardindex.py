"""The (uid, counter) index of ``records``, in a database file of its own (``<db>-index``).

Uploads never write it: every record up to the index's watermark is indexed, later ones are
found by scanning ``records`` past the watermark, and ``catch_up`` indexes the tail in one
``INSERT ... SELECT`` (sorted, so it touches each index page once). Because the index lives in
another file, its catch-up takes no lock of the main database: the server's upkeep thread
runs it (outside the GIL) while uploads go on, instead of random index inserts on every
upload, which would cost more than the rest of ingest.

The file is derived data. A missing file starts empty; one that does not belong to the main
database (its watermark record differs, e.g. after a backup of the main file was restored)
is ignored by readers and emptied by the next catch-up.

Usage::

    mark, rids = cardindex.lookup(db, uid, counter=3)  # indexed rids; scan records past mark
    cardindex.catch_up(db, min_rows=20000)             # index the tail if it is that long
"""

from __future__ import annotations

import sqlite3
import threading
from urllib.parse import quote

from sqlite_utils import Database

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS card_index (uid BLOB NOT NULL, counter INTEGER NOT NULL, rid INTEGER NOT NULL, "
    "PRIMARY KEY (uid, counter, rid)) WITHOUT ROWID",
    # name 'rid': indexed up to this record; 'raw': that record's bytes (whose index this is)
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value)",
)
_LOCK = threading.Lock()  # opening: one thread per Database object creates its connection


def path_of(db: Database) -> str:
    """The index file of the database ``db`` ('' for an in-memory database: no index)."""
    main = db.execute("PRAGMA database_list").fetchone()[2]
    return main + "-index" if main else ""


def _conn(db: Database) -> sqlite3.Connection | None:
    """The index connection that belongs to ``db`` (opened once, the main file attached)."""
    conn = getattr(db, "_cardindex", None)
    if conn is not None:
        return conn
    with _LOCK:
        conn = getattr(db, "_cardindex", None)
        if conn is None:
            path = path_of(db)
            if not path:
                return None
            main = path[: -len("-index")]
            conn = sqlite3.connect("file:" + quote(path), uri=True, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
            # read-only: BEGIN on this connection never takes the main database's write lock
            conn.execute("ATTACH DATABASE ? AS src", ["file:" + quote(main) + "?mode=ro"])
            db._cardindex = conn  # type: ignore[attr-defined]
    return conn


def _mark(conn: sqlite3.Connection) -> tuple[int, bytes | None]:
    rows = dict(conn.execute("SELECT name, value FROM meta WHERE name IN ('rid', 'raw')").fetchall())
    return rows.get("rid", 0), rows.get("raw")


def _belongs(db: Database, mark: int, raw: bytes | None) -> bool:
    """True if record ``mark`` of the main database is the one the index was built up to."""
    if mark == 0:
        return True
    row = db.execute("SELECT raw FROM records WHERE rid = ?", [mark]).fetchone()
    return row is not None and row[0] == raw


def lookup(db: Database, uid: bytes, counter: int | None = None, min_counter: int | None = None
           ) -> tuple[int, list[int]]:
    """(watermark, rids of the indexed records of ``uid``) - at ``counter``, above
    ``min_counter``, or all. Records past the watermark are not in the answer."""
    conn = _conn(db)
    if conn is None:
        return 0, []
    where, args = "", [uid]
    if counter is not None:
        where, args = " AND counter = ?", [uid, counter]
    elif min_counter is not None:
        where, args = " AND counter > ?", [uid, min_counter]
    # one statement, one snapshot: the watermark and the rids it covers
    rows = conn.execute("SELECT name, value FROM meta WHERE name IN ('rid', 'raw') UNION ALL "
                        f"SELECT NULL, rid FROM card_index WHERE uid = ?{where}", args).fetchall()
    meta = {name: value for name, value in rows if name is not None}
    mark = meta.get("rid", 0)
    if not _belongs(db, mark, meta.get("raw")):
        return 0, []
    return mark, [rid for name, rid in rows if name is None]


def watermark(db: Database) -> int:
    """Records up to this rid are indexed (0 if the index does not belong to ``db``)."""
    conn = _conn(db)
    if conn is None:
        return 0
    mark, raw = _mark(conn)
    return mark if _belongs(db, mark, raw) else 0


def catch_up(db: Database, min_rows: int) -> int:
    """Index every committed record past the watermark if there are at least ``min_rows``;
    returns the rows indexed. Writes the index file only (no lock of the main database)."""
    conn = _conn(db)
    if conn is None:
        return 0
    conn.execute("BEGIN")
    try:
        mark, raw = _mark(conn)
        top = conn.execute("SELECT COALESCE(MAX(rid), 0) FROM src.records").fetchone()[0]
        if mark:
            row = conn.execute("SELECT raw FROM src.records WHERE rid = ?", [mark]).fetchone()
            if row is None or row[0] != raw:  # another database's index: start again
                conn.execute("DELETE FROM card_index")
                mark = 0
        if top - mark < max(min_rows, 1):
            conn.execute("COMMIT")
            return 0
        cur = conn.execute("INSERT OR IGNORE INTO card_index (uid, counter, rid) SELECT uid, counter, rid "
                           "FROM src.records WHERE rid > ? AND rid <= ? ORDER BY uid, counter", [mark, top])
        last = conn.execute("SELECT raw FROM src.records WHERE rid = ?", [top]).fetchone()[0]
        conn.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", [("rid", top), ("raw", last)])
        conn.execute("COMMIT")
        return cur.rowcount
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def close(db: Database) -> None:
    """Close the index connection of ``db`` (if one was opened)."""
    conn = getattr(db, "_cardindex", None)
    if conn is not None:
        conn.close()
        db._cardindex = None  # type: ignore[attr-defined]
