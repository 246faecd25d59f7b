"""firmware/purse.py on MicroPython (64 KB heap) through the real PN532 driver and emulator.

Each test runs one MicroPython process (tests/purse_harness.py) on a personalised virtual card
and checks what the purse reports and what the card's memory really holds afterwards. The
tearing matrices pull the card at every command of a debit and of a load, re-tap it on the
same and on another terminal, and also replay each tear with the torn block left garbled.
"""

from __future__ import annotations

import pytest

from firmware import purse as fp
from protocol import card_layout as cl
from terminal_sim.mifare_card import MifareClassic1K
from terminal_sim.personalise import PersonaliseError, make_card, personalise
from tests.purse_harness import CARD_MASTER, ISSUER_MASTER, CardView, PurseRig, TracingCard

UID = "04a1b2c3"
DAY = 20_500
TERMINAL = 7
OTHER = 9


def new_card(balance: int = 5000, uid: str = UID, cls: type[MifareClassic1K] = MifareClassic1K) -> MifareClassic1K:
    card = cls(bytes.fromhex(uid), name="alice")
    ident = cl.Identity(1234567, "S2024001", cl.CARD_STUDENT, 1_700_000_000, 1_900_000_000)
    personalise(card, CARD_MASTER, ISSUER_MASTER, ident, balance=balance, pin="123456")
    return card


def by_key(lines: list[list[str]]) -> dict[str, list[str]]:
    return {words[0]: words[1:] for words in lines}


# -- personalisation (CPython only) ------------------------------------------------------------


def test_personalised_card_holds_the_card_map_with_diversified_keys() -> None:
    card = new_card(balance=4200)
    view = CardView(card)
    view.check_consistent(4200, 0)
    st = view.state()
    assert st.flags == cl.FLAG_INITIAL_PIN and st.gen == 0 and st.txn_terminal == 0
    assert view.slots()[1] is None  # slot 1 left invalid
    assert view.load_seq() == 0
    for sector in cl.PERSONALISED_SECTORS:
        assert card.block(cl.trailer_block(sector)) == cl.sector_trailer(CARD_MASTER, card.uid, sector)
    with pytest.raises(PersonaliseError, match="transport key"):
        personalise(card, CARD_MASTER, ISSUER_MASTER, cl.Identity(1, "x", 1, 1, 2))


def test_make_card_7_byte_uid() -> None:
    card = make_card("04112233445566", "bob", cl.CARD_STAFF, 100, card_master=CARD_MASTER,
                     issuer_master=ISSUER_MASTER)
    CardView(card).check_consistent(100, 0)


# -- normal operations ---------------------------------------------------------------------------

_BASICS = """
p = purse(%(t)d)
n = p.read()
i = p.identity
out("read", n, p.state.balance, int(p.torn), p.load_seq, p.state.counter, p.state.flags, i.card_no, i.holder_id)
out("pin", int(p.pin_ok("123456")), int(p.pin_ok("654321")), int(p.pin_ok("12")))
rdr.reset_counters()
p.read()
out("read_io", rdr.commands, rdr.card_io_us)
rdr.reset_counters()
o = p.debit(1250, 101, %(day)d, 2, 0, True)
out("debit", o.kind, o.amount, o.balance_before, o.balance_after, o.counter, int(o.credit_used), rdr.commands,
    rdr.card_io_us)
ctl("check", 3750, 1)
rdr.reset_counters()
p.read()
out("sale_read_io", rdr.commands)
o = p.debit(300, 102, %(day)d, 2, 0, False)
out("offline", p.state.day_total, p.state.meal_total, p.state.offline_spend, o.balance_after)
p.read()
o = p.debit(200, 103, %(day)d, 3, 0, False)
out("meal", p.state.day_total, p.state.meal_total, p.state.offline_spend, int(p.committed(103)))
p.read()
o = p.debit(100, 104, %(day)d + 1, 1, 0, True)
out("nextday", p.state.day, p.state.day_total, p.state.meal_total, p.state.offline_spend)
p.read()
p.debit(100, 105, %(day)d + 1, 1, 0, False)
p.read()
p.reset_offline_spend()
p.read()
out("reset", p.state.offline_spend, p.state.counter, p.state.balance)
ctl("remove")
out("nocard", p.read())
"""


