"""The card index in a file of its own (``store.cardindex``) and the upkeep thread: lookups
agree with a plain scan before and after the catch-up, the catch-up never takes the main
database's write lock, an index that belongs to another database is not believed, and the
checkpoint keeps the WAL from growing while uploads go on."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from sync_server import store, upkeep
from sync_server.store import cardindex
from sync_server.store import records as rstore

UIDS = [bytes([0, 0, 0, 4, 1, 2, n]) for n in range(5)]


def add_records(db: store.Database, n: int, start: int = 1, salt: int = 0) -> None:
    rows = []
    for i in range(start, start + n):
        uid = UIDS[(i + salt) % len(UIDS)]
        raw = (i + salt * 1000).to_bytes(4, "big") * 16
        rows.append((1, i, rstore.BLOB(uid), i // len(UIDS) + 1, 1, 0, i, 10, 100 - i, 1, 0, -10, 0, None,
                     rstore.BLOB(raw)))
    with store.transaction(db):
        rstore.insert_records(db, rows)


def by_scan(db: store.Database, uid: bytes) -> list[tuple[int, int]]:
    return [(r[0], r[1]) for r in db.execute("SELECT rid, counter FROM records WHERE uid = ? ORDER BY counter, rid",
                                             [uid]).fetchall()]


def found(db: store.Database, uid: bytes, **kw: int) -> list[tuple[int, int]]:
    return [(r["rid"], r["counter"]) for r in rstore.card_records(db, uid, **kw)]


@pytest.fixture()
def db(tmp_path: Path) -> store.Database:
    return store.open_db(str(tmp_path / "i.db"))


def test_lookups_agree_with_a_scan_before_and_after_the_catch_up(db: store.Database) -> None:
    add_records(db, 40)
    expected = {uid: by_scan(db, uid) for uid in UIDS}
    assert all(found(db, uid) == expected[uid] for uid in UIDS)  # nothing indexed: all from the scan
    assert rstore.catch_up_index(db, 100) == 0 and rstore.index_lag(db) == 40  # not due yet
    assert rstore.catch_up_index(db, 10) == 40 and rstore.index_lag(db) == 0
    add_records(db, 7, start=41)  # a tail past the watermark
    for uid in UIDS:
        assert found(db, uid) == by_scan(db, uid)
        assert found(db, uid, counter=3) == [x for x in by_scan(db, uid) if x[1] == 3]
        assert found(db, uid, min_counter=5) == [x for x in by_scan(db, uid) if x[1] > 5]
    mark, rids = cardindex.lookup(db, UIDS[0])
    assert mark == 40 and sorted(rids) == [r for r, _ in by_scan(db, UIDS[0]) if r <= 40]


def test_catch_up_does_not_wait_for_the_main_write_lock(db: store.Database, tmp_path: Path) -> None:
    add_records(db, 30)
    writer = sqlite3.connect(str(tmp_path / "i.db"), isolation_level=None, timeout=0.1)
    writer.execute("BEGIN IMMEDIATE")  # an upload holds the main database's write lock
    try:
        assert rstore.catch_up_index(db, 1) == 30
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_index_of_another_database_is_not_believed_and_is_rebuilt(db: store.Database, tmp_path: Path) -> None:
    add_records(db, 30)
    main = str(tmp_path / "i.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(main, tmp_path / "backup.db")  # a backup of the main file, taken now
    add_records(db, 20, start=31)
    assert rstore.catch_up_index(db, 1) == 50
    cardindex.close(db)
    db.conn.close()
    for ext in ("-wal", "-shm"):
        if os.path.exists(main + ext):
            os.remove(main + ext)
    shutil.copy(tmp_path / "backup.db", main)  # the backup is restored; the index file stays
    db2 = store.open_db(main)
    add_records(db2, 25, start=31, salt=1)  # different records take rids 31..55
    assert cardindex.watermark(db2) == 0  # record 50 is not the one the index was built to
    for uid in UIDS:
        assert found(db2, uid) == by_scan(db2, uid)
    assert rstore.catch_up_index(db2, 1) == 55  # emptied and built again
    assert cardindex.watermark(db2) == 55
    for uid in UIDS:
        assert found(db2, uid) == by_scan(db2, uid)


def test_upkeep_indexes_and_keeps_the_wal_from_growing(tmp_path: Path) -> None:
    pool = store.Pool(str(tmp_path / "u.db"), autocheckpoint=0)  # only the upkeep checkpoints
    keeper = upkeep.Upkeep(pool, index_rows=100)
    db = pool.get()
    sizes = []
    for i in range(20):
        add_records(db, 200, start=1 + 200 * i)
        keeper.run_once(force=True)
        sizes.append(os.path.getsize(str(tmp_path / "u.db") + "-wal"))
    assert rstore.index_lag(db) == 0
    assert max(sizes[5:]) <= 2 * max(sizes[:5]), sizes  # the WAL starts over instead of growing
