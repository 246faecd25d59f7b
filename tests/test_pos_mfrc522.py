"""The same POS firmware on the MFRC522 reader (SPI bridge) with its flash on a littlefs
image: a sale, a 7-byte UID, a pull mid-debit, and a reboot that keeps the journal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol import records as rec
from tests.pos_harness import PosRig, screen

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PosRig]:
    r = PosRig(tmp_path_factory.mktemp("pos-rc522"), reader="mfrc522", flash="lfs").start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def fresh(rig: PosRig) -> None:
    rig.send("cancel")
    rig.remove()
    rig.reset()


def test_sale_on_mfrc522(rig: PosRig) -> None:
    c = rig.card(balance=10000)
    assert "Paid 12.50 / Balance 87.50" in screen(rig.sale(c, "12.50"))
    [r] = rig.records()
    assert (r.type, r.amount, r.balance_after) == (rec.PURCHASE, 1250, 8750)
    rig.view(c).assert_settled(8750)


def test_seven_byte_uid_on_mfrc522(rig: PosRig) -> None:
    c = rig.card(balance=10000, seven=True)
    assert "Paid 2.00" in screen(rig.sale(c, "2.00"))
    assert len(rig.records()[0].uid) == 7


def test_pull_mid_debit_then_retap_on_mfrc522(rig: PosRig) -> None:
    c = rig.card(balance=10000)
    rig.send("time +60")
    rig.amount("12.50")
    assert "Tap again" in screen(rig.tap(c, pull=20))  # after the new state, in the value operations
    assert "Paid 12.50 / Balance 87.50" in screen(rig.tap(c))
    assert [r.type for r in rig.records()] == [rec.PURCHASE]
    rig.view(c).assert_settled(8750)


def test_journal_survives_a_reboot_on_littlefs(rig: PosRig) -> None:
    c = rig.card(balance=10000)
    rig.sale(c, "1.00")
    before = rig.raw_records()
    rig.term.stop()
    rig.term.start()
    rig.reset()  # net up, clock, parameters: the journal is acknowledged up to here
    after_boot = rig.raw_records()
    assert after_boot == []
    assert "Paid 1.00" in screen(rig.sale(c, "1.00"))
    [r] = rig.records()
    assert r.seq == rec.seq_of(before[-1]) + 1
    assert r.link == rec.link_of(before[-1])  # the chain continues across the reboot
