"""The per-card chain check (``sync_server.chain``) on its own, with stored records faked."""

from __future__ import annotations

from protocol import records
from sync_server import chain
from sync_server import status as st

KEY = bytes(32)
UID = bytes.fromhex("04A1B2C3")
T0 = 1_800_000_000


def ev(counter: int, before: int, after: int, rtype: int = records.PURCHASE, tid: int = 1, seq: int | None = None,
       aux: int = 0, aux2: int = 0, stored_status: int | None = None, rid: int = 0) -> chain.Event:
    amount = abs(after - before)
    raw = records.build(KEY, records.GENESIS_LINK, rtype, 0, tid, seq or counter, T0 + counter, UID, counter,
                        amount, before, after, aux, aux2)
    if stored_status is None:
        return chain.Event(chain.RECORD.unpack(raw), raw, None, 0)
    return chain.Event.stored({"raw": raw, "rid": rid or counter, "status": stored_status})


class FakeLookup:
    def __init__(self, stored: list[chain.Event] | None = None, in_transit: int = 0) -> None:
        self.stored = stored or []
        self.transit = in_transit

    def records_at(self, uid: bytes, counter: int) -> list[chain.Event]:
        return [e for e in self.stored if e.counter == counter]

    def pending_beyond(self, uid: bytes, head: int) -> list[chain.Event]:
        return [e for e in self.stored if e.counter > head and e.status in (st.PENDING, st.CLONE)]

    def in_transit(self, card_id: int) -> int:
        return self.transit


def state(head: int = 0, balance: int = 0, top: int | None = None, top_balance: int | None = None,
          state_: str = "ok") -> chain.CardState:
    top = head if top is None else top
    return chain.CardState(UID, [9, head, balance, top, balance if top_balance is None else top_balance,
                                 state_, None, None])


def test_records_that_follow_each_other_link() -> None:
    card, fx = state(0, 0), chain.Effects()
    new = [ev(1, 0, 5000, records.LOAD), ev(2, 5000, 3800), ev(3, 3800, 3500)]
    chain.check_card(card, new, FakeLookup(), T0, fx)
    assert [e.status for e in new] == [st.LINKED] * 3
    assert (card.head, card.head_balance, card.top, card.state) == (3, 3500, 3, "ok")
    assert fx.blacklist == [] and fx.anomalies == []


def test_hole_is_pending_not_frozen_then_fills() -> None:
    card, fx = state(2, 3000), chain.Effects()
    late = [ev(5, 2000, 1500), ev(6, 1500, 1000)]
    chain.check_card(card, late, FakeLookup(), T0, fx)
    assert [e.status for e in late] == [st.PENDING, st.PENDING]
    assert (card.head, card.top, card.top_balance, card.state) == (2, 6, 1000, "pending")
    assert fx.blacklist == []
    assert [a[0] for a in fx.anomalies] == ["chain_hole"] and "3..4" in fx.anomalies[0][4]

    stored = [ev(5, 2000, 1500, stored_status=st.PENDING), ev(6, 1500, 1000, stored_status=st.PENDING)]
    fill, fx2 = [ev(3, 3000, 2500), ev(4, 2500, 2000)], chain.Effects()
    chain.check_card(card, fill, FakeLookup(stored), T0, fx2)
    assert [e.status for e in fill] == [st.LINKED, st.LINKED]
    assert sorted(fx2.relinked) == [(st.LINKED, 5), (st.LINKED, 6)]
    assert (card.head, card.head_balance, card.state) == (6, 1000, "ok")
    assert fx2.resolved_holes == [UID]


def test_same_counter_twice_is_a_clone() -> None:
    card, fx = state(3, 3500), chain.Effects()
    genuine = ev(3, 3800, 3500, tid=1, stored_status=st.LINKED)
    clone = ev(3, 3800, 3000, tid=2, seq=40)
    chain.check_card(card, [clone], FakeLookup([genuine]), T0, fx)
    assert clone.status == st.CLONE
    assert card.state == "clone"
    (card_id, uid, reason), = fx.blacklist
    assert card_id == 9 and "counter 3 used twice" in reason and "terminal 2 #40" in reason


