"""Chain state written behind (``sync_server.chaincache``): what a crash before the flush
leaves is derived again from the stored records, in-process and with a killed server."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import records
from sync_server import chaincache, ingest, keys, registry, store
from sync_server import status as st
from sync_server.store import cards as cstore
from sync_server.store import terminals as tstore
from tests.server_fixtures import Campus, ServerProcess

NOW = 1_800_000_000


@pytest.fixture()
def db(tmp_path: Path) -> store.Database:
    d = store.open_db(str(tmp_path / "c.db"))
    keys.ensure_secrets(d)
    return d


def _setup(db: store.Database) -> tuple[dict, bytes, bytes]:
    ring = keys.KeyRing.load(db)
    m = registry.add_merchant(db, NOW, "m")
    b = registry.register_terminal(db, NOW, ring, m["id"], "pos", "", None, "http://x")
    from sync_server import cards

    cards.issue(db, NOW, cards.parse_uid("04010203"), "K1", "h", 2, NOW, NOW + 86400 * 300)
    cards.top_up(db, NOW, "K1", 5000)
    return tstore.terminal(db, b["terminal_id"]), bytes.fromhex(b["terminal_key"]), bytes.fromhex("04010203")


def _records(key: bytes, tid: int, uid: bytes, spec: list[tuple[int, int, int, int, int]]) -> list[bytes]:
    """spec: (type, counter, amount, before, after) in terminal sequence order from 1."""
    out, link = [], records.GENESIS_LINK
    for seq, (rtype, counter, amount, before, after) in enumerate(spec, 1):
        rec = records.build(key, link, rtype, 0, tid, seq, NOW, uid, counter, amount, before, after,
                            aux=1 if rtype == records.LOAD else 0)
        link = records.link_of(rec)
        out.append(rec)
    return out


def test_unflushed_state_is_derived_again_after_a_crash(db: store.Database) -> None:
    term, key, uid = _setup(db)
    ring = keys.KeyRing.load(db)
    recs = _records(key, term["id"], uid, [(records.LOAD, 1, 5000, 0, 5000), (records.PURCHASE, 2, 700, 5000, 4300),
                                           (records.PURCHASE, 4, 300, 3000, 2700)])
    cache = chaincache.ChainCache()  # written behind: nothing flushed within 10 s
    ack = ingest.ingest(db, ring, term, recs, NOW, cache=cache)
    assert ack["rejected"] == []
    card = cstore.card(db, card_no="K1")
    assert cstore.chain(db, card["id"])["head_counter"] == 0  # still only in memory
    # the process dies here; a new one recovers from the records
    fixed = chaincache.ChainCache().recover(db)
    row = cstore.chain(db, card["id"])
    assert fixed == 1
    assert (row["head_counter"], row["head_balance"], row["top_counter"], row["top_balance"], row["state"]) == (
        2, 4300, 4, 2700, "pending")


def test_flush_writes_the_cached_states(db: store.Database) -> None:
    term, key, uid = _setup(db)
    recs = _records(key, term["id"], uid, [(records.LOAD, 1, 5000, 0, 5000), (records.PURCHASE, 2, 6000, 5000, -1000)])
    cache = chaincache.ChainCache()
    ingest.ingest(db, keys.KeyRing.load(db), term, recs, NOW, cache=cache)
    assert cache.flush(db) == 1 and cache.flush(db) == 0
    row = cstore.chain(db, cstore.card(db, card_no="K1")["id"])
    assert (row["head_counter"], row["top_balance"], row["credit_since"]) == (2, -1000, NOW)


def test_derive_matches_the_statuses() -> None:
    from sync_server import chain

    state = chain.CardState(b"u", [1, 0, 0, 0, 0, "ok", None, None])
    rows = [{"counter": 1, "status": st.LINKED, "balance_after": 100, "time": 5},
            {"counter": 2, "status": st.LINKED, "balance_after": 50, "time": 6},
            {"counter": 2, "status": st.CLONE, "balance_after": 10, "time": 7}]
    out = chaincache.derive(state, rows, NOW)
    assert (out.head, out.head_balance, out.top, out.top_balance, out.state) == (2, 50, 2, 50, "clone")


def test_killed_server_loses_no_chain_state(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "k.db")
    try:
        campus = Campus(srv)
        term = campus.terminal()
        card = campus.card(money=5000, term=term)
        assert term.upload([card.buy(term, 100), card.buy(term, 200)])["rejected"] == []
        srv.kill()  # no flush: the state was only in memory
    finally:
        srv.stop()
    srv2 = ServerProcess.start(tmp_path / "k.db")
    try:
        shown = card.show(srv2)
        assert (shown["chain"]["head_counter"], shown["chain"]["head_balance"], shown["chain"]["state"]) == (
            3, 4700, "ok")
        term.srv = srv2
        assert term.upload([card.buy(term, 50)])["rejected"] == []  # the chain goes on from there
        assert card.show(srv2)["records"][-1]["status"] == "linked"
    finally:
        srv2.stop()
