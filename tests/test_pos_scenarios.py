"""POS scenarios: the real firmware under MicroPython (heap: its code + 64 KB) against the PN532
emulator, driven through the cashier console. Each test asserts on what the cashier sees,
on the signed journal records and on the virtual card's memory."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from firmware.purse import Purse
from protocol import card_layout as cl
from protocol import records as rec
from tests.pos_harness import LUNCH, TERMINAL_ID, DirectReader, PosRig, local_time, screen

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PosRig]:
    r = PosRig(tmp_path_factory.mktemp("pos")).start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def fresh(rig: PosRig) -> None:
    rig.send("cancel")
    rig.remove()
    rig.reset()


def purchases(recs: list[rec.Record]) -> list[rec.Record]:
    return [r for r in recs if r.type == rec.PURCHASE]


# -- sale and balance ------------------------------------------------------------------------


def test_normal_sale(rig: PosRig) -> None:
    c = rig.card(balance=10000)
    assert screen(rig.amount("12.50")) == "请刷卡 12.50元 | Tap card: 12.50"
    assert "Paid 12.50 / Balance 87.50" in screen(rig.tap(c))
    [r] = rig.records()
    assert (r.type, r.terminal_id, r.amount, r.balance_before, r.balance_after, r.counter) == (
        rec.PURCHASE, TERMINAL_ID, 1250, 10000, 8750, 1)
    assert r.uid == rig.console.card(c).uid and r.flags == 0 and r.meal_period == 2
    v = rig.view(c)
    v.assert_settled(8750)
    st = v.state()
    assert (st.counter, st.day_total, st.txn_terminal, st.txn_seq) == (1, 1250, TERMINAL_ID, r.seq)


def test_seven_byte_uid_card_pays(rig: PosRig) -> None:
    c = rig.card(balance=3000, card_type="staff", seven=True)
    assert "Paid 5.00 / Balance 25.00" in screen(rig.sale(c, "5.00"))
    assert len(rig.records()[0].uid) == 7


def test_balance_key_shows_balance_without_debit(rig: PosRig) -> None:
    c = rig.card(balance=4321)
    assert screen(rig.send("balance")) == "请刷卡查询余额 | Tap card for balance"
    assert "Balance 43.21" in screen(rig.tap(c))
    assert rig.records() == []
    rig.view(c).assert_settled(4321)


def test_initial_pin_reminder_shown_until_changed(rig: PosRig) -> None:
    c = rig.card()
    assert "Please change your initial PIN" in screen(rig.sale(c, "1.00"))


# -- limits and the PIN ------------------------------------------------------------------------


def test_per_transaction_limit_asks_for_pin(rig: PosRig) -> None:
    c = rig.card(balance=20000)
    rig.amount("60.00")
    assert screen(rig.place(c)).endswith("Over the per-transaction limit / Enter transaction PIN")
    assert "Paid 60.00 / Balance 140.00" in screen(rig.send("pin 123456"))
    [r] = rig.records()
    assert r.flags == rec.FLAG_PIN_VERIFIED and r.amount == 6000
    rig.view(c).assert_settled(14000)


def test_at_the_limit_no_pin(rig: PosRig) -> None:
    c = rig.card(balance=20000)
    assert "Paid 50.00" in screen(rig.sale(c, "50.00"))
    assert rig.records()[0].flags == 0


def test_meal_limit_asks_for_pin_then_next_meal_is_fresh(rig: PosRig) -> None:
    rig.param("meal_limit", 3000)
    c = rig.card(balance=20000)
    assert "Paid 20.00" in screen(rig.sale(c, "20.00"))
    rig.send("time +60")
    rig.amount("15.00")
    assert "Over the meal-period limit" in screen(rig.place(c))
    assert "Paid 15.00" in screen(rig.send("pin 123456"))
    rig.remove()
    rig.send(f"time {local_time(18, 0)}")  # dinner: a new meal period
    assert "Paid 15.00" in screen(rig.sale(c, "15.00"))
    recs = purchases(rig.records())
    assert [(r.amount, r.flags, r.meal_period) for r in recs] == [
        (2000, 0, 2), (1500, rec.FLAG_PIN_VERIFIED, 2), (1500, 0, 3)]
    assert rig.view(c).state().meal_total == 1500


def test_daily_limit_asks_for_pin_then_next_day_is_fresh(rig: PosRig) -> None:
    rig.param("daily_limit", 6000)
    c = rig.card(balance=20000)
    assert "Paid 40.00" in screen(rig.sale(c, "40.00"))
    rig.send("time +60")
    rig.amount("30.00")
    assert "Over the daily limit" in screen(rig.place(c))
    assert "Paid 30.00" in screen(rig.send("pin 123456"))
    rig.remove()
    rig.send(f"time {local_time(12, 0, days=1)}")
    assert "Paid 40.00" in screen(rig.sale(c, "40.00"))
    assert [r.flags for r in purchases(rig.records())] == [0, rec.FLAG_PIN_VERIFIED, 0]
    assert rig.view(c).state().day_total == 4000


def test_wrong_pins_count_on_the_card_and_lock_it(rig: PosRig) -> None:
    c = rig.card(balance=20000)
    rig.amount("60.00")
    rig.place(c)
    assert screen(rig.send("pin 000000")) == "密码错误 还可输入2次 | Wrong PIN: 2 tries left"
    assert rig.view(c).state().pin_retries == 1
    assert "Wrong PIN: 1 tries left" in screen(rig.send("pin 111111"))
    assert "Too many wrong PINs: PIN locked" in screen(rig.send("pin 222222"))
    st = rig.view(c).state()
    assert st.flags & cl.FLAG_PIN_LOCKED and st.pin_retries == 3
    [r] = rig.records()
    assert (r.type, r.aux, r.amount, r.balance_after) == (rec.PIN_LOCK, 3, 0, 20000)
    rig.remove()
    rig.send("time +60")
    rig.amount("60.00")
    assert "PIN locked: the card office must reset it" in screen(rig.tap(c))
    rig.send("cancel")
    assert "Paid 5.00" in screen(rig.sale(c, "5.00"))  # below every limit no PIN is needed
    rig.view(c).assert_settled(19500)


def test_right_pin_clears_the_wrong_count(rig: PosRig) -> None:
    c = rig.card(balance=20000)
    rig.amount("60.00")
    rig.place(c)
    rig.send("pin 999999")
    assert "Paid 60.00" in screen(rig.send("pin 123456"))
    assert rig.view(c).state().pin_retries == 0


def test_pin_entered_without_the_card_waits_for_it(rig: PosRig) -> None:
    c = rig.card(balance=20000)
    rig.amount("60.00")
    assert "Enter transaction PIN" in screen(rig.tap(c))
    assert screen(rig.send("pin 123456")) == "请重新刷卡 | Tap again"
    assert "Paid 60.00" in screen(rig.tap(c))


def test_pin_change(rig: PosRig) -> None:
    c = rig.card(balance=20000)
    assert screen(rig.send("pinchange")) == "请刷卡修改密码 | Tap card to change PIN"
    assert "Enter old PIN" in screen(rig.place(c))
    assert "Enter new PIN" in screen(rig.send("pin 123456"))
    assert "Enter new PIN again" in screen(rig.send("pin 246810"))
    assert "New PINs do not match / Enter new PIN" in screen(rig.send("pin 246811"))
    rig.send("pin 246810")
    assert screen(rig.send("pin 246810")) == "密码修改成功 | PIN changed"
    rig.remove()
    [r] = rig.records()
    assert (r.type, r.amount, r.balance_before, r.balance_after, r.counter) == (rec.PIN_CHANGE, 0, 20000, 20000, 0)
    st = rig.view(c).state()
    assert not st.flags & cl.FLAG_INITIAL_PIN
    assert st.pin_check == cl.pin_check_int(rig.view(c).key, rig.console.card(c).uid, "246810")
    rig.send("time +60")
    rig.amount("60.00")
    rig.place(c)
    assert "Wrong PIN" in screen(rig.send("pin 123456"))
    out = screen(rig.send("pin 246810"))
    assert "Paid 60.00" in out and "initial PIN" not in out


def test_pin_change_with_wrong_old_pin_counts(rig: PosRig) -> None:
    c = rig.card()
    rig.send("pinchange")
    rig.place(c)
    assert "Wrong PIN: 2 tries left" in screen(rig.send("pin 654321"))
    assert rig.view(c).state().pin_retries == 1
    assert rig.records() == []


# -- cards refused ---------------------------------------------------------------------------


def test_blacklisted_card_refused_and_sale_stays_open(rig: PosRig) -> None:
    lost, other = rig.card(), rig.card()
    rig.send(f"blacklist add {lost}")
    rig.amount("8.00")
    assert screen(rig.tap(lost)) == "此卡已挂失或冻结 | Card reported lost or frozen"
    rig.view(lost).assert_settled(10000)
    assert "Paid 8.00" in screen(rig.tap(other))
    assert [r.uid for r in rig.records()] == [rig.console.card(other).uid]
    rig.send(f"blacklist remove {lost}")
    assert "Paid 8.00" in screen(rig.sale(lost, "8.00"))


def test_expired_card_refused(rig: PosRig) -> None:
    c = rig.card(valid_from=LUNCH - 400 * 86400, valid_until=LUNCH - 3600)
    rig.amount("8.00")
    assert screen(rig.tap(c)) == "此卡已过期 | Card expired"
    assert rig.records() == []
    rig.view(c).assert_settled(10000)


def test_wrong_card_type_refused(rig: PosRig) -> None:
    rig.param("accepted_types", 0b00110)  # staff and student only
    temp, student = rig.card(card_type="temporary"), rig.card()
    rig.amount("8.00")
    assert "Card type not accepted here" in screen(rig.tap(temp))
    assert "Paid 8.00" in screen(rig.tap(student))
    rig.view(temp).assert_settled(10000)


def test_forged_balance_refused(rig: PosRig) -> None:
    c = rig.card(balance=1000)
    card = rig.console.card(c)
    for block in (cl.BLOCK_BALANCE, cl.BLOCK_BACKUP):  # a cloner's raise, around the MACs
        card.set_block(block, cl.encode_value_block(100000, cl.BLOCK_BALANCE))
    rig.amount("8.00")
    assert "Card data failed verification" in screen(rig.tap(c))
    assert rig.records() == []
    assert rig.view(c).value(cl.BLOCK_BALANCE) == 100000


def test_forged_identity_refused(rig: PosRig) -> None:
    c = rig.card(card_type="temporary")
    card = rig.console.card(c)
    blk = bytearray(card.block(cl.BLOCK_IDENTITY))
    blk[1] = cl.CARD_STAFF  # promote the card without the issuer key
    card.set_block(cl.BLOCK_IDENTITY, bytes(blk))
    rig.amount("8.00")
    assert "Card data failed verification" in screen(rig.tap(c))
    assert rig.records() == []


def test_card_of_another_system_refused(rig: PosRig) -> None:
    c = rig.card(card_master=secrets.token_bytes(16))
    rig.amount("8.00")
    assert screen(rig.tap(c)) == "非本系统卡 | Not a campus card"
    assert rig.records() == []


# -- credit wallet -----------------------------------------------------------------------------


def test_credit_wallet_off_refuses_overdraft(rig: PosRig) -> None:
    c = rig.card(balance=1000)
    rig.amount("15.00")
    assert screen(rig.tap(c)) == "余额不足 余额10.00元 | Insufficient balance: 10.00"
    rig.view(c).assert_settled(1000)
    assert rig.records() == []


def test_credit_wallet_on_allows_down_to_the_limit(rig: PosRig) -> None:
    rig.param("credit_wallet", 1)
    c = rig.card(balance=1000)
    assert "Paid 15.00 / Credit used: 5.00" in screen(rig.sale(c, "15.00"))
    rig.send("time +60")
    rig.amount("15.01")
    assert "Insufficient balance: -5.00" in screen(rig.tap(c))
    rig.send("cancel")
    assert "Paid 15.00 / Credit used: 20.00" in screen(rig.sale(c, "15.00"))
    recs = rig.records()
    assert [(r.balance_after, r.flags) for r in recs] == [(-500, rec.FLAG_CREDIT_USED), (-2000, rec.FLAG_CREDIT_USED)]
    rig.view(c).assert_settled(-2000)
    assert rig.view(c).state().credit_used == 2000


def test_credit_wallet_turns_on_after_the_network_is_down_long_enough(rig: PosRig) -> None:
    c = rig.card(balance=500)
    rig.send(f"net down {LUNCH - 300}")
    rig.amount("8.00")
    assert "Insufficient balance" in screen(rig.tap(c))
    rig.send(f"net down {LUNCH - 700}")  # down more than credit_auto_after_s (600)
    assert "Credit used: 3.00" in screen(rig.tap(c))
    [r] = rig.records()
    assert r.flags == rec.FLAG_OFFLINE | rec.FLAG_CREDIT_USED


def test_offline_sale_over_the_ceiling_needs_pin(rig: PosRig) -> None:
    c = rig.card(balance=5000)
    rig.send(f"net down {LUNCH}")
    rig.amount("12.00")
    assert "Over the offline limit" in screen(rig.place(c))
    assert "Paid 12.00" in screen(rig.send("pin 123456"))
    assert rig.records()[0].flags == rec.FLAG_OFFLINE | rec.FLAG_PIN_VERIFIED
    assert rig.view(c).state().offline_spend == 1200


# -- pending loads, double tap, repairs -----------------------------------------------------------


def test_pending_load_applied_once_before_the_purchase(rig: PosRig) -> None:
    c = rig.card(balance=1000)
    rig.send(f"load {c} 50.00")
    assert "Paid 5.00 / Balance 55.00" in screen(rig.sale(c, "5.00"))
    assert "Paid 5.00 / Balance 50.00" in screen(rig.sale(c, "5.00"))
    recs = rig.records()
    assert [(r.type, r.amount, r.balance_before, r.balance_after) for r in recs] == [
        (rec.LOAD, 5000, 1000, 6000), (rec.PURCHASE, 500, 6000, 5500), (rec.PURCHASE, 500, 5500, 5000)]
    assert recs[0].aux == 1 and recs[0].counter == 1 and recs[1].counter == 2
    v = rig.view(c)
    assert v.load_seq() == 1
    v.assert_settled(5000)


def test_double_tap_refused_then_confirmed(rig: PosRig) -> None:
    c = rig.card(balance=5000)
    assert "Paid 5.00" in screen(rig.sale(c, "5.00"))
    rig.amount("5.00")
    assert screen(rig.tap(c)) == "重复刷卡 请收银员确认 | Same card again: cashier must confirm"
    rig.view(c).assert_settled(4500)
    assert screen(rig.send("confirm")) == "已确认 请刷卡 | Confirmed: tap card"
    assert "Paid 5.00 / Balance 40.00" in screen(rig.tap(c))
    assert [r.flags for r in rig.records()] == [0, rec.FLAG_DOUBLE_TAP_CONFIRMED]
    rig.send("time +4")  # past the 3 s gap: no question
    rig.amount("5.00")
    assert "Paid 5.00" in screen(rig.tap(c))


def _torn_elsewhere(rig: PosRig, name: str, pull: int) -> None:
    """Terminal 2002 debits 7.00 and the card is pulled after ``pull`` card operations."""
    card = rig.console.card(name)
    purse = Purse(DirectReader(card), rig.console.card_master, rig.console.issuer_master, 2002)
    assert purse.read()
    card.pull_after(pull)
    with pytest.raises(Exception, match="pulled"):
        purse.debit(700, 77, 20000, 2, 0, True)
    card.put_back()


def test_torn_sale_of_another_terminal_rolled_back_here(rig: PosRig) -> None:
    c = rig.card(balance=5000)
    _torn_elsewhere(rig, c, 5)  # state written, value not yet decremented
    assert "Paid 5.00 / Balance 45.00" in screen(rig.sale(c, "5.00"))
    repair, sale = rig.records()
    assert (repair.type, repair.flags, repair.aux, repair.aux2) == (rec.TEARING_REPAIR, rec.FLAG_ROLLED_BACK, 2002, 77)
    assert (repair.balance_before, repair.balance_after, repair.amount) == (5000, 5000, 700)
    assert (sale.balance_before, sale.balance_after) == (5000, 4500)
    rig.view(c).assert_settled(4500)


def test_torn_sale_of_another_terminal_completed_here(rig: PosRig) -> None:
    c = rig.card(balance=5000)
    _torn_elsewhere(rig, c, 7)  # committed (primary transferred), backup not yet copied
    assert "Paid 5.00 / Balance 38.00" in screen(rig.sale(c, "5.00"))
    repair, sale = rig.records()
    assert (repair.type, repair.flags, repair.aux, repair.aux2) == (rec.TEARING_REPAIR, 0, 2002, 77)
    assert (repair.balance_before, repair.balance_after) == (5000, 4300)
    rig.view(c).assert_settled(3800)


def test_pin_verified_for_one_card_does_not_carry_to_another(rig: PosRig) -> None:
    short, other = rig.card(balance=5500), rig.card(balance=20000)
    rig.send(f"load {other} 1.00")  # a pending load binds the card early: still no carry-over
    rig.amount("60.00")
    rig.place(short)
    assert "Insufficient balance: 55.00" in screen(rig.send("pin 123456"))
    rig.remove()
    assert "Over the per-transaction limit / Enter transaction PIN" in screen(rig.tap(other))
    assert [r.type for r in rig.records()] == [rec.LOAD]


def test_pin_steps_use_the_application_state_numbers() -> None:
    from firmware import pos, pos_pin

    for name in ("S_SALE", "S_PIN", "S_CHG_CARD", "S_CHG_OLD", "S_CHG_NEW", "S_CHG_NEW2", "S_CHG_APPLY"):
        assert getattr(pos, name) == getattr(pos_pin, name), name
