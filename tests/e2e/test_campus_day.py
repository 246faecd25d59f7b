"""End to end, real processes: one sync server, two POS tills and a dorm door running the
firmware under MicroPython over loopback, through a network link the test can cut."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import records
from terminal_sim.campus import Campus, Unit

pytestmark = pytest.mark.e2e


def paid(screens: list[str]) -> bool:
    return any("Paid" in s for s in screens)


def stored_records(campus: Campus) -> int:
    return len(campus.stored())


@pytest.fixture()
def campus(tmp_path: Path) -> Iterator[Campus]:
    with Campus(tmp_path / "campus") as c:
        yield c


def test_day_of_sales_network_cut_and_reconciliation(campus: Campus) -> None:
    canteen = campus.merchant("North canteen", double_tap_gap_s=0, credit_auto_after_s=1, offline_ceiling=0)
    tills = [campus.pos("till-1", canteen), campus.pos("till-2", canteen)]
    names = ["amy", "ben", "cai", "dan", "eva", "fay"]
    cards = [campus.card(n, f"04{i + 1:02X}A0B0", "student", balance=5000) for i, n in enumerate(names)]
    for t in tills:
        assert campus.sync(t)["online"] == "1"

    # a day of sales: three meals' worth, each card at both tills
    sold = 0
    made = 0
    for round_ in range(3):
        for i, card in enumerate(cards):
            till = tills[(i + round_) % 2]
            assert paid(campus.sale(till, card, 350 + 10 * i)), f"{card.name} round {round_}"
            sold += 350 + 10 * i
            made += 1
    made += len(cards)  # each card's first tap collected its opening top-up: a LOAD record
    for t in tills:
        assert campus.sync(t)["unacked"] == "0"
    assert stored_records(campus) == made
    assert campus.audit()["ok"]

    # the network goes down: sales go on from the cards, records pile up on flash
    campus.cut_network()
    for t in tills:
        assert campus.sync(t)["online"] == "0"
    time.sleep(1.2)  # credit_auto_after_s: the emergency credit wallet engages by itself
    low = cards[0]
    before = campus.balance(low)
    screens = campus.sale(tills[0], low, before + 500)  # more than the card holds
    assert paid(screens), screens
    assert campus.balance(low) == -500
    offline = 1
    for card in cards[1:]:
        assert paid(campus.sale(tills[1], card, 200))
        offline += 1
    waiting = [r for t in tills for r in t.journal()]
    assert len(waiting) == offline
    assert all(r.flags & records.FLAG_OFFLINE for r in waiting)
    credit = [r for r in waiting if r.flags & records.FLAG_CREDIT_USED]
    assert [(r.uid, r.balance_after) for r in credit] == [(low.uid, -500)]
    assert stored_records(campus) == made  # nothing reached the server

    # the link returns: everything uploads, nothing is lost, the ledger balances
    campus.restore_network()
    for t in tills:
        report = campus.sync(t)
        assert (report["online"], report["unacked"]) == ("1", "0"), report
    assert stored_records(campus) == made + offline
    audit = campus.audit()
    assert audit["ok"], audit
    balances = {row["kind"]: row["balance"] for row in audit["balances"]}
    assert balances["merchant"] == sold + before + 500 + 200 * (len(cards) - 1)
    assert audit["journal_sum"] == 0


def test_lost_card_refused_by_every_terminal_within_one_sync_interval(tmp_path: Path) -> None:
    interval = 3
    with Campus(tmp_path / "campus", sync_interval_s=interval, poll_ms=100) as campus:
        canteen = campus.merchant("East canteen", double_tap_gap_s=0)
        tills: list[Unit] = [campus.pos("till-1", canteen), campus.pos("till-2", canteen)]
        door = campus.door("dorm-door", campus.merchant("Dorm 5"))
        lost = campus.card("gus", "04AA0001", "student", balance=3000)
        group = campus.admin("POST", "/doors/groups", {"name": "Building 5"})
        campus.admin("POST", f"/doors/groups/{group['id']}/assign", {"terminal_id": door.tid})
        campus.admin("POST", f"/doors/groups/{group['id']}/grant", {"card": "04AA0001"})
        for t in tills:
            campus.sync(t)
            assert paid(campus.sale(t, lost, 100))
        campus.sync(door)
        assert any("Door open" in s for s in campus.tap(door, lost))
        campus.admin("POST", "/cards/04AA0001/report-loss", {"reason": "lost on the bus"})
        reported = time.monotonic()
        # no "sync" line from here on: the terminals sync by themselves between taps
        time.sleep(interval + 1.0)
        for t in tills:
            screens = campus.sale(t, lost, 100)
            assert not paid(screens) and any("lost" in s for s in screens), (t.name, screens)
        screens = campus.tap(door, lost)
        assert not any("Door open" in s for s in screens) and any("lost" in s for s in screens), screens
        assert time.monotonic() - reported < interval + 3
        denial = [r for r in door.journal() if r.type == records.DOOR_DENIED]
        assert [r.uid for r in denial] == [lost.uid]


def test_dorm_manager_revokes_and_the_door_denies_at_the_next_sync(campus: Campus) -> None:
    door = campus.door("dorm-door", campus.merchant("Dorm 7"))
    kim = campus.card("kim", "04BB0002", "student")
    lee = campus.card("lee", "04BB0003", "temporary")
    group = campus.admin("POST", "/doors/groups", {"name": "Building 7"})
    campus.admin("POST", f"/doors/groups/{group['id']}/assign", {"terminal_id": door.tid})
    campus.admin("POST", f"/doors/groups/{group['id']}/grant", {"card": "04BB0002"})
    campus.admin("POST", f"/doors/groups/{group['id']}/grant-group", {"card_group": "residents", "cards": ["04BB0003"]})
    assert campus.sync(door)["online"] == "1"
    assert any("Door open" in s for s in campus.tap(door, kim))
    # a temporary card gets nothing from a group grant: only an individual grant opens doors
    assert any("No access" in s for s in campus.tap(door, lee))

    campus.admin("POST", f"/doors/groups/{group['id']}/revoke", {"card": "04BB0002"})
    assert any("Door open" in s for s in campus.tap(door, kim))  # the door has not synced yet
    campus.sync(door)
    assert any("No access" in s for s in campus.tap(door, kim))
    campus.sync(door)  # the door's log goes to the server like sales
    assert door.journal() == []
    decisions = [(r.type, r.uid) for r in campus.stored(door)]
    assert decisions == [(records.DOOR_GRANTED, kim.uid), (records.DOOR_DENIED, lee.uid),
                         (records.DOOR_GRANTED, kim.uid), (records.DOOR_DENIED, kim.uid)]