def test_purchase_and_its_tearing_repair_are_one_event() -> None:
    card, fx = state(3, 3500), chain.Effects()
    original = ev(3, 3800, 3500, tid=1, seq=17, stored_status=st.LINKED)
    repair = ev(3, 3800, 3500, records.TEARING_REPAIR, tid=2, seq=5, aux=1, aux2=17)
    chain.check_card(card, [repair], FakeLookup([original]), T0, fx)
    assert repair.status == st.SAME_EVENT
    assert fx.blacklist == [] and card.state == "ok"


def test_repair_naming_another_record_is_a_clone() -> None:
    card, fx = state(3, 3500), chain.Effects()
    original = ev(3, 3800, 3500, tid=1, seq=17, stored_status=st.LINKED)
    repair = ev(3, 3800, 3500, records.TEARING_REPAIR, tid=2, seq=5, aux=1, aux2=99)
    chain.check_card(card, [repair], FakeLookup([original]), T0, fx)
    assert repair.status == st.CLONE and card.state == "clone"


def test_higher_balance_than_the_chain_allows_is_forgery() -> None:
    card, fx = state(3, 3500), chain.Effects()
    forged = ev(4, 9000, 8000)
    chain.check_card(card, [forged], FakeLookup(), T0, fx)
    assert forged.status == st.BREAK and card.state == "clone"
    assert "higher than the chain allows" in fx.blacklist[0][2]


def test_lower_balance_is_a_break_for_review_not_a_blacklisting() -> None:
    card, fx = state(3, 3500), chain.Effects()
    drop = ev(4, 3000, 2500)
    chain.check_card(card, [drop], FakeLookup(), T0, fx)
    assert drop.status == st.BREAK and card.state == "break" and fx.blacklist == []
    assert fx.anomalies[0][0] == "balance_drop"


def test_beyond_a_hole_the_bound_counts_loads_in_transit() -> None:
    ok_card, fx = state(3, 3500), chain.Effects()
    chain.check_card(ok_card, [ev(6, 8000, 7000)], FakeLookup(in_transit=5000), T0, fx)
    assert ok_card.state == "pending" and fx.blacklist == []
    bad_card, fx = state(3, 3500), chain.Effects()
    forged = ev(6, 8600, 8000)
    chain.check_card(bad_card, [forged], FakeLookup(in_transit=5000), T0, fx)
    assert forged.status == st.CLONE and bad_card.state == "clone" and len(fx.blacklist) == 1


def test_credit_since_follows_the_latest_balance() -> None:
    card, fx = state(1, 500), chain.Effects()
    chain.check_card(card, [ev(2, 500, -700)], FakeLookup(), T0 + 100, fx)
    assert card.credit_since == T0 + 2  # when the card went into credit, by the record's time
    chain.check_card(card, [ev(3, -700, 300, records.LOAD, aux=1)], FakeLookup(), T0 + 100, fx)
    assert card.credit_since is None


def test_record_layout_matches_protocol_decode() -> None:
    raw = records.build(KEY, b"\x01" * 8, records.TEARING_REPAIR, 0x21, 77, 12, T0, bytes.fromhex("04112233445566"),
                        9, 100, 500, 500, 1001, 44)
    e, r = chain.Event(chain.RECORD.unpack(raw), raw, None, 0), records.decode(raw)
    assert (e.type, e.flags, e.tid, e.seq, e.time, e.counter, e.amount, e.before, e.after, e.aux, e.aux2) == (
        r.type, r.flags, r.terminal_id, r.seq, r.time, r.counter, r.amount, r.balance_before, r.balance_after,
        r.aux, r.aux2)


def test_server_mac_check_agrees_with_protocol() -> None:
    import os

    from sync_server.keys import RecordVerifier

    key = os.urandom(32)
    good = records.build(key, records.GENESIS_LINK, records.PURCHASE, 0, 5, 1, T0, UID, 1, 10, 100, 90)
    bad = bytearray(good)
    bad[30] ^= 1
    for rec in (good, bytes(bad)):
        assert RecordVerifier(key).ok(rec) == records.verify(rec, key)
    assert RecordVerifier(key).ok(good) and not RecordVerifier(key).ok(bytes(bad))
