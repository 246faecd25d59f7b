"""A card pulled from the reader at every step of a sale, at the application level: the cashier
sees "tap again", the sale stays pending, other cards are refused until it is finished, the
re-tap completes it, and the journal holds exactly one PURCHASE (no double, no lost debit).
(Byte-level tearing of the purse engine itself is tested with firmware/purse.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol import records as rec
from tests.pos_harness import TERMINAL_ID, PosRig, screen

pytestmark = pytest.mark.e2e

STEPS = 30  # more than the card operations of one sale: the last cases pull after it is done
LOAD_STEPS = 40  # the same for a sale that applies a pending load first


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PosRig]:
    r = PosRig(tmp_path_factory.mktemp("pos-pull")).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def ops(rig: PosRig) -> tuple[int, int, int]:
    """Card operations of a balance query (reading only), of a whole sale, and of a sale that
    applies a pending load first."""
    rig.reset()
    c = rig.card(balance=5000)
    card = rig.console.card(c)
    start = card.ops
    rig.send("balance")
    rig.tap(c)
    read = card.ops - start
    start = card.ops
    rig.sale(c, "1.00")
    sale = card.ops - start
    c = rig.card(balance=5000)  # fresh, like the cards of the tests
    card = rig.console.card(c)
    rig.send(f"load {c} 1.00")
    start = card.ops
    rig.sale(c, "1.00")
    with_load = card.ops - start
    assert 10 < read < sale < STEPS and sale < with_load < LOAD_STEPS, (read, sale, with_load)
    return read, sale, with_load


@pytest.fixture(autouse=True)
def fresh(rig: PosRig) -> None:
    rig.send("cancel")
    rig.remove()
    rig.reset()


@pytest.mark.parametrize("step", range(STEPS))
def test_card_pulled_at_every_step(rig: PosRig, ops: tuple[int, int, int], step: int) -> None:
    read_ops, sale_ops, load_ops = ops
    c, other = rig.card(balance=5000), rig.card(balance=5000)
    rig.amount("12.50")
    first = screen(rig.tap(c, pull=step))
    if step >= sale_ops:
        assert "Paid 12.50 / Balance 37.50" in first
    else:
        assert first.startswith("请重新刷卡") and "| Tap again" in first, first
        if step < read_ops:
            rig.view(c).assert_settled(5000)  # pulled while reading: nothing was written
        else:
            assert "Sale not finished" in first
            assert screen(rig.tap(other)) == "请先刷原卡完成交易 | Tap the first card to finish its sale"
            assert "Sale not finished" in screen(rig.amount("3.00"))
            rig.view(other).assert_settled(5000)
        assert "Paid 12.50 / Balance 37.50" in screen(rig.tap(c))
    recs = rig.records()
    assert [(r.type, r.amount, r.balance_before, r.balance_after) for r in recs] == [
        (rec.PURCHASE, 1250, 5000, 3750)], recs
    rig.view(c).assert_settled(3750)
    st = rig.view(c).state()
    assert (st.counter, st.txn_terminal, st.txn_seq) == (1, TERMINAL_ID, recs[0].seq)


def test_pulled_again_while_the_sale_is_being_finished(rig: PosRig, ops: tuple[int, int, int]) -> None:
    read_ops, sale_ops, load_ops = ops
    c = rig.card(balance=5000)
    rig.amount("12.50")
    assert "Tap again" in screen(rig.tap(c, pull=read_ops + 5))
    assert "Tap again" in screen(rig.tap(c, pull=read_ops + 1))  # torn again during the repair
    assert "Paid 12.50 / Balance 37.50" in screen(rig.tap(c))
    assert [r.type for r in rig.records()] == [rec.PURCHASE]
    rig.view(c).assert_settled(3750)


def test_cancelled_pending_sale_is_repaired_on_the_next_tap(rig: PosRig, ops: tuple[int, int, int]) -> None:
    read_ops, sale_ops, load_ops = ops
    c, other = rig.card(balance=5000), rig.card(balance=5000)
    rig.amount("12.50")
    assert "Tap again" in screen(rig.tap(c, pull=sale_ops - 1))  # committed, backup not yet copied
    assert screen(rig.send("cancel")) == "交易已取消 | Cancelled"
    assert "Paid 3.00" in screen(rig.sale(other, "3.00"))
    assert "Paid 1.00 / Balance 36.50" in screen(rig.sale(c, "1.00"))  # the cancelled debit stands
    sale_other, repair, sale = rig.records()
    assert (repair.type, repair.flags, repair.aux, repair.amount) == (rec.TEARING_REPAIR, 0, TERMINAL_ID, 1250)
    assert repair.uid == rig.console.card(c).uid and sale_other.uid != repair.uid
    assert (sale.balance_before, sale.balance_after) == (3750, 3650)
    rig.view(c).assert_settled(3650)


@pytest.mark.parametrize("step", range(10, LOAD_STEPS))
def test_card_pulled_while_a_pending_load_is_applied(rig: PosRig, ops: tuple[int, int, int], step: int) -> None:
    """The load goes on once whatever step the pull hits; the sale then completes on the re-tap."""
    read_ops, sale_ops, load_ops = ops
    c = rig.card(balance=1000)
    rig.send(f"load {c} 50.00")
    rig.amount("5.00")
    first = screen(rig.tap(c, pull=step))
    if step < load_ops:
        assert "Tap again" in first, first
        first = screen(rig.tap(c))
    assert "Paid 5.00 / Balance 55.00" in first
    recs = rig.records()
    assert [(r.type, r.amount, r.balance_before, r.balance_after) for r in recs] == [
        (rec.LOAD, 5000, 1000, 6000), (rec.PURCHASE, 500, 6000, 5500)], recs
    assert recs[0].aux == 1
    v = rig.view(c)
    assert v.load_seq() == 1
    v.assert_settled(5500)
