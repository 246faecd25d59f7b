"""A full journal refuses sales before the card is touched ("journal full — sync needed"),
and selling resumes once the server has acknowledged records."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol import records as rec
from tests.pos_harness import PosRig, screen

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PosRig]:
    r = PosRig(tmp_path_factory.mktemp("pos-journal"), journal_max=4).start()
    yield r
    r.stop()


def test_journal_full_refuses_the_sale_until_acknowledged(rig: PosRig) -> None:
    c = rig.card(balance=10000)
    for i in range(3):  # room is kept for a repair record next to every sale
        assert "Paid 1.00" in screen(rig.sale(c, "1.00")), i
    rig.send("time +60")
    rig.amount("1.00")
    assert screen(rig.tap(c)) == "记录已满 请联网同步 | journal full — sync needed"
    rig.view(c).assert_settled(9700)
    recs = rig.records()
    assert [r.type for r in recs] == [rec.PURCHASE] * 3
    rig.term.service(f"ack {recs[-1].seq}")  # the sync server took them
    assert "Paid 1.00 / Balance 96.00" in screen(rig.tap(c))
    assert [r.seq for r in rig.records()] == [recs[-1].seq + 1]