def test_read_debit_totals_and_counters() -> None:
    card = new_card(5000)
    view = CardView(card)
    seen: list[tuple[int, int]] = []

    def on_ctl(words: list[str]) -> str:
        if words[0] == "check":
            view.check_consistent(int(words[1]), int(words[2]))
            seen.append((int(words[1]), int(words[2])))
        elif words[0] == "remove":
            card.leave_field()
        return "ok"

    with PurseRig(card) as rig:
        r = by_key(rig.run(_BASICS % {"t": TERMINAL, "day": DAY}, on_ctl))
    assert r["read"] == ["4", "5000", "0", "0", "0", str(cl.FLAG_INITIAL_PIN), "1234567", "S2024001"]
    assert r["pin"] == ["1", "0", "0"]
    assert r["debit"][:6] == [str(fp.OUT_DEBIT), "1250", "5000", "3750", "1", "0"]
    # One select, four authentications, eleven reads: the load register (block 10) is read only
    # where the last money move was a server load (see test_load_register_read_only_after_a_load).
    assert int(r["read_io"][0]) == 16
    assert int(r["sale_read_io"][0]) == 16
    # a debit writes 3 blocks + 4 value commands
    assert int(r["debit"][6]) in (8, 9), r["debit"]
    assert int(r["read_io"][1]) + int(r["debit"][7]) <= 100_000, "modelled card I/O of a sale over 100 ms"
    assert seen == [(3750, 1)]
    assert r["offline"] == ["1550", "1550", "300", "3450"]
    assert r["meal"] == ["1750", "200", "500", "1"]  # new meal period: meal total restarts
    assert r["nextday"] == [str(DAY + 1), "100", "100", "0"]  # new day; online clears offline spend
    assert r["reset"] == ["0", "5", "3050"]  # state-only write: counter unchanged
    assert r["nocard"] == ["0"]
    view.check_consistent(3050, 5)


_CREDIT_LOAD_PIN = """
p = purse(%(t)d)
p.read()
o = p.debit(800, 1, %(day)d, 1, 1000, False)
out("credit", o.balance_after, int(o.credit_used), p.state.credit_used)
p.read()
for limit in (1000, 0):
    try:
        p.debit(800, 2, %(day)d, 1, limit, False)
        out("beyond", "debited")
    except PurseError as e:
        out("beyond", "refused", limit)
p.read()
out("after_refusal", p.state.balance, p.state.counter, p.load_seq)
o = p.apply_load(1, 1000, 3)
out("load", o.kind, o.amount, o.balance_before, o.balance_after, int(o.credit_used), p.state.credit_used, o.orig_seq)
ctl("check_load", 700, 2, 1)
p.read()
for seq in (1, 3):
    try:
        p.apply_load(seq, 1000, 4)
        out("again", seq, "applied")
    except PurseError:
        out("again", seq, "refused")
o = p.apply_load(2, 50, 5)
p.read()
out("load2", p.state.balance, p.load_seq, p.state.counter)
p.update_pin_state(pin_retries=2)
p.read()
out("retries", p.state.pin_retries, p.state.counter, p.state.flags)
p.update_pin_state(pin_retries=0, pin_check="2468")
p.read()
out("newpin", int(p.pin_ok("2468")), int(p.pin_ok("123456")), p.state.flags, p.state.pin_retries, p.state.counter)
p.update_pin_state(flags=p.state.flags | 0x20, pin_retries=5)
p.read()
out("locked", p.state.flags, p.state.pin_retries, p.state.balance)
"""


def test_credit_wallet_loads_once_and_pin_state() -> None:
    card = new_card(500)
    view = CardView(card)

    def on_ctl(words: list[str]) -> str:
        if words[0] == "check_load":
            view.check_consistent(int(words[1]), int(words[2]))
            assert view.load_seq() == int(words[3])
        return "ok"

    with PurseRig(card) as rig:
        lines = rig.run(_CREDIT_LOAD_PIN % {"t": TERMINAL, "day": DAY}, on_ctl)
    r = by_key(lines)
    assert r["credit"] == ["-300", "1", "300"]
    assert [w for w in lines if w[0] == "beyond"] == [["beyond", "refused", "1000"], ["beyond", "refused", "0"]]
    assert r["after_refusal"] == ["-300", "1", "0"]
    assert r["load"] == [str(fp.OUT_LOAD), "1000", "-300", "700", "0", "0", "1"]
    assert r["again"] == ["3", "refused"]
    assert r["load2"] == ["750", "2", "3"]
    assert r["retries"] == ["2", "3", str(cl.FLAG_INITIAL_PIN)]
    assert r["newpin"] == ["1", "0", "0", "0", "3"]  # a new PIN clears the initial-PIN flag
    assert r["locked"] == [str(cl.FLAG_PIN_LOCKED), "5", "750"]
    view.check_consistent(750, 3)


