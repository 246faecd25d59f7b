"""Card lifecycle over real HTTP: loss and the blacklist delta, expiry, replacement and the
72-hour balance move, the credit wallet (repayment and freeze), parameters and heartbeats."""

from __future__ import annotations

import pytest

from protocol import messages, records, uidlist
from tests.server_fixtures import Campus, Card, ServerProcess, make_server

HOUR = 3600
DAY = 86400


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    yield from make_server(tmp_path_factory, "lifecycle")


def keys_of(blob: bytes) -> list[bytes]:
    return [blob[i:i + 7] for i in range(0, len(blob), 7)]


def test_loss_and_cancel_loss_travel_as_blacklist_deltas(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card, other = campus.card(), campus.card()
    srv.admin("POST", f"/cards/{other.card_no}/report-loss")
    full = term.blacklist(0)
    assert full["full"] is True and other.key in keys_of(full["added"])
    v0 = full["version"]
    lost = srv.admin("POST", f"/cards/{card.card_no}/report-loss")
    assert lost["status"] == "lost" and lost["blacklisted"]["reason"].startswith("lost")
    delta = term.blacklist(v0)
    assert (delta["full"], delta["since"], keys_of(delta["added"]), delta["removed"]) == (False, v0, [card.key], b"")
    v1 = delta["version"]
    assert srv.admin("POST", f"/cards/{card.card_no}/cancel-loss")["status"] == "active"
    delta = term.blacklist(v1)
    assert (delta["full"], delta["added"], keys_of(delta["removed"])) == (False, b"", [card.key])
    assert term.blacklist(v0)["added"] == b""  # added and removed since v0: no net change
    assert term.blacklist(delta["version"] + 50)["full"] is True  # ahead of the server: full list


def test_blacklist_entry_leaves_when_the_card_expires(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = Card.issue(srv, "04B0B0B0", valid_days=2)
    srv.admin("POST", f"/cards/{card.card_no}/report-loss")
    version = term.blacklist(0)["version"]
    srv.advance(3 * DAY)
    delta = term.blacklist(version)
    assert card.key in keys_of(delta["removed"]) or (delta["full"] and card.key not in keys_of(delta["added"]))


def test_cancel_loss_refused_after_replacement(srv: ServerProcess) -> None:
    campus = Campus(srv)
    card = campus.card()
    srv.admin("POST", f"/cards/{card.card_no}/report-loss")
    srv.admin("POST", f"/cards/{card.card_no}/replace", {"uid": "04C0C0C0", "card_no": card.card_no + "-2"})
    status, body = srv.admin_raw("POST", f"/cards/{card.card_no}/cancel-loss")
    assert status == 409 and "void for good" in body["error"]


def test_replacement_moves_the_balance_after_72_hours(srv: ServerProcess) -> None:
    srv.admin("PUT", "/settings", {"replacement_fee": 500})
    campus = Campus(srv)
    term, offline = campus.terminal(), campus.terminal()
    old = campus.card(money=5000, term=term)
    assert term.upload([old.buy(term, 1000)])["rejected"] == []
    late = old.buy(offline, 300)  # made offline before the loss, uploaded after the replacement
    srv.admin("POST", f"/cards/{old.card_no}/report-loss")
    new_no = old.card_no + "-R"
    new = srv.admin("POST", f"/cards/{old.card_no}/replace", {"uid": "04D1D2D3", "card_no": new_no})
    new_key = uidlist.uid_key(bytes.fromhex("04D1D2D3"))
    assert new["holder_id"] == "H" + old.uid.hex().upper() and old.show(srv)["status"] == "replaced"
    assert offline.upload([late])["rejected"] == []
    srv.advance(71 * HOUR)
    assert [ld for ld in term.loads() if ld[0] == new_key] == []
    srv.advance(2 * HOUR)
    moved = [ld for ld in term.loads() if ld[0] == new_key]
    assert moved == [(new_key, 1, 5000 - 1000 - 300 - 500, messages.LOAD_CARD_TRANSFER)]
    card = Card("04D1D2D3", new_no)
    assert term.upload([card.load(term, 1, 3200)])["rejected"] == []
    shown = card.show(srv)
    assert shown["shadow_balance"] == 3200 and shown["in_transit"] == 0
    assert old.show(srv)["shadow_balance"] == 0 and old.show(srv)["transferred"]
    assert old.audit_differences(srv) == [] and card.audit_differences(srv) == []


def test_replacement_waits_while_old_records_are_missing(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term, offline = campus.terminal(), campus.terminal()
    old = campus.card(money=5000, term=term)
    missing = old.buy(offline, 400)  # still in an offline terminal's journal
    assert term.upload([old.buy(term, 100)])["rejected"] == []  # counter 3 arrives, 2 is missing
    assert old.show(srv)["chain"]["state"] == "pending"
    srv.admin("POST", f"/cards/{old.card_no}/replace", {"uid": "04E1E2E3", "card_no": old.card_no + "-R"})
    srv.advance(73 * HOUR)
    new_key = uidlist.uid_key(bytes.fromhex("04E1E2E3"))
    shown = old.show(srv)
    assert shown["chain"]["state"] in ("pending", "quarantined") and not shown["transferred"]
    assert [ld for ld in term.loads() if ld[0] == new_key] == []
    assert offline.upload([missing])["rejected"] == []
    srv.admin("POST", "/sweep")
    assert [ld[2] for ld in term.loads() if ld[0] == new_key] == [5000 - 400 - 100 - 500]


def test_balance_moves_and_refunds_wait_for_terminals_holding_records(srv: ServerProcess) -> None:
    srv.admin("PUT", "/settings", {"replacement_fee": 0})
    campus = Campus(srv)
    term, offline, door = campus.terminal(), campus.terminal(), campus.terminal("door")
    old, leaving = campus.card(money=5000, term=term), campus.card(money=2000, term=term)
    held = old.buy(offline, 1000)  # sold offline before the loss; the till says it holds one record
    offline.heartbeat(unacked=1, last_seq=offline.seq, offline_since=srv.now() - 60)
    door.heartbeat(unacked=3, last_seq=3)  # door records hold no money: they hold nothing up
    srv.admin("POST", f"/cards/{old.card_no}/report-loss")
    srv.admin("POST", f"/cards/{old.card_no}/replace", {"uid": "04E7E8E9", "card_no": old.card_no + "-W"})
    new_key = uidlist.uid_key(bytes.fromhex("04E7E8E9"))
    srv.advance(73 * HOUR)
    assert [ld for ld in term.loads() if ld[0] == new_key] == [] and not old.show(srv)["transferred"]
    waiting, = [a for a in srv.admin("GET", "/anomalies?kind=transfer_waiting") if a["uid"] == old.uid.hex().upper()]
    assert f"terminal {offline.tid} (1 unacked)" in waiting["detail"]
    assert f"terminal {door.tid} " not in waiting["detail"]
    status, body = srv.admin_raw("POST", f"/cards/{leaving.card_no}/cancel", {"refund_to": "bank"})
    assert status == 409 and f"terminal {offline.tid} (1 unacked)" in body["error"] and "force" in body["error"]
    assert leaving.show(srv)["status"] == "active"
    assert offline.upload([held])["rejected"] == []  # all it said it held: nothing held any more
    srv.admin("POST", "/sweep")
    assert [ld[2] for ld in term.loads() if ld[0] == new_key] == [5000 - 1000]
    assert not [a for a in srv.admin("GET", "/anomalies?kind=transfer_waiting") if a["uid"] == old.uid.hex().upper()]
    assert srv.admin("POST", f"/cards/{leaving.card_no}/cancel", {"refund_to": "bank"})["refund"] == 2000
    assert old.audit_differences(srv) == [] and leaving.audit_differences(srv) == []


def test_a_card_blocked_as_a_clone_can_be_replaced_and_its_balance_moves(srv: ServerProcess) -> None:
    srv.admin("PUT", "/settings", {"replacement_fee": 0})
    campus = Campus(srv)
    t1, t2 = campus.terminal(), campus.terminal()
    card = campus.card(money=5000, term=t1)
    copy = Card(card.uid.hex(), card.card_no)
    copy.counter, copy.balance = card.counter, card.balance  # the purse copied onto a blank card
    assert t1.upload([card.buy(t1, 1000)])["rejected"] == []
    assert t2.upload([copy.buy(t2, 3000)])["rejected"] == []
    assert card.show(srv)["status"] == "blocked"
    new = srv.admin("POST", f"/cards/{card.card_no}/replace", {"uid": "04EAEBEC", "card_no": card.card_no + "-C"})
    assert new["status"] == "active" and card.show(srv)["status"] == "replaced"
    srv.advance(73 * HOUR)
    new_key = uidlist.uid_key(bytes.fromhex("04EAEBEC"))
    assert [ld[2] for ld in t1.loads() if ld[0] == new_key] == [5000 - 1000 - 3000]  # what the ledger holds
    assert card.show(srv)["blacklisted"] is not None  # the cloned UID stays refused


def test_a_balance_follows_a_chain_of_replacements_or_is_refunded(srv: ServerProcess) -> None:
    srv.admin("PUT", "/settings", {"replacement_fee": 0})
    campus = Campus(srv)
    term, offline = campus.terminal(), campus.terminal()
    a = campus.card(money=5000, term=term)
    missing = a.buy(offline, 300)  # A's chain waits for this record
    assert term.upload([a.buy(term, 200)])["rejected"] == []
    srv.admin("POST", f"/cards/{a.card_no}/replace", {"uid": "04EBEC01", "card_no": a.card_no + "-B"})
    srv.advance(10 * HOUR)
    srv.admin("POST", f"/cards/{a.card_no}-B/replace", {"uid": "04EBEC02", "card_no": a.card_no + "-C"})
    srv.advance(73 * HOUR)  # B's (empty) balance moves to C; A's waits
    assert offline.upload([missing])["rejected"] == []
    srv.admin("POST", "/sweep")
    key_b, key_c = (uidlist.uid_key(bytes.fromhex(u)) for u in ("04EBEC01", "04EBEC02"))
    assert [ld[2] for ld in term.loads() if ld[0] == key_c] == [5000 - 300 - 200]  # to the card in use
    assert [ld for ld in term.loads() if ld[0] == key_b] == []

    d = campus.card(money=3000, term=term)
    srv.admin("POST", f"/cards/{d.card_no}/replace", {"uid": "04EBEC03", "card_no": d.card_no + "-E"})
    srv.admin("POST", f"/cards/{d.card_no}-E/cancel", {"refund_to": "bank"})  # the new card left at once
    srv.advance(73 * HOUR)
    assert [ld for ld in term.loads() if ld[0] == uidlist.uid_key(bytes.fromhex("04EBEC03"))] == []
    blocked, = [x for x in srv.admin("GET", "/anomalies?kind=transfer_blocked") if x["uid"] == d.uid.hex().upper()]
    assert f"cancel card {d.card_no}" in blocked["detail"]
    assert srv.admin("POST", f"/cards/{d.card_no}/cancel", {"refund_to": "bank"})["refund"] == 3000
    assert not [x for x in srv.admin("GET", "/anomalies?kind=transfer_blocked") if x["uid"] == d.uid.hex().upper()]
    assert d.audit_differences(srv) == [] and a.audit_differences(srv) == []


def test_hole_is_pending_then_quarantined_never_frozen(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term, offline = campus.terminal(), campus.terminal()
    card = campus.card(money=2000, term=term)
    card.buy(offline, 100)  # never uploaded
    assert term.upload([card.buy(term, 100)])["rejected"] == []
    offline.heartbeat(unacked=1, journal_fill=3)
    assert card.show(srv)["chain"]["state"] == "pending"
    srv.advance(25 * HOUR)
    shown = card.show(srv)
    assert shown["chain"]["state"] == "quarantined" and shown["status"] == "active" and shown["blacklisted"] is None
    note, = [a for a in srv.admin("GET", "/anomalies?kind=chain_quarantined") if a["uid"] == card.uid.hex().upper()]
    assert f"terminal {offline.tid} (1 unacked)" in note["detail"]


def test_credit_wallet_load_repays_credit_first(srv: ServerProcess) -> None:
    campus = Campus(srv)
    srv.admin("PUT", "/params?merchant={}".format(campus.merchant["id"]), {"credit_wallet": 1})
    term = campus.terminal()
    assert term.call("params", "params_req", {})["params"]["credit_wallet"] == 1
    card = campus.card(money=500, term=term)
    assert term.upload([card.buy(term, 1200, flags=records.FLAG_CREDIT_USED)])["rejected"] == []
    shown = card.show(srv)
    assert (shown["shadow_balance"], shown["credit_used"]) == (-700, 700)
    srv.admin("POST", f"/cards/{card.card_no}/top-up", {"amount": 1000})
    assert term.upload([card.load(term, 2, 1000)])["rejected"] == []
    shown = card.show(srv)
    assert (shown["shadow_balance"], shown["credit_used"], shown["chain"]["credit_since"]) == (300, 0, None)
    assert card.audit_differences(srv) == []


def test_credit_left_on_a_replaced_card_is_repaid_by_the_new_cards_top_up(srv: ServerProcess) -> None:
    srv.admin("PUT", "/settings", {"replacement_fee": 0})
    campus = Campus(srv)
    srv.admin("PUT", "/params?merchant={}".format(campus.merchant["id"]), {"credit_wallet": 1})
    term = campus.terminal()
    old = campus.card(money=500, term=term)
    assert term.upload([old.buy(term, 1500, flags=records.FLAG_CREDIT_USED)])["rejected"] == []
    assert old.show(srv)["shadow_balance"] == -1000
    srv.admin("POST", f"/cards/{old.card_no}/report-loss")
    srv.admin("POST", f"/cards/{old.card_no}/replace", {"uid": "04ECED01", "card_no": old.card_no + "-N"})
    srv.advance(73 * HOUR)
    new = Card("04ECED01", old.card_no + "-N")
    shown = srv.admin("POST", f"/cards/{new.card_no}/top-up", {"amount": 3000})
    assert [ld["amount"] for ld in shown["loads"] if ld["status"] == "pending"] == [2000]  # 10.00 repaid first
    assert old.show(srv)["shadow_balance"] == 0
    assert old.audit_differences(srv) == [] and new.audit_differences(srv) == []


def test_credit_not_repaid_in_time_freezes_the_card(srv: ServerProcess) -> None:
    srv.admin("PUT", "/settings", {"credit_repay_days": 3})
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=300, term=term)
    assert term.upload([card.buy(term, 800, flags=records.FLAG_CREDIT_USED)])["rejected"] == []
    version = term.blacklist(0)["version"]
    srv.advance(2 * DAY)
    assert card.show(srv)["status"] == "active"
    srv.advance(2 * DAY)
    shown = card.show(srv)
    assert shown["status"] == "frozen" and "credit of 500 not repaid within 3 days" in shown["status_reason"]
    assert card.key in keys_of(term.blacklist(version)["added"])
    status, body = srv.admin_raw("POST", f"/cards/{card.card_no}/top-up", {"amount": 100})
    assert status == 409 and "repays the 500" in body["error"]
    srv.admin("POST", f"/cards/{card.card_no}/top-up", {"amount": 500})
    assert card.show(srv)["status"] == "active"
    assert [ld for ld in term.loads() if ld[0] == card.key] == [(card.key, 2, 500, messages.LOAD_TOPUP)]
    srv.advance(DAY)  # the load is in transit: no second freeze
    assert card.show(srv)["status"] == "active"


def test_a_replacement_is_frozen_while_credit_left_on_its_predecessor_is_not_repaid(srv: ServerProcess) -> None:
    srv.admin("PUT", "/settings", {"replacement_fee": 0, "credit_repay_days": 3})
    campus = Campus(srv)
    srv.admin("PUT", "/params?merchant={}".format(campus.merchant["id"]), {"credit_wallet": 1})
    term = campus.terminal()
    old = campus.card(money=500, term=term)
    assert term.upload([old.buy(term, 1500, flags=records.FLAG_CREDIT_USED)])["rejected"] == []
    srv.admin("POST", f"/cards/{old.card_no}/replace", {"uid": "04EDEE01", "card_no": old.card_no + "-F"})
    new = Card("04EDEE01", old.card_no + "-F")
    srv.advance(2 * DAY)
    assert new.show(srv)["status"] == "active"
    srv.advance(2 * DAY)
    shown = new.show(srv)
    assert shown["status"] == "frozen"
    assert f"credit of 1000 left on replaced card {old.card_no} not repaid within 3 days" in shown["status_reason"]
    status, body = srv.admin_raw("POST", f"/cards/{new.card_no}/top-up", {"amount": 500})
    assert status == 409 and "repays the 1000" in body["error"]
    shown = srv.admin("POST", f"/cards/{new.card_no}/top-up", {"amount": 1200})
    assert shown["status"] == "active" and [ld["amount"] for ld in shown["loads"]] == [200]
    srv.advance(DAY)
    assert new.show(srv)["status"] == "active" and old.show(srv)["shadow_balance"] == 0
    assert old.audit_differences(srv) == [] and new.audit_differences(srv) == []


def test_params_heartbeat_and_server_time(srv: ServerProcess) -> None:
    campus = Campus(srv)
    srv.admin("PUT", "/params?merchant={}".format(campus.merchant["id"]), {"per_txn_limit": 3000})
    term, door = campus.terminal(), campus.terminal("door")
    msg = term.call("params", "params_req", {})
    p = msg["params"]
    assert p["per_txn_limit"] == 3000 and p["daily_limit"] == 20000 and p["utc_offset_s"] == 8 * 3600
    assert p["accepted_types"] == 0b11110 and abs(msg["server_time"] - srv.now()) <= 2
    assert door.call("params", "params_req", {})["params"]["per_txn_limit"] == 3000
    assert term.heartbeat(unacked=7, journal_fill=40, firmware="pos-1.2")["server_time"] > 0
    row, = [t for t in srv.admin("GET", "/terminals") if t["id"] == term.tid]
    assert (row["unacked"], row["journal_fill"], row["firmware"]) == (7, 40, "pos-1.2")
    status, body = srv.admin_raw("PUT", "/params", {"no_such_limit": 5})
    assert status == 400 and "unknown parameter" in body["error"]


def test_identity_cards_at_most_one_year(srv: ServerProcess) -> None:
    now = srv.now()
    status, body = srv.admin_raw("POST", "/cards", {"uid": "04F0F0F0", "card_no": "ID-1", "holder_id": "V1",
                                                    "type": "identity", "valid_until": now + 400 * DAY})
    assert status == 400 and "at most one year" in body["error"]
    status, _ = srv.admin_raw("POST", "/cards", {"uid": "04F0F0F0", "card_no": "ID-1", "holder_id": "V1",
                                                 "type": "identity", "valid_until": now + 300 * DAY})
    assert status == 201
    status, body = srv.admin_raw("POST", "/cards", {"uid": "04F0F0F0", "card_no": "ID-2", "holder_id": "V2",
                                                    "type": "staff", "valid_until": now + DAY})
    assert status == 409 and "already registered" in body["error"]
