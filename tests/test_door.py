"""Door scenarios: the real firmware (role "door") under MicroPython (heap: its code + 64 KB)
against the PN532 emulator, driven through the door console. Each test asserts on what the
person at the door sees, on what the lock relay does and on the signed journal records."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware import access as acc
from firmware.uidstore import UidStore
from protocol import card_layout as cl
from protocol import records as rec
from protocol import uidlist
from tests.door_harness import NOON, DoorRig, relay_lines
from tests.pos_harness import TERMINAL_ID, local_time

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
OPEN = "门已开 请进 | Door open: come in"
NOT_ALLOWED = "无权进入此门 | No access to this door"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoorRig]:
    r = DoorRig(tmp_path_factory.mktemp("door")).start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def fresh(rig: DoorRig) -> None:
    rig.reset()


def decision(rig: DoorRig) -> tuple[int, int]:
    """Type and aux of the one record since the last mark; marks it."""
    recs = rig.records()
    assert len(recs) == 1, f"expected one record, got {recs}"
    rig.mark()
    return recs[0].type, recs[0].aux


# -- grants and denials ------------------------------------------------------------------------


def test_listed_card_opens_the_lock_and_is_recorded(rig: DoorRig) -> None:
    c = rig.card(grant=0)
    out = rig.tap(c)
    assert rig.screen_of(out) == OPEN
    assert relay_lines(out) == ["open 3000"]
    [r] = rig.records()
    assert (r.type, r.aux, r.terminal_id, r.time) == (rec.DOOR_GRANTED, acc.GRANTED, TERMINAL_ID, NOON)
    assert (r.counter, r.amount, r.balance_before, r.balance_after, r.meal_period, r.flags) == (0, 0, 0, 0, 0, 0)
    assert r.uid == rig.console.card(c).uid and r.aux2 == rig.access()["version"]


def test_seven_byte_uid_on_the_anytime_list_opens(rig: DoorRig) -> None:
    c = rig.card(card_type="staff", seven=True, grant=1)
    assert rig.screen_of(rig.tap(c)) == OPEN
    assert decision(rig) == (rec.DOOR_GRANTED, acc.GRANTED)


def test_card_on_no_list_is_denied_and_the_lock_stays_shut(rig: DoorRig) -> None:
    c = rig.card()
    out = rig.tap(c)
    assert rig.screen_of(out) == NOT_ALLOWED and relay_lines(out) == []
    assert decision(rig) == (rec.DOOR_DENIED, acc.DENY_NOT_LISTED)


def test_blacklisted_card_is_denied_although_listed(rig: DoorRig) -> None:
    c = rig.card(grant=1)
    rig.send(f"blacklist add {c}")
    out = rig.tap(c)
    assert rig.screen_of(out) == "此卡已挂失或冻结 | Card reported lost or frozen" and relay_lines(out) == []
    assert decision(rig) == (rec.DOOR_DENIED, acc.DENY_BLACKLISTED)
    rig.send(f"blacklist remove {c}")  # found again: un-reported
    assert rig.screen_of(rig.tap(c)) == OPEN


def test_expired_and_not_yet_valid_cards_are_denied(rig: DoorRig) -> None:
    now = int(time.time())
    old = rig.card(valid_from=now - 400 * 86400, valid_until=NOON - 60, grant=0)
    assert rig.screen_of(rig.tap(old)) == "此卡已过期 | Card expired"
    assert decision(rig) == (rec.DOOR_DENIED, acc.DENY_EXPIRED)
    early = rig.card(valid_from=NOON + 3600, valid_until=NOON + 86400 * 300, grant=0)
    assert rig.screen_of(rig.tap(early)) == "此卡尚未生效 | Card not yet valid"
    assert decision(rig) == (rec.DOOR_DENIED, acc.DENY_NOT_YET_VALID)


def test_identity_altered_without_the_issuer_key_is_denied(rig: DoorRig) -> None:
    c = rig.card(card_type="temporary", grant=0)
    card = rig.console.card(c)
    blk = bytearray(card.block(cl.BLOCK_IDENTITY))
    blk[12:16] = (2**32 - 1).to_bytes(4, "little")  # stretch the validity: the MAC no longer matches
    card.set_block(cl.BLOCK_IDENTITY, bytes(blk))
    out = rig.tap(c)
    assert "Card data failed verification" in rig.screen_of(out) and relay_lines(out) == []
    assert decision(rig) == (rec.DOOR_DENIED, acc.DENY_IDENTITY_MAC)


def test_card_of_another_system_is_denied(rig: DoorRig) -> None:
    c = rig.card(card_master=secrets.token_bytes(16))
    rig.grant(c, 0)  # even listed: its keys are not ours
    assert rig.screen_of(rig.tap(c)) == "非本系统卡 | Not a campus card"
    assert decision(rig) == (rec.DOOR_DENIED, acc.DENY_NOT_CAMPUS)


def test_temporary_card_enters_only_with_an_individual_grant(rig: DoorRig) -> None:
    c = rig.card(card_type="temporary")
    assert rig.screen_of(rig.tap(c)) == NOT_ALLOWED
    rig.grant(c, 0)  # the dorm manager's individual grant reaches the door's list
    assert rig.screen_of(rig.tap(c)) == OPEN
    rig.revoke(c, 0)  # the grant expired: the server's delta takes it off
    assert rig.screen_of(rig.tap(c)) == NOT_ALLOWED
    assert [(r.type, r.aux) for r in rig.records()] == [
        (rec.DOOR_DENIED, acc.DENY_NOT_LISTED), (rec.DOOR_GRANTED, 0), (rec.DOOR_DENIED, acc.DENY_NOT_LISTED)]


def test_revoked_card_is_denied_at_once(rig: DoorRig) -> None:
    c = rig.card(grant=0)
    assert rig.screen_of(rig.tap(c)) == OPEN
    v = rig.access()["version"]
    rig.revoke(c, 0)
    assert rig.access()["version"] == v + 1
    assert rig.screen_of(rig.tap(c)) == NOT_ALLOWED
    granted, denied = rig.records()
    assert (granted.aux2, denied.aux2, denied.aux) == (v, v + 1, acc.DENY_NOT_LISTED)


# -- curfew ---------------------------------------------------------------------------------------


def test_curfew_only_the_anytime_list_enters(rig: DoorRig) -> None:
    rig.param("door_curfew_start", 23 * 60 + 30)  # 23:30 .. 06:00, across midnight
    rig.param("door_curfew_end", 6 * 60)
    resident, manager = rig.card(grant=0), rig.card(card_type="staff", grant=1)
    rig.send(f"time {local_time(23, 45)}")
    assert rig.screen_of(rig.tap(resident)) == "门禁时段 暂停通行 | Curfew: no entry now"
    assert rig.screen_of(rig.tap(manager)) == OPEN
    rig.send(f"time {local_time(5, 59, days=1)}")
    assert rig.screen_of(rig.tap(resident)) == "门禁时段 暂停通行 | Curfew: no entry now"
    rig.send(f"time {local_time(6, 0, days=1)}")
    assert rig.screen_of(rig.tap(resident)) == OPEN
    assert [(r.type, r.aux) for r in rig.records()] == [
        (rec.DOOR_DENIED, acc.DENY_CURFEW), (rec.DOOR_GRANTED, 0), (rec.DOOR_DENIED, acc.DENY_CURFEW),
        (rec.DOOR_GRANTED, 0)]


# -- one decision per tap, relay, power, network ----------------------------------------------------


def test_card_held_on_the_reader_is_decided_once(rig: DoorRig) -> None:
    c = rig.card(grant=0)
    out = rig.console.place(c)
    for _ in range(5):
        out += rig.send("poll")
    assert relay_lines(out) == ["open 3000"] and len(rig.records()) == 1
    rig.console.remove()
    stranger = rig.card()
    out = rig.console.place(stranger)
    for _ in range(3):
        out += rig.send("poll")
    rig.console.remove()
    assert rig.screen_of(out) == NOT_ALLOWED and len(rig.records()) == 2  # one denial, not four
    assert relay_lines(rig.tap(c)) == ["open 3000"] and len(rig.records()) == 3  # a new tap


def test_the_pulse_ends_after_door_pulse_ms(rig: DoorRig) -> None:
    rig.param("door_pulse_ms", 800)
    c = rig.card(grant=0)
    assert relay_lines(rig.tap(c)) == ["open 800"]
    assert rig.relay() == "open"
    time.sleep(1.0)
    out = rig.send("poll")
    assert relay_lines(out) == ["closed"] and rig.relay() == "closed"


def test_fail_safe_lock_opens_on_power_loss_and_closes_when_it_returns(rig: DoorRig) -> None:
    rig.wait_closed()
    out = rig.power(False)
    assert relay_lines(out) == ["open power-lost"] and rig.relay() == "open"
    assert rig.screen_of(out) == "停电 门锁已释放 | Power lost: lock released (fail-safe)"
    c = rig.card()
    assert rig.screen_of(rig.tap(c)) == NOT_ALLOWED  # taps are still checked and logged
    assert decision(rig) == (rec.DOOR_DENIED, acc.DENY_NOT_LISTED)
    out = rig.power(True)
    assert relay_lines(out) == ["closed"] and rig.relay() == "closed"


def test_network_down_keeps_the_lists_and_flags_the_records(rig: DoorRig) -> None:
    c, stranger = rig.card(grant=0), rig.card()
    rig.send(f"net down {NOON - 600}")
    assert rig.screen_of(rig.tap(c)) == OPEN
    assert rig.screen_of(rig.tap(stranger)) == NOT_ALLOWED
    assert [(r.type, r.flags) for r in rig.records()] == [
        (rec.DOOR_GRANTED, rec.FLAG_OFFLINE), (rec.DOOR_DENIED, rec.FLAG_OFFLINE)]


# -- journal ---------------------------------------------------------------------------------------


def test_records_are_signed_chained_and_continue_after_an_acknowledgement(rig: DoorRig) -> None:
    a, b = rig.card(grant=0), rig.card()
    rig.tap(a)
    rig.tap(b)
    raws = rig.raw_records()
    assert len(raws) == 2 and [records_type(x) for x in raws] == [rec.DOOR_GRANTED, rec.DOOR_DENIED]
    rig.term.service(f"ack {rec.seq_of(raws[-1])}")  # uploaded: the server acknowledged them
    assert rig.raw_records() == []
    rig.tap(a)
    [raw] = rig.raw_records()
    rec.check(raw, rig.console.terminal_key)
    assert rec.seq_of(raw) == rec.seq_of(raws[-1]) + 1
    assert rec.prev_link_of(raw) == rec.link_of(raws[-1])  # the chain runs on across the ack
    tampered = bytearray(raw)
    tampered[40] ^= 1  # a denial rewritten as a grant, or a reason changed, breaks the MAC
    assert not rec.verify(bytes(tampered), rig.console.terminal_key)


def records_type(raw: bytes) -> int:
    return rec.decode(raw).type


# -- 20,000 cards ------------------------------------------------------------------------------------


def _tap_heap(rig: DoorRig, names: list[str]) -> int:
    rig.send("stats reset")
    for n in names:
        rig.tap(n)
    return int(rig.term.stats()["heap_high"])


def test_twenty_thousand_cards_on_the_list_cost_no_heap(rig: DoorRig) -> None:
    names = [rig.card() for _ in range(4)]
    for n in names:
        rig.grant(n, 0)
    rig.send("stats probe")
    small = _tap_heap(rig, names)
    # A technician copies a 20,000-card list (with these cards) onto the door's flash.
    uids = [rig.console.card(n).uid for n in names] + [bytes([4, 0x55, i >> 8, i & 0xFF]) for i in range(19996)]
    store = UidStore(str(rig.console.workspace / "flash" / "access" / "allow"))
    store.replace_full(1000, uidlist.pack(uids))
    store._close()
    rig.term.service("access reload")
    assert rig.access()["lists"][0][:2] == [1000, 20000]
    big = _tap_heap(rig, names)
    rig.send("stats noprobe")
    recs = rig.records()
    assert [r.type for r in recs] == [rec.DOOR_GRANTED] * 8
    assert abs(big - small) <= 256, f"tap heap high-water {small} B with 4 cards, {big} B with 20,000"


# -- the console command ---------------------------------------------------------------------------


def test_sim_door_command_runs_a_door(tmp_path: Path) -> None:
    script = "lists\npower off\ntap alice\ntap carol\ntime 23:45\nparam door_curfew_start 1410\n" \
             "param door_curfew_end 360\ntap dave\ntap bob\njournal\nquit\n"
    proc = subprocess.run([sys.executable, "-m", "tools", "sim", "door", "--workspace", str(tmp_path),
                           "--fail-mode", "secure"], input=script, capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "lock: fail-secure" in out and "list 1 anytime  version 1  1 cards" in out
    assert "[ 门已开 请进 | Door open: come in ]\n  RELAY open 3000" in out
    assert "[ 无权进入此门 | No access to this door ]" in out
    assert "[ 门禁时段 暂停通行 | Curfew: no entry now ]" in out
    assert "RELAY closed power-lost" in out and "Power lost: on battery" in out
    journal = [x.split("#", 1)[1] for x in out.splitlines() if " door-" in x]  # "door> " prompts included
    assert [x.split()[1] for x in journal] == ["door-granted", "door-denied", "door-denied", "door-granted"]
    assert all(x.endswith("signed") for x in journal) and "curfew" in journal[2]


def test_sim_door_with_the_mfrc522_reader(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tools", "sim", "door", "--workspace", str(tmp_path),
                           "--reader", "mfrc522"], input="tap bob\ntap erin\nquit\n", capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "[ 门已开 请进 | Door open: come in ]\n  RELAY open 3000" in proc.stdout  # a 7-byte UID
    assert "[ 此卡已过期 | Card expired ]" in proc.stdout