def test_debit_beyond_the_credit_limit_is_refused_for_each_limit() -> None:
    card = new_card(500)
    body = """
p = purse(7)
for limit in (0, 299, 300):
    p.read()
    try:
        o = p.debit(800, 1, 1, 1, limit, False)
        out("limit", limit, "debited", o.balance_after)
    except PurseError:
        out("limit", limit, "refused", p.state.balance)
"""
    with PurseRig(card) as rig:
        lines = rig.run(body)
    assert lines == [["limit", "0", "refused", "500"], ["limit", "299", "refused", "500"],
                     ["limit", "300", "debited", "-300"]]
    CardView(card).check_consistent(-300, 1)


_ALLOC = """
gc.collect()
base = gc.mem_alloc()
p = purse(7)
gc.collect()
kept = gc.mem_alloc() - base
for run in ("new_card", "same_card"):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    p.read()
    p.debit(100, 1 if run == "new_card" else 2, 1, 1, 0, True)
    out(run, gc.mem_alloc() - a)
    gc.enable()
out("kept", kept)
"""


def test_a_tap_allocates_little() -> None:
    """Heap a tap (read + debit, with the PN532 driver) allocates, and what a Purse keeps."""
    card = new_card(5000)
    with PurseRig(card) as rig:
        r = by_key(rig.run(_ALLOC))
    # 64-bit unix port: objects are twice their ESP32 size. Key derivation (6 HMACs) is skipped
    # for the card seen last, so the second tap allocates less.
    assert int(r["kept"][0]) < 4096, r
    assert int(r["same_card"][0]) < int(r["new_card"][0]) < 20_000, r


def test_7_byte_uid_card_debits_through_the_pn532() -> None:
    card = make_card("04112233445566", "bob", cl.CARD_STAFF, 2000, card_master=CARD_MASTER,
                     issuer_master=ISSUER_MASTER)
    body = """
p = purse(7)
n = p.read()
o = p.debit(450, 1, 1, 1, 0, True)
out("uid", n, "".join("%02x" % b for b in p.uid_mv), o.balance_after)
"""
    with PurseRig(card) as rig:
        assert rig.run(body) == [["uid", "7", "04112233445566", "1550"]]
    CardView(card).check_consistent(1550, 1)


def test_card_of_another_system_is_refused_without_a_write() -> None:
    card = new_card(5000)
    foreign = make_card(UID, "eve", balance=5000, card_master=bytes(32), issuer_master=ISSUER_MASTER)
    view = CardView(card)
    view.restore(foreign.image())  # same UID, keys from another card master
    before = card.image()
    body = """
p = purse(7)
try:
    p.read()
    out("read", "accepted")
except CardRejected as e:
    out("read", "rejected", e.code)
try:
    p.debit(100, 1, 1, 1, 0, True)
except PurseError:
    out("debit", "refused")
"""
    with PurseRig(card) as rig:
        lines = rig.run(body)
    assert lines == [["read", "rejected", str(fp.REJECT_NOT_PERSONALISED)], ["debit", "refused"]]
    assert card.image() == before


_REGISTER_READS = """
class Waiting:
    def __init__(self):
        self.answer = False
    def waiting(self, uid_mv, n):
        return self.answer

p = purse(%(t)d)
w = Waiting()

def tap(what):
    rdr.reset_counters()
    p.read()
    out(what, rdr.commands)

tap("issued")
w.answer = True
p.loads = w
tap("load_waiting")
p.apply_load(p.load_seq + 1, 500, 1)
p.loads = None
tap("after_load")
out("load_seq", p.load_seq)
p.debit(100, 2, 1, 1, 0, True)
tap("after_sale")
rdr.reset_counters()
out("asked", p.load_seq, rdr.commands)
"""


def test_load_register_read_only_after_a_load_or_when_one_waits() -> None:
    """A plain sale reads 16 commands' worth (no block 10); the register comes with the value
    blocks when the POS holds a load for the card, and is fetched when the state needs it."""
    card = new_card(1000)
    with PurseRig(card) as rig:
        r = by_key(rig.run(_REGISTER_READS % {"t": TERMINAL}, lambda words: "ok"))
    assert r["issued"] == ["16"]  # select, 4 authentications, 11 reads
    assert r["load_waiting"] == ["17"]  # + block 10, in the sector already authenticated
    assert r["after_load"] == ["18"]  # the state names load 1: is the register written? (+auth +read)
    assert r["load_seq"] == ["1"]
    assert r["after_sale"] == ["16"]
    assert r["asked"] == ["1", "2"]  # asked for after all: authenticate to sector 2, read block 10
    CardView(card).check_consistent(1400, 2)


