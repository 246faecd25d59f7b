"""Upload ingest over real HTTP: duplicates, replays, forged signatures, tampered records,
sequence gaps, clones, torn transactions and unknown cards."""

from __future__ import annotations

import os

import pytest

from protocol import records
from tests.server_fixtures import Campus, Card, ServerProcess, Terminal, make_server, snapshot


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    yield from make_server(tmp_path_factory, "ingest")


def merchant_lines(srv: ServerProcess) -> tuple[int, int]:
    """(all merchants' payable, all merchants' held) in the ledger."""
    kinds = {b["kind"]: b["balance"] for b in srv.admin("GET", "/audit")["balances"]}
    return kinds.get("merchant", 0), kinds.get("merchant_held", 0)


def anomalies(srv: ServerProcess, kind: str, status: str = "open") -> list[dict]:
    return srv.admin("GET", f"/anomalies?kind={kind}&status={status}")


def test_upload_stores_posts_and_acks(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    ack = term.upload([card.buy(term, 1200), card.buy(term, 300)])
    assert ack["acked"] == term.seq == 3 and ack["rejected"] == []
    shown = card.show(srv)
    assert shown["shadow_balance"] == 3500 and shown["chain"]["state"] == "ok"
    assert [r["status"] for r in shown["records"]] == ["linked"] * 3
    assert card.audit_differences(srv) == []


def test_duplicate_upload_is_stored_once(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    batch = [card.buy(term, 100), card.buy(term, 200)]
    first = term.upload(batch)
    before = snapshot(srv.db)
    again = term.upload(batch)  # the ack got lost: the terminal sends the same records again
    assert again["acked"] == first["acked"] == 3 and again["rejected"] == []
    after = snapshot(srv.db)
    assert after["records"] == before["records"] and after["entries"] == before["entries"]
    assert card.show(srv)["shadow_balance"] == 4700


def test_replayed_request_is_refused_and_changes_nothing(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=1000, term=term)
    wire = term.seal("upload", {"records": [card.buy(term, 100)]})
    assert term.post("upload", wire)[0] == 200
    before = snapshot(srv.db)
    status, body = term.post("upload", wire)
    assert status == 409 and "replayed request" in body["error"]
    assert snapshot(srv.db) == before


def test_forged_signature_is_refused(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card()
    before = snapshot(srv.db)
    wire = term.seal("upload", {"records": [card.buy(term, 100)]}, key=os.urandom(32))
    status, body = term.post("upload", wire)
    assert status == 401 and "bad message signature" in body["error"]
    assert snapshot(srv.db) == before


def test_tampered_record_is_rejected_the_rest_stored(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    good = card.buy(term, 100)
    tampered = bytearray(card.buy(term, 900))
    tampered[28] = 1  # amount 900 -> 769 + ...: the MAC no longer matches
    ack = term.upload([good, bytes(tampered), card.buy(term, 50)])
    assert ack["acked"] == 2  # stops before the tampered one
    (seq, reason), = ack["rejected"]
    assert seq == 3 and "MAC does not match" in reason
    assert any(a["seq"] == 3 and "MAC" in a["detail"] for a in anomalies(srv, "rejected_record"))
    assert [r["seq"] for r in card.show(srv)["records"]] == [1, 2, 4]


def test_sequence_gap_is_an_anomaly_until_filled(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    r2, r3, r4, r5 = (card.buy(term, 100) for _ in range(4))
    ack = term.upload([r4, r5])
    assert ack["acked"] == 1
    gap, = [a for a in anomalies(srv, "seq_gap") if a["terminal_id"] == term.tid]
    assert "#2..#3 missing" in gap["detail"]
    shown = card.show(srv)
    assert shown["chain"]["state"] == "pending" and shown["status"] == "active"  # absence: not frozen
    assert shown["blacklisted"] is None
    ack = term.upload([r2, r3])
    assert ack["acked"] == 5 and ack["rejected"] == []
    assert not [a for a in anomalies(srv, "seq_gap") if a["terminal_id"] == term.tid]
    shown = card.show(srv)
    assert shown["chain"]["state"] == "ok" and shown["chain"]["head_counter"] == 5
    assert [r["status"] for r in shown["records"]] == ["linked"] * 5


def test_sequence_gap_filled_in_pieces_leaves_no_open_anomaly(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    r2, r3, r4, r5, r6 = (card.buy(term, 100) for _ in range(5))
    assert term.upload([r6])["acked"] == 1
    assert term.upload([r2])["acked"] == 2  # the gap shrinks from the front: #3..#5 missing
    gap, = [a for a in anomalies(srv, "seq_gap") if a["terminal_id"] == term.tid]
    assert "#3..#5 missing" in gap["detail"]
    assert term.upload([r4])["acked"] == 2  # and splits: #3 and #5 missing
    assert sorted(a["seq"] for a in anomalies(srv, "seq_gap") if a["terminal_id"] == term.tid) == [3, 5]
    assert term.upload([r3, r5])["acked"] == 6
    assert not [a for a in anomalies(srv, "seq_gap") if a["terminal_id"] == term.tid]


def test_record_that_does_not_chain_is_rejected(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    term.link = bytes(8)  # a journal that forked: the next record names the wrong predecessor
    ack = term.upload([card.buy(term, 100)])
    (seq, reason), = ack["rejected"]
    assert seq == 2 and "does not chain" in reason and ack["acked"] == 1


def test_clone_same_counter_on_two_terminals_blacklists_the_card(srv: ServerProcess) -> None:
    campus = Campus(srv)
    t1, t2 = campus.terminal(), campus.terminal()
    card = campus.card(money=5000, term=t1)
    srv.admin("POST", f"/cards/{campus.card().card_no}/report-loss")  # the list is not empty
    version = t1.blacklist(0)["version"]
    copy = Card(card.uid.hex(), card.card_no)
    copy.counter, copy.balance = card.counter, card.balance  # the purse copied onto a blank card
    assert t1.upload([card.buy(t1, 1000)])["rejected"] == []
    ack = t2.upload([copy.buy(t2, 3000)])  # same card counter, different terminal
    assert ack["rejected"] == [] and ack["acked"] == 1  # stored as evidence
    shown = card.show(srv)
    assert shown["status"] == "blocked" and shown["chain"]["state"] == "clone"
    assert "counter 2 used twice" in shown["blacklisted"]["reason"]
    delta = t1.blacklist(version)
    assert delta["full"] is False and delta["since"] == version
    assert card.key in [delta["added"][i:i + 7] for i in range(0, len(delta["added"]), 7)]
    assert [a for a in anomalies(srv, "clone") if card.uid.hex().upper() == a["uid"]]
    difference, = card.audit_differences(srv)  # the clone's spending is money that never existed
    assert difference["difference"] == -3000 and difference["status"] == "blocked"


def test_clone_same_counter_twice_in_one_upload_blacklists_the_card(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    copy = Card(card.uid.hex(), card.card_no)
    copy.counter, copy.balance = card.counter, card.balance
    first, second = card.buy(term, 1000), copy.buy(term, 3000)  # both offline at one till: one upload
    ack = term.upload([first, second])
    assert ack["rejected"] == [] and ack["acked"] == term.seq
    shown = card.show(srv)
    assert shown["status"] == "blocked" and shown["chain"]["state"] == "clone"
    assert "counter 2 used twice" in shown["blacklisted"]["reason"]
    assert sorted(r["status"] for r in shown["records"]) == ["clone", "linked", "linked"]


def test_purchase_and_tearing_repair_post_once(srv: ServerProcess) -> None:
    campus = Campus(srv)
    t1, t2 = campus.terminal(), campus.terminal()
    card = campus.card(money=5000, term=t1)
    purchase = card.buy(t1, 700)  # card pulled mid-write; t2 finishes it at the next tap
    repair = t2.record(records.TEARING_REPAIR, card.uid, card.counter, 700, 5000, 4300, aux=t1.tid, aux2=t1.seq)
    assert t2.upload([repair])["rejected"] == []
    assert t1.upload([purchase])["rejected"] == []
    shown = card.show(srv)
    assert shown["shadow_balance"] == 4300 and shown["status"] == "active"
    assert sorted(r["status"] for r in shown["records"]) == ["linked", "linked", "same-event"]
    assert card.audit_differences(srv) == []


def test_purchase_and_its_repair_in_one_upload_post_once(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    purchase = card.buy(term, 700)  # torn at this till, finished by it at the next tap
    repair = term.record(records.TEARING_REPAIR, card.uid, card.counter, 700, 5000, 4300, aux=term.tid,
                         aux2=term.seq)
    assert term.upload([purchase, repair])["rejected"] == []
    shown = card.show(srv)
    assert shown["shadow_balance"] == 4300 and shown["status"] == "active" and shown["chain"]["state"] == "ok"
    assert sorted(r["status"] for r in shown["records"]) == ["linked", "linked", "same-event"]
    assert card.audit_differences(srv) == []


def test_unknown_card_is_stored_not_posted(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    stranger = Card("04FFEE01", "none")
    stranger.balance = 1000
    ack = term.upload([stranger.buy(term, 100)])
    assert ack == {**ack, "acked": 1, "rejected": []}
    assert any(a["uid"] == "04FFEE01" for a in anomalies(srv, "unknown_card"))


def test_bad_records_do_not_sink_the_batch(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term, other = campus.terminal(), campus.terminal()
    card = campus.card(money=5000, term=term)
    foreign = other.record(records.PURCHASE, card.uid, 9, 10, 100, 90)  # signed by another terminal
    inconsistent = term.record(records.PURCHASE, card.uid, 2, 100, 5000, 4000)
    ack = term.upload([b"short", foreign, inconsistent, card.buy(term, 100)])
    reasons = dict((s, r) for s, r in ack["rejected"])
    assert "not a 64-byte record" in reasons[0]
    assert "MAC does not match" in reasons[1]
    assert "must take the balance from 5000 to 4900" in reasons[2]
    assert ack["acked"] == 1  # #2 (inconsistent) is missing, #3 stored behind the gap
    assert card.show(srv)["records"][-1]["seq"] == 3


def test_unknown_terminal_is_refused(srv: ServerProcess) -> None:
    ghost = Terminal(srv, {"terminal_id": 999999, "terminal_key": os.urandom(32).hex()})
    status, body = ghost.post("params", ghost.seal("params_req", {}))
    assert status == 403 and "terminal 999999 is not registered" in body["error"]


def test_a_load_collected_twice_fails_the_audit_through_suspense(srv: ServerProcess) -> None:
    campus = Campus(srv)
    t1, t2 = campus.terminal(), campus.terminal()
    card = campus.card(money=2000, term=t1)
    before = srv.admin("GET", "/audit")
    suspense = sum(a["balance"] for a in before["accounts"] if a["account"] == "suspense")
    seq = srv.admin("POST", f"/cards/{card.card_no}/top-up", {"amount": 1000})["loads"][-1]["seq"]
    assert t1.upload([card.load(t1, seq, 1000)])["rejected"] == []
    assert t2.upload([card.load(t2, seq, 1000)])["rejected"] == []  # the same load again, at the next counter
    report = srv.admin("GET", "/audit")
    assert report["ok"] is False
    held, = [a for a in report["accounts"] if a["account"] == "suspense"]
    assert held["balance"] - suspense == -1000 and held["expected"] == 0 and "load_mismatch" in held["why"]
    assert not [a for a in report["accounts"] if a["account"] == "in_transit"]  # the load left transit once


def test_loads_in_transit_must_match_the_loads_not_collected(srv: ServerProcess) -> None:
    import sqlite3

    campus = Campus(srv)
    card = campus.card()
    seq = srv.admin("POST", f"/cards/{card.card_no}/top-up", {"amount": 700})["loads"][-1]["seq"]
    assert not [a for a in srv.admin("GET", "/audit")["accounts"] if a["account"] == "in_transit"]
    conn = sqlite3.connect(srv.db, isolation_level=None)
    try:  # a load marked collected with no record and no posting: money the ledger still owes
        conn.execute("UPDATE loads SET status = 'collected' WHERE seq = ? AND card_id = (SELECT id FROM cards "
                     "WHERE card_no = ?)", [seq, card.card_no])
        report = srv.admin("GET", "/audit")
        gap, = [a for a in report["accounts"] if a["account"] == "in_transit"]
        assert report["ok"] is False and gap["balance"] - gap["expected"] == 700
    finally:
        conn.execute("UPDATE loads SET status = 'pending' WHERE seq = ? AND card_id = (SELECT id FROM cards "
                     "WHERE card_no = ?)", [seq, card.card_no])
        conn.close()


def test_a_repaired_sale_is_held_or_payable_by_the_sale_not_by_its_repair(srv: ServerProcess) -> None:
    campus = Campus(srv)
    till, other = campus.terminal(), campus.terminal()
    card = campus.card(money=5000, term=other)
    payable0, held0 = merchant_lines(srv)
    unauthorised = records.FLAG_OFFLINE | records.FLAG_UNAUTHORISED_OFFLINE
    sale = card.buy(till, 700, unauthorised)  # the till was kept offline: a held sale; torn
    repair = other.record(records.TEARING_REPAIR, card.uid, card.counter, 700, 5000, 4300, aux=till.tid,
                          aux2=till.seq)  # finished at an online till, whose upload comes first
    assert other.upload([repair])["rejected"] == []
    assert till.upload([sale])["rejected"] == []
    payable, held = merchant_lines(srv)
    assert (payable - payable0, held - held0) == (0, 700)
    sale = card.buy(other, 300)  # and the other way round: an attended sale, repaired by a till kept offline
    repair = till.record(records.TEARING_REPAIR, card.uid, card.counter, 300, 4300, 4000, unauthorised,
                         aux=other.tid, aux2=other.seq)
    assert till.upload([repair])["rejected"] == []
    assert other.upload([sale])["rejected"] == []
    assert merchant_lines(srv) == (payable + 300, held)
    assert card.audit_differences(srv) == []


def test_a_correction_of_a_named_sale_comes_out_of_the_account_that_took_it(srv: ServerProcess) -> None:
    campus = Campus(srv)
    till = campus.terminal()
    card = campus.card(money=5000, term=till)
    unauthorised = records.FLAG_OFFLINE | records.FLAG_UNAUTHORISED_OFFLINE
    held_sale, paid_sale = card.buy(till, 600, unauthorised), card.buy(till, 400)
    assert till.upload([held_sale, paid_sale])["rejected"] == []
    payable, held = merchant_lines(srv)
    fix = {"amount": 600, "terminal_id": till.tid, "seq": records.seq_of(held_sale)}
    srv.admin("POST", f"/cards/{card.card_no}/correct", fix)
    assert merchant_lines(srv) == (payable, held - 600)  # out of the held sale, not the payable
    status, body = srv.admin_raw("POST", f"/cards/{card.card_no}/correct",
                                 {"amount": 500, "terminal_id": till.tid, "seq": records.seq_of(paid_sale)})
    assert status == 400 and "at most" in body["error"]
    status, body = srv.admin_raw("POST", f"/cards/{card.card_no}/correct", dict(fix, amount=1))
    assert status == 400 and "0 is not given back yet" in body["error"]  # the held sale is corrected in full
    status, body = srv.admin_raw("POST", f"/cards/{card.card_no}/correct",
                                 {"amount": 100, "terminal_id": till.tid, "seq": 999})
    assert status == 404 and "no sale #999" in body["error"]
    srv.admin("POST", f"/cards/{card.card_no}/correct", {"amount": 100, "merchant_id": campus.merchant["id"]})
    assert merchant_lines(srv) == (payable - 100, held - 600)  # by merchant alone: its payable, as before
