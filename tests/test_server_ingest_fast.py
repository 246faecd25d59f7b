"""The upload fast path (``ingest.scan``) against the record-by-record path, in-process: the
same verdicts, acks and stored rows whichever path a batch takes, and a batch that fails
after card states were touched leaves nothing behind in the server's chain cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from protocol import records
from sync_server import cards, chaincache, ingest, keys, registry, store
from sync_server import status as st
from sync_server.store import cards as cstore
from sync_server.store import records as rstore
from sync_server.store import terminals as tstore

NOW = 1_800_000_000
UIDS = [bytes([0x04, 0x10, 0x20, n]) for n in range(1, 4)]
UID7 = bytes.fromhex("04A1B2C3D4E5F6")


class Till:
    """A terminal journal: signs consecutive records with its key."""

    def __init__(self, db: store.Database) -> None:
        ring = keys.KeyRing.load(db)
        m = registry.add_merchant(db, NOW, f"m{id(self)}")
        b = registry.register_terminal(db, NOW, ring, m["id"], "pos", "", None, "http://x")
        self.row = tstore.terminal(db, b["terminal_id"])
        self.key = bytes.fromhex(b["terminal_key"])
        self.seq, self.link = 0, records.GENESIS_LINK
        self.cards: dict[bytes, list[int]] = {}  # uid -> [counter, balance]

    def rec(self, rtype: int, uid: bytes, counter: int, amount: int, before: int, after: int, aux: int = 0) -> bytes:
        self.seq += 1
        raw = records.build(self.key, self.link, rtype, 0, self.row["id"], self.seq, NOW, uid, counter, amount,
                            before, after, aux)
        self.link = records.link_of(raw)
        return raw

    def sale(self, uid: bytes, amount: int) -> bytes:
        c = self.cards.setdefault(uid, [0, 0])
        if c[0] == 0:  # first use: collect the top-up
            c[0], c[1] = 1, 5000
            return self.rec(records.LOAD, uid, 1, 5000, 0, 5000, aux=1)
        c[0] += 1
        c[1] -= amount
        return self.rec(records.PURCHASE, uid, c[0], amount, c[1] + amount, c[1])


@pytest.fixture()
def db(tmp_path: Path) -> store.Database:
    d = store.open_db(str(tmp_path / "f.db"))
    keys.ensure_secrets(d)
    for i, uid in enumerate(UIDS + [UID7]):
        cards.issue(d, NOW, cards.parse_uid(uid.hex()), f"F{i}", f"h{i}", 2, NOW, NOW + 86400 * 300)
        cards.top_up(d, NOW, f"F{i}", 5000)
    return d


def stored(db: store.Database, tid: int) -> list[tuple[Any, ...]]:
    rows = rstore.record_rows(db, tid, list(range(1, 200)))
    return [(r["seq"], r["status"], r["purse"], r["credit"], r["raw"]) for r in rows]


def test_clean_batch_takes_the_fast_path_and_matches_the_slow_one(db: store.Database) -> None:
    till = Till(db)
    batch = [till.sale(UIDS[i % 3], 100 + i) for i in range(12)] + [till.sale(UID7, 50), till.sale(UID7, 60)]
    ring = keys.KeyRing.load(db)
    run = ingest.scan(batch, till.row["id"], ring)
    assert run is not None and (run.first, run.last) == (1, 14)
    good, rejected = ingest.parse(batch, till.row["id"], ring)
    assert rejected == [] and run.good() == good
    assert run.links == b"".join(records.link_of(r) for r in batch)
    ack = ingest.ingest(db, ring, till.row, batch, NOW, cache=chaincache.ChainCache())
    assert ack == {"acked": 14, "rejected": []}
    assert {r[1] for r in stored(db, till.row["id"])} == {st.LINKED}


def test_every_record_of_a_long_batch_is_stored_whole(db: store.Database) -> None:
    """Records go in 100 rows a statement and the rest one by one: none lost, none mixed up."""
    till = Till(db)
    batch = [till.sale(UIDS[i % 3], 1 + i % 7) for i in range(250)]
    ack = ingest.ingest(db, keys.KeyRing.load(db), till.row, batch, NOW, cache=chaincache.ChainCache())
    assert ack == {"acked": 250, "rejected": []}
    rows = rstore.record_rows(db, till.row["id"], list(range(1, 300)))
    assert [(r["seq"], bytes(r["raw"])) for r in rows] == [(i + 1, raw) for i, raw in enumerate(batch)]
    for r, raw in zip(rows, batch):
        f = records.decode(raw)
        assert (r["counter"], r["amount"], r["balance_after"], r["status"], r["purse"]) == (
            f.counter, f.amount, f.balance_after, st.LINKED, f.balance_after - f.balance_before)


@pytest.mark.parametrize("spoil", ["mac", "not_bytes", "short", "gap", "seq0"])
def test_spoiled_batches_leave_the_fast_path_and_say_why(db: store.Database, spoil: str) -> None:
    till = Till(db)
    batch: list[Any] = [till.sale(UIDS[0], 100), till.sale(UIDS[0], 200), till.sale(UIDS[0], 300)]
    if spoil == "mac":
        batch[1] = batch[1][:30] + bytes([batch[1][30] ^ 1]) + batch[1][31:]
    elif spoil == "not_bytes":
        batch[1] = 7
    elif spoil == "short":
        batch[1] = batch[1][:63]
    elif spoil == "gap":
        del batch[1]
    else:
        batch = [records.build(till.key, records.GENESIS_LINK, records.PURCHASE, 0, till.row["id"], 0, NOW,
                               UIDS[0], 1, 10, 5000, 4990)]
    ring = keys.KeyRing.load(db)
    assert ingest.scan(batch, till.row["id"], ring) is None
    ack = ingest.ingest(db, ring, till.row, batch, NOW, cache=chaincache.ChainCache())
    expected = {"mac": 1, "not_bytes": 1, "short": 1, "gap": 1, "seq0": 0}[spoil]
    assert ack["acked"] == expected, ack
    if spoil != "gap":
        assert len(ack["rejected"]) == 1, ack
    else:  # #2 is missing: #3 is stored beyond the gap, the ack waits
        assert ack["rejected"] == [] and [r[0] for r in stored(db, till.row["id"])] == [1, 3]


def test_clean_batch_that_does_not_follow_the_stored_chain_goes_record_by_record(db: store.Database) -> None:
    till = Till(db)
    ring = keys.KeyRing.load(db)
    cache = chaincache.ChainCache()
    assert ingest.ingest(db, ring, till.row, [till.sale(UIDS[0], 100)], NOW, cache=cache)["acked"] == 1
    till.link = bytes(8)  # a forked journal: #2 names the wrong predecessor, #3 follows #2
    batch = [till.sale(UIDS[0], 100), till.sale(UIDS[0], 200)]
    assert ingest.scan(batch, till.row["id"], ring) is not None  # well-formed on its own
    ack = ingest.ingest(db, ring, till.row, batch, NOW, cache=cache)
    assert ack["acked"] == 1 and [r[0] for r in ack["rejected"]] == [2]
    again = ingest.ingest(db, ring, till.row, batch[:0] + [till.sale(UIDS[0], 5)], NOW, cache=cache)
    assert again["acked"] == 1  # #4 waits beyond the gap left by the refused #2


def test_batch_broken_inside_its_own_chain_is_refused_from_the_break(db: store.Database) -> None:
    till = Till(db)
    ring = keys.KeyRing.load(db)
    batch = [till.sale(UIDS[0], 100), till.sale(UIDS[0], 100)]
    till.link = bytes(8)  # #3 is signed but names the wrong predecessor
    batch += [till.sale(UIDS[0], 100), till.sale(UIDS[0], 100)]
    assert ingest.scan(batch, till.row["id"], ring) is None  # not a clean run: checked record by record
    ack = ingest.ingest(db, ring, till.row, batch, NOW, cache=chaincache.ChainCache())
    assert ack["acked"] == 2 and [r[0] for r in ack["rejected"]] == [3]
    assert "does not chain" in ack["rejected"][0][1]


def test_retry_of_a_stored_batch_is_acknowledged_and_changes_nothing(db: store.Database) -> None:
    till = Till(db)
    ring = keys.KeyRing.load(db)
    cache = chaincache.ChainCache()
    batch = [till.sale(UIDS[1], 100), till.sale(UIDS[1], 200)]
    assert ingest.ingest(db, ring, till.row, batch, NOW, cache=cache) == {"acked": 2, "rejected": []}
    before = stored(db, till.row["id"])
    assert ingest.ingest(db, ring, till.row, batch, NOW, cache=cache) == {"acked": 2, "rejected": []}
    assert stored(db, till.row["id"]) == before


def test_failed_batch_leaves_the_chain_cache_as_the_database_says(db: store.Database,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    till = Till(db)
    ring = keys.KeyRing.load(db)
    cache = chaincache.ChainCache()  # written behind, like the server's
    assert ingest.ingest(db, ring, till.row, [till.sale(UIDS[2], 100), till.sale(UIDS[2], 250)], NOW,
                         cache=cache)["acked"] == 2
    batch = [till.sale(UIDS[2], 300), till.sale(UIDS[2], 400)]

    def disk_full(*_a: Any, **_k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(rstore, "write_batch", disk_full)
    with pytest.raises(OSError):
        ingest.ingest(db, ring, till.row, batch, NOW, cache=cache)
    monkeypatch.undo()
    # the cache must not believe the failed batch happened: the retry links from counter 2
    assert ingest.ingest(db, ring, till.row, batch, NOW, cache=cache) == {"acked": 4, "rejected": []}
    assert {r[1] for r in stored(db, till.row["id"])} == {st.LINKED}
    cache.flush(db)
    row = cstore.chain(db, cstore.card(db, card_no="F2")["id"])
    assert (row["head_counter"], row["head_balance"], row["state"]) == (4, 5000 - 250 - 300 - 400, "ok")