_TORN_ELSEWHERE = """
p = purse(7)
other = purse(9)
p.read()
ctl("pull", 6)
try:
    p.debit(300, 41, 1, 1, 0, True)
except ReaderError:
    out("pulled")
ctl("back")
try:
    p.debit(300, 41, 1, 1, 0, True)
except PurseError:
    out("unread", "refused")
other.read()
try:
    other.debit(100, 5, 1, 1, 0, True)
except PurseError:
    out("torn", "refused")
o = other.resolve_torn(0)
out("repair", o.kind, o.orig_terminal, o.orig_seq, o.balance_before, o.balance_after)
p.read()
out("retap", int(p.torn), int(p.committed(41)), p.state.balance)
"""


def test_sale_completed_by_another_terminal_is_not_debited_again() -> None:
    card = new_card(1000)
    view = CardView(card)

    def on_ctl(words: list[str]) -> str:
        if words[0] == "pull":
            card.pull_after(int(words[1]))  # after the commit, before the backup copy
        else:
            card.put_back()
        return "ok"

    with PurseRig(card) as rig:
        r = by_key(rig.run(_TORN_ELSEWHERE, on_ctl))
    assert "pulled" in r and r["unread"] == ["refused"] and r["torn"] == ["refused"]
    assert r["repair"] == [str(fp.OUT_REPAIR_COMPLETED), "7", "41", "1000", "700"]
    assert r["retap"] == ["0", "1", "700"]  # terminal 7 sees its sale done: no second debit
    view.check_consistent(700, 1)


# -- rejected cards -----------------------------------------------------------------------------

_REJECTS = """
p = purse(7)
while True:
    name = ctl("next")
    if name == "end":
        break
    try:
        p.read()
        out(name, "accepted", int(p.torn), p.state.balance)
    except CardRejected as e:
        out(name, "rejected", e.code)
"""


def _image_variants(card: MifareClassic1K) -> dict[str, bytes]:
    good = card.image()
    other = new_card(9900, uid="04d4e5f6")

    def with_blocks(**blocks: bytes) -> bytes:
        img = bytearray(good)
        for name, data in blocks.items():
            n = int(name[1:])
            img[n * 16 : n * 16 + 16] = data
        return bytes(img)

    vb = cl.encode_value_block
    slot0 = cl.STATE_SLOTS[0]
    garbled = bytearray(card.block(slot0[1]))
    garbled[0] ^= 1
    bad_version = bytearray(card.block(cl.BLOCK_IDENTITY))
    bad_version[0] = 2
    return {
        "good": good,
        "forged_primary": with_blocks(b8=vb(99_999, 8)),
        "forged_both": with_blocks(b8=vb(99_999, 8), b9=vb(99_999, 8)),
        "forged_backup": with_blocks(b9=vb(99_999, 8)),
        "no_value_block": with_blocks(b8=bytes(16), b9=bytes(16)),
        "value_wrong_address": with_blocks(b8=vb(5000, 9), b9=vb(5000, 9)),
        "identity_of_other_card": with_blocks(b4=other.block(4), b5=other.block(5), b6=other.block(6)),
        "state_mac": with_blocks(**{f"b{slot0[1]}": bytes(garbled)}),
        "layout_version": with_blocks(b4=bytes(bad_version)),
        "blank": MifareClassic1K(card.uid).image(),
        "primary_garbled": with_blocks(b8=bytes(16)),
    }


