"""A fail-secure door on littlefs flash with a small journal: power loss, a full log, and a
restart that keeps the lists. The real firmware under MicroPython against the PN532 emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from firmware import access as acc
from protocol import records as rec
from tests.door_harness import DoorRig, relay_lines

pytestmark = pytest.mark.e2e

OPEN = "门已开 请进 | Door open: come in"
JOURNAL_MAX = 5


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoorRig]:
    r = DoorRig(tmp_path_factory.mktemp("door-secure"), fail_mode="secure", flash="lfs", journal_max=JOURNAL_MAX)
    r.start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def fresh(rig: DoorRig) -> None:
    rig.reset()


def test_fail_secure_lock_stays_locked_without_power_and_cards_still_open_it(rig: DoorRig) -> None:
    rig.param("door_pulse_ms", 600)
    rig.wait_closed()
    out = rig.power(False)
    assert relay_lines(out) == ["closed power-lost"] and rig.relay() == "closed"
    assert rig.screen_of(out) == "停电 电池供电 请刷卡开门 | Power lost: on battery, tap card to open"
    c, stranger = rig.card(grant=0), rig.card()
    out = rig.tap(c)
    assert rig.screen_of(out) == OPEN and relay_lines(out) == ["open 600"]  # on battery
    assert relay_lines(rig.tap(stranger)) == []
    time.sleep(0.8)
    assert relay_lines(rig.send("poll")) == ["closed power-lost"]
    assert [(r.type, r.aux) for r in rig.records()] == [(rec.DOOR_GRANTED, 0), (rec.DOOR_DENIED, acc.DENY_NOT_LISTED)]
    assert relay_lines(rig.power(True)) == ["closed"]


def test_a_full_log_keeps_the_door_shut_until_records_are_acknowledged(rig: DoorRig) -> None:
    c, stranger = rig.card(grant=1), rig.card()
    for _ in range(JOURNAL_MAX):
        assert relay_lines(rig.tap(c)) == ["open 3000"]
    out = rig.tap(c)
    assert rig.screen_of(out) == "记录已满 门禁暂停 请联网同步 | Log full: door closed until it syncs"
    assert relay_lines(out) == []
    assert "No access to this door / journal full" in rig.screen_of(rig.tap(stranger))
    stats = rig.term.stats()
    assert stats["unlogged"] >= 2 and stats["journal_unacked"] == JOURNAL_MAX
    assert len(rig.records()) == JOURNAL_MAX  # nothing was overwritten
    rig.mark()  # the sync client uploaded them and the server acknowledged
    assert relay_lines(rig.tap(c)) == ["open 3000"]
    [r] = rig.records()
    assert r.type == rec.DOOR_GRANTED


def test_lists_and_log_on_littlefs_survive_a_restart(rig: DoorRig) -> None:
    c, gone = rig.card(grant=0), rig.card(grant=1)
    rig.revoke(gone, 1)
    rig.tap(c)
    [before] = rig.raw_records()
    state = rig.access()
    rig.term.stop()
    rig.term.start()
    rig.powered = True
    rig.reset()  # clock and parameters as before (acknowledges the record: the chain must go on)
    assert rig.access() == state
    assert rig.screen_of(rig.tap(c)) == OPEN
    assert rig.screen_of(rig.tap(gone)) == "无权进入此门 | No access to this door"
    recs = rig.raw_records()
    assert [rec.decode(x).type for x in recs] == [rec.DOOR_GRANTED, rec.DOOR_DENIED]
    assert rec.prev_link_of(recs[0]) == rec.link_of(before)  # the chain runs on after the reboot
