"""The storage layer: every SQL statement of the sync server lives in this package.

SQLite through sqlite-utils is the embedded default: one database file in WAL mode, numbered
migrations (``store.schema``) applied when it is opened. The sibling modules group the SQL
by area (cards, terminals, records, ledger, ...); everything above this package calls their
functions and never writes SQL, so a PostgreSQL backend can replace this package alone.

Usage::

    from sync_server import store
    db = store.open_db("campus.db")          # creates and migrates if needed
    with store.transaction(db):
        ...                                   # calls into store.cards, store.ledger, ...
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import sqlite_utils

from sync_server.store.schema import MIGRATIONS

Database = sqlite_utils.Database
WAL_CHECKPOINT_PAGES = 8000  # 32 MB of WAL between checkpoints (each one syncs the file)


def open_db(path: str) -> Database:
    """Open (creating and migrating as needed) the database file at ``path``."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-32768")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


def schema_version(db: Database) -> int:
    row = db.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'").fetchone()
    if row is None:
        return 0
    return db.execute("SELECT version FROM schema_version").fetchone()[0]


def migrate(db: Database) -> int:
    """Apply the migrations this database lacks; return how many were applied."""
    with transaction(db):
        current = schema_version(db)
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {current} is newer than this server ({len(MIGRATIONS)}): upgrade campuscard")
        if current == 0:
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.execute("INSERT INTO schema_version VALUES (0)")
        for n in range(current, len(MIGRATIONS)):
            for statement in _statements(MIGRATIONS[n]):
                db.execute(statement)
        db.execute("UPDATE schema_version SET version = ?", [len(MIGRATIONS)])
    return len(MIGRATIONS) - current


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no statement holds a ';' of its own)."""
    return [s.strip() for s in script.split(";") if s.strip()]


@contextlib.contextmanager
def transaction(db: Database, immediate: bool = True) -> Iterator[Database]:
    """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

    Connections from one ``Pool`` first take the pool's lock: threads of the server queue on
    it and wake at once, instead of polling SQLite's busy handler (which sleeps in steps).
    """
    conn = db.conn
    if conn.in_transaction:  # nested: the outer transaction commits
        yield db
        return
    lock = getattr(db, "write_lock", None) or contextlib.nullcontext()
    with lock:
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield db
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def bulk(db: Database, statement: Callable[[int], str], flat: list[Any], width: int, per: int = 128) -> None:
    """Run a statement over many rows, ``per`` rows a statement: ``statement(n)`` is the SQL
    for ``n`` rows, ``flat`` their ``width`` values each, end to end. One SQLite step a
    statement, where ``executemany`` steps once a row (and lets the GIL go and takes it again
    around every step). Row counts are powers of two, so that a few statements, each prepared
    once, serve every batch size."""
    rows, at = len(flat) // width, 0
    n = per
    while rows:
        while n > rows:
            n //= 2
        end = at + n * width
        db.conn.execute(statement(n), flat[at:end])
        rows, at = rows - n, end


def values(n: int, width: int) -> str:
    """``(?,?),(?,?)...``: ``n`` rows of ``width`` parameters for a VALUES list."""
    return ",".join(["({})".format(",".join("?" * width))] * n)


def checkpoint(db: Database, lock: contextlib.AbstractContextManager[object] | None = None) -> tuple[int, int]:
    """Copy the WAL into the database file (``PRAGMA wal_checkpoint(PASSIVE)``): writers go
    on meanwhile. With ``lock`` (the pool's write lock) the frames written during the first
    pass are copied too, holding it, so that the next write starts the WAL over.

    Returns (frames in the WAL, frames copied) of the last pass.
    """
    _busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if lock is not None and copied < frames:
        with lock:
            _busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames, copied


class Pool:
    """One connection per thread (gunicorn serves from a fixed thread pool).

    :param autocheckpoint: WAL pages after which a committing connection copies the WAL into
        the database file itself; a server whose upkeep thread checkpoints sets it higher, as
        a safety net only.
    """

    def __init__(self, path: str, autocheckpoint: int = WAL_CHECKPOINT_PAGES) -> None:
        self.path = path
        self.autocheckpoint = autocheckpoint
        self._local = threading.local()
        self.write_lock = threading.Lock()
        open_db(path).conn.close()  # migrate once, up front

    def get(self) -> Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.dedicated()
        return db

    def dedicated(self) -> Database:
        """A connection of its own, e.g. for one kind of work that runs one thread at a time:
        a connection that made the last write keeps its page cache, any other reloads it."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-32768")
        conn.execute(f"PRAGMA wal_autocheckpoint={self.autocheckpoint}")
        db = sqlite_utils.Database(conn)
        db.write_lock = self.write_lock  # type: ignore[attr-defined]
        return db