def test_forged_cloned_and_foreign_cards_are_rejected() -> None:
    card = new_card(5000)
    variants = _image_variants(card)
    order = iter(variants)
    view = CardView(card)

    def on_ctl(words: list[str]) -> str:
        name = next(order, "end")
        if name != "end":
            view.restore(variants[name])
        return name

    with PurseRig(card) as rig:
        r = by_key(rig.run(_REJECTS, on_ctl))
    assert r["good"] == ["accepted", "0", "5000"]
    forged = ["rejected", str(fp.REJECT_PURSE_FORGED)]
    assert r["forged_primary"] == forged
    assert r["forged_both"] == forged
    assert r["forged_backup"] == forged
    assert r["no_value_block"] == forged
    assert r["value_wrong_address"] == forged
    assert r["identity_of_other_card"] == ["rejected", str(fp.REJECT_IDENTITY_MAC)]
    assert r["state_mac"] == ["rejected", str(fp.REJECT_PURSE_MAC)]  # slot 1 was never written
    assert r["layout_version"] == ["rejected", str(fp.REJECT_NOT_PERSONALISED)]
    assert r["blank"] == ["rejected", str(fp.REJECT_NOT_PERSONALISED)]
    # a primary that is not a value block is a torn commit: the backup holds the balance
    assert r["primary_garbled"] == ["accepted", "1", "5000"]


# -- tearing -------------------------------------------------------------------------------------

_OPS = """
def op(p, seq):
    if OP == "debit":
        return p.debit(AMOUNT, seq, 1, 1, 0, True)
    return p.apply_load(p.load_seq + 1, AMOUNT, seq)

def attempt(p, seq):
    try:
        op(p, seq)
        return 1
    except ReaderError:
        return 0

def finish(q, tid):
    # what a terminal does on the re-tap: resolve, and retry its own sale if it is not on the card
    o = q.resolve_torn(1 if tid == T else 0)
    kind = o.kind if o else 0
    again = 0
    if tid == T and not q.committed(1) and not (OP == "load" and q.load_seq >= 1):
        again = attempt(q, 1)
    return kind, again

class Waiting:  # the POS's pending loads, as far as read() asks: a load waits on a load tap
    def waiting(self, uid_mv, n):
        return OP == "load"

p = purse(T)
other = purse(O)
p.loads = other.loads = Waiting()
ctl("reset")
p.read()
ctl("trace")
op(p, 1)
k = int(ctl("count"))
"""

_MATRIX = """
for corrupt in (0, 1):
    for n in range(k + 1):
        for tid in (T, O):
            ctl("reset")
            p.read()
            ctl("pull", n, corrupt)
            done = attempt(p, 1)
            ctl("back")
            q = p if tid == T else other
            q.read()
            torn = int(q.torn)
            kind, again = finish(q, tid)
            ctl("check", n, corrupt, tid, done, torn, kind)
            out("case", n, corrupt, tid, done, torn, kind, again)
out("k", k)
"""

# The card pulled again during the repair: at every command of resolve_torn(), learnt from an
# untorn repair of the same torn card first.
_DOUBLE = """
for corrupt in (0, 1):
    for n in range(k):
        for tid in (T, O):
            m = 0
            n2 = -1
            while n2 < m:
                ctl("reset")
                p.read()
                ctl("pull", n, corrupt)
                attempt(p, 1)
                ctl("back")
                q = p if tid == T else other
                q.read()
                if not q.torn:
                    break
                if n2 < 0:
                    ctl("trace")
                    q.resolve_torn(1 if tid == T else 0)
                    m = int(ctl("count2"))
                    ctl("reset")
                else:
                    ctl("pull2", n2, corrupt)
                    try:
                        q.resolve_torn(1 if tid == T else 0)
                    except ReaderError:
                        pass
                    ctl("back")
                    q.read()
                    finish(q, tid)
                    ctl("check2", n, n2, corrupt, tid)
                    out("case", n, n2, corrupt, tid)
                n2 += 1
"""


