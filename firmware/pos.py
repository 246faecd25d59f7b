"""The canteen POS application: the cashier keys an amount, the holder taps, the purse is
debited and every event is journaled as a signed record.

One tap (:meth:`Pos.poll`) reads the card (``firmware.purse``), refuses it if blacklisted,
expired, of a type this merchant does not take or failing its MACs, finishes or rolls back an
interrupted transaction, applies the card's pending loads, then does what the cashier asked:
a sale (limits, PIN, credit wallet, double-tap guard), a balance query or a PIN change.

A card pulled mid-write leaves the sale pending: the display says "tap again", the next tap
of that card completes it (``resolve_torn(own_txn_seq)``) and any other card is refused until
the cashier cancels. Nothing touches a card unless the journal has room for what the tap
records, so a full journal refuses the sale ("journal full — sync needed").

Usage::

    app = Pos(purse, journal, blacklist, loads, params, display, clock, terminal_id, 30000)
    app.key((ui.EV_AMOUNT, 1250))    # cashier: 12.50
    app.poll()                       # the reader is polled; a card on it is served
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

from firmware import limits, pos_pin, texts, ui
from firmware.journal import JournalFull
from firmware.mifare import ReaderError
from firmware.purse import (
    OUT_REPAIR_COMPLETED,
    OUT_REPAIR_ROLLED_BACK,
    REJECT_NOT_PERSONALISED,
    CardRejected,
    PurseError,
)
from protocol import card_layout as cl
from protocol import records as rec

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

S_IDLE = const(0)
S_SALE = const(1)  # amount keyed, waiting for a card
S_PIN = const(2)  # sale needs the PIN of card _uid
S_BALANCE = const(3)
S_CHG_CARD = const(4)  # PIN change: waiting for the card
S_CHG_OLD = const(5)
S_CHG_NEW = const(6)
S_CHG_NEW2 = const(7)
S_CHG_APPLY = const(8)  # new PIN confirmed, waiting for the card to write it

_CLOCK_MIN = const(946684800)  # 2000-01-01: below this the clock was never set
_LIMIT_TEXT = (0, texts.T_OVER_TXN, texts.T_OVER_MEAL, texts.T_OVER_DAY, texts.T_OVER_OFFLINE)


class Pos:
    """The sale state machine; ``key`` takes keypad events, ``poll`` serves the card on the reader."""

    def __init__(self, purse, journal, blacklist, loads, params, display, clock, terminal_id,
                 journal_max):
        self.purse = purse
        self.journal = journal
        self.blacklist = blacklist
        self.loads = loads
        purse.loads = loads  # the load register comes with the value blocks when a load waits
        self.params = params
        self.display = display
        self.clock = clock
        self.terminal_id = terminal_id
        self.journal_max = journal_max
        self.state = S_IDLE
        self.amount = 0
        self.sales = 0
        self._rec = bytearray(rec.RECORD_SIZE)
        self._uid = bytearray(8)  # card this step is bound to; [7] = length (0: any card)
        self._done = bytearray(8)  # card served last, still on the reader; [7] = length
        self._last = bytearray(8)  # card debited last, for the double-tap guard
        self._last_time = 0
        self._pin = None  # PIN keyed in, waiting for the card to check it against
        self._new_pin = None
        self._pin_ok = False
        self._confirmed = False
        self._pend_seq = 0  # journal seq of a money transaction a pull interrupted
        self._pend_type = 0
        self._pend_amount = 0
        self._pend_flags = 0  # record flags of a pending purchase
        self._pend_aux = 0  # load sequence and kind of a pending load
        self._pend_aux2 = 0
        self._down_since = 0
        self._unauthorised = False
        self._now = 0
        self._held = False  # a record the journal refused after the card was written

    # -- outside world --------------------------------------------------------------------

    def set_network_down_since(self, t):
        """The sync client reports the network down since UTC ``t`` (0: up again)."""
        self._down_since = t

    def set_unauthorised_offline(self, flag):
        """The sync client reports the terminal kept offline by hand: records say so."""
        self._unauthorised = flag

    @micropython.native
    def _show(self, tid, arg=None, tid2=0, arg2=None, tid3=0, arg3=None):
        self.display.show(tid, arg, tid2, arg2, tid3, arg3)

    @micropython.native
    def _idle(self):
        self.state = S_IDLE
        self.amount = 0
        self._uid[7] = 0
        self._pin = None
        self._new_pin = None
        self._pin_ok = False
        self._confirmed = False

    @micropython.native
    def _bind(self, src):
        """Remember card ``src`` (purse.uid_mv) in ``self._uid``."""
        n = len(src)
        self._uid[:n] = src
        self._uid[7] = n

    @micropython.native
    def _same(self, buf):
        p = self.purse
        n = buf[7]
        if n != p.uid_len:
            return False
        for i in range(n):
            if buf[i] != p.uid[i]:
                return False
        return True

    # -- keypad -----------------------------------------------------------------------------

    @micropython.native
    def key(self, ev):
        kind = ev[0]
        value = ev[1]
        st = self.state
        if kind == ui.EV_NUMBER:
            kind = ui.EV_AMOUNT if st == S_IDLE or st == S_SALE else ui.EV_PIN
            if kind == ui.EV_AMOUNT:
                value = int(value) if value.isdigit() else -1
        if kind == ui.EV_CANCEL:
            self._pend_seq = 0
            self._idle()
            self._show(texts.T_CANCELLED)
        elif self._pend_seq and kind != ui.EV_CONFIRM:
            self._show(texts.T_NOT_WHILE_PENDING, None, texts.T_SALE_PENDING)
        elif kind == ui.EV_AMOUNT:
            if st != S_IDLE and st != S_SALE and st != S_BALANCE:
                self._show(texts.T_NOT_WHILE_PENDING)
            elif value <= 0 or value > 0x7FFFFFFF:
                self._show(texts.T_BAD_AMOUNT)
            else:
                self._idle()
                self.state = S_SALE
                self.amount = value
                self._show(texts.T_TAP_CARD, value)
        elif kind == ui.EV_BALANCE or kind == ui.EV_PIN_CHANGE:
            if st != S_IDLE and st != S_SALE:
                self._show(texts.T_NOT_WHILE_PENDING)
            else:
                self._idle()
                bal = kind == ui.EV_BALANCE
                self.state = S_BALANCE if bal else S_CHG_CARD
                self._show(texts.T_TAP_BALANCE if bal else texts.T_TAP_PIN_CHANGE)
        elif kind == ui.EV_CONFIRM:
            if st == S_SALE:
                self._confirmed = True
                self._done[7] = 0  # a card left on the reader counts as tapped again
                self._show(texts.T_CONFIRMED)
        elif kind == ui.EV_PIN:
            pos_pin.pin_key(self, value)

    # -- the tap ------------------------------------------------------------------------------

    @micropython.native
    def poll(self, expected=False):
        """Poll the reader once and serve the card on it; ``expected``: say so if none is there."""
        p = self.purse
        if self.state == S_IDLE:
            # Nothing to do with a card now: only notice when the last one leaves the reader.
            if self._done[7] and not p.reader.select(p.uid):
                self._done[7] = 0
            return
        try:
            n = p.read()
        except CardRejected as e:
            if self._done[7] and self._same(self._done):
                return
            self._show(texts.T_NOT_CAMPUS_CARD if e.code == REJECT_NOT_PERSONALISED else texts.T_CARD_FORGED)
            self._done_card()
            return
        except ReaderError:
            self._tap_again()
            return
        if not n:
            self._done[7] = 0
            if expected:
                self._show(texts.T_TAP_AGAIN)
            return
        if self._done[7] and self._same(self._done) and not expected:
            return  # the card served last still lies on the reader: not a new tap
        self._now = self.clock.now()
        try:
            self._serve()
        except ReaderError:
            self._tap_again()

    def _apply_loads(self):
        """Apply the loads waiting for the card in the field, in order; False if the journal
        filled up on the way (the rest wait for the next tap)."""
        p = self.purse
        loads = self.loads
        while loads.find(p.uid_mv, p.uid_len, p.load_seq):
            if not self._room(2):
                self._show(texts.T_JOURNAL_FULL)
                return False
            self._pending(rec.LOAD, loads.amount, 0)
            self._pend_aux = loads.seq
            self._pend_aux2 = loads.kind
            out = p.apply_load(loads.seq, loads.amount, self._pend_seq)
            self._log(rec.LOAD, 0, out, self._pend_aux, self._pend_aux2)
            self._pend_seq = 0
        return True

    def _tap_again(self):
        if self._pend_seq:
            self._show(texts.T_TAP_AGAIN, None, texts.T_SALE_PENDING)
        else:
            self._show(texts.T_TAP_AGAIN)

    @micropython.native
    def _serve(self):
        p = self.purse
        st = self.state
        if self._pend_seq and not self._same(self._uid):
            self._show(texts.T_FINISH_FIRST)
            return
        if st != S_SALE and st != S_BALANCE and st != S_CHG_CARD and not self._same(self._uid):
            self._show(texts.T_FINISH_FIRST)  # a PIN step belongs to the card it started with
            return
        if self._now < _CLOCK_MIN:
            self._show(texts.T_CLOCK_NOT_SET)
            return
        if self.blacklist is not None and self.blacklist.is_blacklisted(p.uid_mv, p.uid_len):
            self._refuse(texts.T_BLACKLISTED)
            return
        ident = p.identity
        v = limits.validity(self._now, ident.valid_from, ident.valid_until)
        if v != limits.VALID:
            self._refuse(texts.T_EXPIRED if v == limits.EXPIRED else texts.T_NOT_YET_VALID)
            return
        if st == S_SALE:
            if not limits.type_accepted(self.params.accepted_types, ident.card_type):
                self._refuse(texts.T_TYPE_REFUSED)
                return
            if not self._same(self._uid):
                # Another card than the one the PIN or the cashier's confirmation was for.
                self._pin_ok = False
                self._confirmed = False
                self._bind(p.uid_mv)
        if not self._room(2):
            self._show(texts.T_JOURNAL_FULL)
            return
        if not self._repair():
            return  # the pending sale was completed by this tap
        if p.load_waiting and not self._apply_loads():
            return
        if st == S_SALE:
            self._sale()
        elif st == S_PIN:
            pos_pin.sale_pin(self)
        elif st == S_BALANCE:
            self._finish_tap(texts.T_BALANCE, p.state.balance)
        else:
            pos_pin.change_pin(self)

    @micropython.native
    def _finish_tap(self, tid, arg=None, tid2=0, arg2=None):
        """End of a tap that needs nothing more from this card: show, back to idle."""
        p = self.purse
        tid3 = 0
        if self._held:
            tid3 = texts.T_JOURNAL_FULL
        elif p.state is not None and p.state.flags & cl.FLAG_INITIAL_PIN and tid != texts.T_PIN_CHANGED:
            tid3 = texts.T_CHANGE_INITIAL_PIN
        self._show(tid, arg, tid2, arg2, tid3)
        self._done_card()
        self._idle()

    def _refuse(self, tid, arg=None, tid2=0):
        """Refuse this card, or ask for keys: until it leaves the reader it is not served again."""
        self._show(tid, arg, tid2)
        self._done_card()

    @micropython.native
    def _done_card(self):
        p = self.purse
        self._done[:p.uid_len] = p.uid_mv
        self._done[7] = p.uid_len

    # -- journal ----------------------------------------------------------------------------

    @micropython.native
    def _room(self, n):
        return not self._held and self.journal.unacked_count() + n <= self.journal_max

    @micropython.native
    def _pending(self, rtype, amount, flags):
        """Name the money transaction about to touch the card (its record's journal seq)."""
        self._bind(self.purse.uid_mv)
        self._pend_seq = self.journal.next_seq()
        self._pend_type = rtype
        self._pend_amount = amount
        self._pend_flags = flags

    @micropython.native
    def _log(self, rtype, flags, out, aux=0, aux2=0, meal=0):
        """Journal an outcome as a signed record (held in RAM if the journal refuses it)."""
        p = self.purse
        if self._down_since:
            flags |= rec.FLAG_OFFLINE
        if self._unauthorised:
            flags |= rec.FLAG_UNAUTHORISED_OFFLINE
        if out.balance_after < 0 and (rtype == rec.PURCHASE or rtype == rec.TEARING_REPAIR):
            flags |= rec.FLAG_CREDIT_USED
        rec.encode_into(self._rec, rtype, flags, self.terminal_id, self.journal.next_seq(), self._now,
                        p.uid_mv, out.counter, out.amount, out.balance_before, out.balance_after, aux,
                        aux2, meal)
        self._append()

    @micropython.native
    def _append(self):
        # The card is already written: a record the journal refuses is held (no card is
        # written again until it is stored: _room() is False meanwhile).
        try:
            self.journal.append(self._rec)
            self._held = False
        except (JournalFull, OSError):
            self._held = True
        return not self._held

    def retry_held(self):
        """Try again to journal a held record; True when nothing is held any more."""
        return self._append() if self._held else True

    # -- repair ---------------------------------------------------------------------------

    @micropython.native
    def _repair(self):
        """Finish this card's interrupted transaction; False when that completed the sale."""
        p = self.purse
        own = self._pend_seq if self._same(self._uid) else 0
        if p.torn:
            out = p.resolve_torn(own)
            if own and self._mine(out):
                self._pend_seq = 0
                if out.kind == OUT_REPAIR_ROLLED_BACK:
                    return True  # our own load, undone: it is applied afresh
                return self._completed(out)
            self._pend_seq = 0
            flags = rec.FLAG_ROLLED_BACK if out.kind == OUT_REPAIR_ROLLED_BACK else 0
            self._log(rec.TEARING_REPAIR, flags, out, out.orig_terminal, out.orig_seq)
            return True
        if own and self._pend_type == rec.PURCHASE and p.committed(own):
            # Another terminal completed our interrupted sale: it is ours to record.
            self._pend_seq = 0
            st = p.state
            out = p.outcome.set(OUT_REPAIR_COMPLETED, self._pend_amount, st.balance + self._pend_amount,
                                st.balance, st.counter, self.terminal_id, own, own)
            return self._completed(out)
        self._pend_seq = 0  # it never reached the card (or another terminal finished the load)
        return True

    def _mine(self, out):
        if self._pend_type == rec.LOAD:
            return out.orig_terminal == 0 and out.orig_seq == self._pend_aux
        return out.orig_terminal == self.terminal_id and out.orig_seq == self._pend_seq

    def _completed(self, out):
        if self._pend_type == rec.LOAD:
            self._log(rec.LOAD, 0, out, self._pend_aux, self._pend_aux2)
            return True
        self._paid(out, self._pend_flags)
        return False

    # -- sale -----------------------------------------------------------------------------

    @micropython.native
    def _sale(self):
        p = self.purse
        prm = self.params
        amount = self.amount
        now = self._now
        if (self._last[7] and self._same(self._last) and not self._confirmed
                and limits.is_double_tap(now, self._last_time, prm.double_tap_gap_s)):
            self._refuse(texts.T_DOUBLE_TAP)
            return
        st = p.state
        day = limits.local_day(now, prm.tz_offset_s)
        meal = limits.meal_period(limits.local_minute(now, prm.tz_offset_s), prm.meal_periods)
        offline = self._down_since != 0
        if not self._pin_ok:
            why = limits.pin_reason(amount, limits.day_total(st.day, st.day_total, day),
                                    limits.meal_total(st.day, st.meal_period, st.meal_total, day, meal),
                                    prm.per_txn_limit, prm.meal_limit, prm.daily_limit, offline,
                                    prm.offline_ceiling, meal)
            if why:
                if st.flags & cl.FLAG_PIN_LOCKED:
                    self._refuse(texts.T_PIN_LOCKED)
                    return
                self.state = S_PIN
                self._refuse(_LIMIT_TEXT[why], None, texts.T_ENTER_PIN)
                return
        credit = limits.credit_allowance(prm.credit_wallet, prm.credit_limit, prm.credit_auto_after_s, now,
                                         self._down_since)
        if st.balance - amount < -credit:
            self._refuse(texts.T_INSUFFICIENT, st.balance)
            return
        if offline and not limits.offline_cap_ok(st.offline_spend, amount, prm.offline_cap):
            self._refuse(texts.T_OFFLINE_CAP)
            return
        flags = rec.FLAG_PIN_VERIFIED if self._pin_ok else 0
        if self._confirmed:
            flags |= rec.FLAG_DOUBLE_TAP_CONFIRMED
        self._pending(rec.PURCHASE, amount, flags)
        try:
            out = p.debit(amount, self._pend_seq, day, meal, credit, not offline)
        except PurseError:
            self._pend_seq = 0
            self._refuse(texts.T_INSUFFICIENT, st.balance)
            return
        self._pend_seq = 0
        self._paid(out, flags)

    @micropython.native
    def _paid(self, out, flags):
        p = self.purse
        prm = self.params
        meal = limits.meal_period(limits.local_minute(self._now, prm.tz_offset_s), prm.meal_periods)
        self._log(rec.PURCHASE, flags, out, 0, 0, meal)
        self.sales += 1
        self._last[:p.uid_len] = p.uid_mv
        self._last[7] = p.uid_len
        self._last_time = self._now
        after = out.balance_after
        if after < 0:
            self._finish_tap(texts.T_PAID, out.amount, texts.T_CREDIT, -after)
        else:
            self._finish_tap(texts.T_PAID, out.amount, texts.T_BALANCE, after)
