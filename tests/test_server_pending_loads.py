"""Pending loads at scale: what an upload and a heartbeat read of them must not grow with the
number of loads waiting on the campus (a term-start rush leaves tens of thousands pending).

Measured in SQLite virtual-machine steps (``set_progress_handler``), not in time."""

from __future__ import annotations

from pathlib import Path

from sync_server import store
from sync_server.store import cards as cstore

CARDS = 4000


def _campus_with_pending_loads(path: Path) -> store.Database:
    db = store.open_db(str(path))
    with store.transaction(db):
        db.conn.executemany(
            "INSERT INTO cards (id, uid, card_no, holder_id, type, valid_from, valid_until, issued, load_seq, "
            "purse_acct, credit_acct) VALUES (?, ?, ?, ?, 2, 0, 4000000000, 0, 1, 0, 0)",
            [(i, i.to_bytes(4, "big"), f"S{i}", f"H{i}") for i in range(1, CARDS + 1)])
        db.conn.executemany("INSERT INTO loads (card_id, seq, amount, kind, created) VALUES (?, 1, 5000, 1, 0)",
                            [(i,) for i in range(1, CARDS + 1)])
    return db


def _steps(db: store.Database, fn, *args):  # type: ignore[no-untyped-def]
    """(result, SQLite VM steps in hundreds) of ``fn(*args)``."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    db.conn.set_progress_handler(tick, 100)
    try:
        return fn(*args), count[0]
    finally:
        db.conn.set_progress_handler(None, 100)


def test_an_upload_reads_the_pending_loads_of_its_own_cards_only(tmp_path: Path) -> None:
    db = _campus_with_pending_loads(tmp_path / "c.db")
    loads, steps = _steps(db, cstore.pending_loads_of, db, [7, 3000])
    assert loads == {(7, 1): (5000, "pending"), (3000, 1): (5000, "pending")}
    assert steps < 10, f"{steps * 100} VM steps to read 2 cards' loads among {CARDS} pending"


def test_the_loads_fingerprint_reads_what_terminals_are_sent_and_no_more(tmp_path: Path) -> None:
    db = _campus_with_pending_loads(tmp_path / "c.db")
    before, steps = _steps(db, cstore.pending_loads_fingerprint, db, 400)
    assert steps < 200, f"{steps * 100} VM steps for a fingerprint over {CARDS} pending loads"
    cstore.collect_loads(db, [(1, 1, 1, 5, 1)])  # one of the 400 oldest: terminals' answer changes
    assert cstore.pending_loads_fingerprint(db, 400) != before
    after = cstore.pending_loads_fingerprint(db, 400)
    cstore.collect_loads(db, [(1, 1, 2, 3900, 1)])  # beyond what any terminal is sent
    assert cstore.pending_loads_fingerprint(db, 400) == after