class Matrix:
    """The test side of a tearing matrix: card resets, pulls, and checks of the card's memory."""

    def __init__(self, op: str, balance: int, amount: int) -> None:
        self.op = op
        self.amount = amount
        card = new_card(balance, cls=TracingCard)
        assert isinstance(card, TracingCard)
        self.card = card
        self.view = CardView(card)
        self.image = card.image()
        self.balance = balance
        self.delta = -amount if op == "debit" else amount
        self.ops: list[tuple[str, int]] = []  # the commands of an untorn debit / load
        self.repair_ops: list[tuple[str, int]] = []  # the commands of the repair being torn
        self.commit = -1
        self.torn_op: tuple[str, int] | None = None
        self.corrupt = False
        self.checked = 0

    def script(self, body: str) -> str:
        head = f"OP = {self.op!r}\nAMOUNT = {self.amount}\nT = {TERMINAL}\nO = {OTHER}\n"
        return head + _OPS + body

    def on_ctl(self, words: list[str]) -> str:
        card = self.card
        cmd, args = words[0], [int(w) for w in words[1:]]
        if cmd == "reset":
            self.view.restore(self.image)
        elif cmd == "trace":
            card.trace = []
        elif cmd == "count":
            self.ops = list(card.trace)
            self.commit = self.ops.index(("transfer", cl.BLOCK_BALANCE))
            return str(len(self.ops))
        elif cmd == "count2":
            self.repair_ops = list(card.trace)
            return str(len(self.repair_ops))
        elif cmd in ("pull", "pull2"):
            ops = self.ops if cmd == "pull" else self.repair_ops
            self.torn_op = ops[args[0]] if args[0] < len(ops) else None
            self.corrupt = args[1] == 1
            card.pull_after(args[0])
        elif cmd == "back":
            if self.corrupt and self.torn_op is not None and self.torn_op[0] in ("write", "transfer"):
                card.corrupt(self.torn_op[1])
            card.put_back()
        elif cmd == "check":
            self.check(*args)
        elif cmd == "check2":
            n, n2, corrupt, tid = args
            self.check_card(n, tid, f"{self.op} torn after {n} commands, repair torn after {n2} "
                                    f"({self.torn_op}), corrupt={corrupt}, terminal {tid}")
        return "ok"

    def check_card(self, n: int, tid: int, where: str) -> None:
        """Same terminal: the transaction is on the card once; other terminal: iff it had committed."""
        applied = n > self.commit or tid == TERMINAL
        balance = self.balance + self.delta if applied else self.balance
        try:
            self.view.check_consistent(balance, 1 if applied else 0)
        except AssertionError as e:
            raise AssertionError(f"{where}: {e}") from None
        st = self.view.state()
        if applied:
            assert (st.txn_terminal, st.txn_seq) == ((TERMINAL, 1) if self.op == "debit" else (0, 1)), where
        assert self.view.load_seq() == (1 if applied and self.op == "load" else 0), where
        self.checked += 1

    def check(self, n: int, corrupt: int, tid: int, done: int, torn: int, kind: int) -> None:
        where = f"{self.op} pulled after {n} commands ({self.torn_op}), corrupt={corrupt}, re-tap on terminal {tid}"
        assert done == (n == len(self.ops)), where
        self.check_card(n, tid, where)
        committed = n > self.commit  # the transfer to block 8 completed before the pull
        if tid == OTHER and not committed and torn:
            assert kind == fp.OUT_REPAIR_ROLLED_BACK, f"{where}: expected a roll-back, got outcome kind {kind}"
        if committed and n < len(self.ops):
            assert torn and kind == fp.OUT_REPAIR_COMPLETED, f"{where}: expected a completed repair, got {torn} {kind}"


@pytest.mark.parametrize("op,balance,amount", [("debit", 1000, 300), ("load", -200, 500)])
def test_card_pulled_at_every_step_ends_committed_exactly_once_or_rolled_back(
        op: str, balance: int, amount: int) -> None:
    m = Matrix(op, balance, amount)
    with PurseRig(m.card) as rig:
        lines = rig.run(m.script(_MATRIX), m.on_ctl, timeout=120)
    k = int(by_key(lines)["k"][0])
    assert k == len(m.ops) == (8 if op == "debit" else 9)
    assert m.checked == (k + 1) * 2 * 2
    cases = [w for w in lines if w[0] == "case"]
    first_write = next(i for i, o in enumerate(m.ops) if o[0] == "write")
    for n, corrupt, tid, _done, torn, kind, _again in (map(int, c[1:]) for c in cases):
        if n <= first_write + 2:
            assert not torn, (n, tid)  # the new state never became valid
        if tid == TERMINAL and op == "debit" and first_write + 3 <= n <= m.commit:
            assert kind == fp.OUT_DEBIT, (n, corrupt, kind)  # own pending debit redone


@pytest.mark.parametrize("op,balance,amount", [("debit", 1000, 300), ("load", -200, 500)])
def test_card_pulled_again_during_the_repair(op: str, balance: int, amount: int) -> None:
    m = Matrix(op, balance, amount)
    with PurseRig(m.card) as rig:
        lines = rig.run(m.script(_DOUBLE), m.on_ctl, timeout=120)
    assert m.checked == len(lines) > 50
    pulled = {(int(w[1]), int(w[3])) for w in lines}
    torn_points = set(range(3, len(m.ops)))  # every pull after the state write leaves a repair
    assert {n for n, _ in pulled} == torn_points
