"""The tear-safe card transaction engine: read, debit, load and PIN-state writes on the purse.

A sale writes the new purse state into the slot that does not hold the current one, then
decrements the balance value block and transfers it (the commit point), then copies it to
the backup. A card pulled at any step leaves a state the next tap, on any terminal, finishes
(:meth:`Purse.resolve_torn`): committed transactions are completed, others rolled back or, on
the terminal that started them, redone. See docs/card-transactions.md for the recovery table.

Usage::

    purse = Purse(reader, card_master, issuer_master, terminal_id=1001)
    if purse.read():                         # 0: no card; raises ReaderError / CardRejected
        if purse.torn:
            purse.resolve_torn(own_txn_seq=pending_seq)
        out = purse.debit(1250, txn_seq, day, meal, credit_limit=0, online=True)
        print(out.balance_after)

The returned :class:`Outcome` is one object per purse, overwritten by the next operation.
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

from firmware.card_id import (  # noqa: F401 - REJECT_* and CardRejected are part of this API
    REJECT_IDENTITY_MAC,
    REJECT_NOT_PERSONALISED,
    CardId,
    CardRejected,
    keep_uid,
    same_uid,
)
from firmware.mifare import KEY_A, KEY_B, ReaderError
from protocol import card_layout as cl
from protocol import crypto
from protocol.errors import CardFormatError, CryptoError

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

REJECT_PURSE_MAC = const(3)
REJECT_PURSE_FORGED = const(4)

OUT_DEBIT = const(1)
OUT_LOAD = const(2)
OUT_REPAIR_COMPLETED = const(3)
OUT_REPAIR_ROLLED_BACK = const(4)
OUT_STATE_ONLY = const(5)

_S_PURSE = const(2)
_B_BALANCE = const(8)
_B_BACKUP = const(9)
_B_LOADS = const(10)
_SLOT_SECTOR = (3, 4)
_SLOT_BLOCK = (12, 16)  # first block of each slot (three consecutive blocks)
_UNKNOWN = const(0)  # slot MAC not checked yet
_VALID = const(1)
_INVALID = const(2)
_REG_UNREAD = const(-3)  # load register not read from the card yet
_REG_UNKNOWN = const(-2)  # load register read, MAC not checked yet (-1: it failed)


class PurseError(ValueError):
    """An operation refused before touching the card (funds, load order, card not read)."""


class Outcome:
    """What an operation did, for the journal and the display.

    ``orig_terminal``/``orig_seq`` name the transaction concerned (for a repair the torn one;
    a load is terminal 0 with its load sequence); ``txn_seq`` is this terminal's sequence.
    """

    def __init__(self):
        self.set(0, 0, 0, 0, 0, 0, 0, 0)

    @micropython.native
    def set(self, kind, amount, before, after, counter, orig_terminal, orig_seq, txn_seq):
        self.kind = kind
        self.amount = amount
        self.balance_before = before
        self.balance_after = after
        self.counter = counter
        self.orig_terminal = orig_terminal
        self.orig_seq = orig_seq
        self.txn_seq = txn_seq
        self.credit_used = after < 0
        return self

    def __repr__(self):
        return "Outcome(kind=%d, amount=%d, %d->%d, counter=%d, orig=%d/%d)" % (
            self.kind, self.amount, self.balance_before, self.balance_after, self.counter,
            self.orig_terminal, self.orig_seq)


class Purse:
    """One reader's view of the card in its field; keeps no card data beyond the current tap."""

    def __init__(self, reader, card_master, issuer_master, terminal_id):
        self.reader = reader
        self.terminal_id = terminal_id
        self._cm = card_master
        self._buf = bytearray(48)  # identity on read, the encoded new state on writes
        self._mv = memoryview(self._buf)
        self._wblocks = (self._mv[0:16], self._mv[16:32], self._mv[32:48])  # views made once
        self.card = CardId(reader, card_master, issuer_master, self._buf)
        self.uid = self.card.uid
        self.uid_len = 0
        self.uid_mv = self.card.uid_mv
        self.identity = None
        self._load_seq = -1
        self.torn = False
        self.outcome = Outcome()
        self._slots = [cl.PurseState(), cl.PurseState()]
        self.state = self._slots[0]  # meaningful once read() returned a UID length
        self._new = cl.PurseState()
        self._vs = bytearray(2)  # per slot: _UNKNOWN (MAC not checked yet), _VALID, _INVALID
        self._cur = 0
        # Raw card data of the tap: slot 0, slot 1, load register (read and MAC-checked when needed).
        self._raw = bytearray(112)
        self._rmv = memoryview(self._raw)
        # Views made once (slicing in a tap would allocate): the 7 blocks, each slot's 48 bytes.
        self._blocks = tuple(self._rmv[i:i + 16] for i in range(0, 112, 16))
        self._slot_mvs = (self._rmv[0:48], self._rmv[48:96])
        self._ready = False
        self._auth_sector = -1
        self._auth_type = 0
        # Keys of the last card seen (a re-tap or a balance query then a sale skip the HMACs).
        self._key_uid = bytearray(8)
        self._ka = [None, None, None, None, None]  # key A of sectors 2-4 (sector 1: self.card)
        self._kb = None  # key B of the purse sector, derived when a load needs it
        self._pk = None
        # read() results: value blocks, load register, and the plan for resolve_torn().
        self._p = self._b = 0
        self._p_ok = self._b_ok = False
        self._reg = _REG_UNREAD
        # ``waiting(uid_mv, uid_len)``: True if a load waits for the card (the POS's pending
        # loads); read() then reads the load register with the value blocks, saving the
        # authentications a lazy read costs. ``load_waiting`` is its answer for this tap.
        self.loads = None
        self.load_waiting = False
        self._committed = False
        self._fix_p = self._fix_b = self._fix_l = False

    # -- card access ------------------------------------------------------------------------

    @micropython.native
    def _keys(self):
        n = self.uid_len
        if same_uid(self._key_uid, self.uid, n):
            return
        uid = self.uid_mv
        cm = self._cm
        for s in (2, 3, 4):
            self._ka[s] = crypto.card_sector_key(cm, uid, s, KEY_A)
        self._kb = None
        self._pk = crypto.purse_mac_key(cm, uid)
        keep_uid(self._key_uid, self.uid, n)

    @micropython.native
    def _auth(self, sector, key_type):
        # Key B on the purse sector may do everything key A may: no second authentication.
        if self._auth_sector == sector and (self._auth_type == key_type or self._auth_type == KEY_B):
            return
        if key_type == KEY_B:
            if self._kb is None:
                self._kb = crypto.card_sector_key(self._cm, self.uid_mv, sector, KEY_B)
            key = self._kb
        else:
            key = self._ka[sector]
        self._auth_sector = -1
        self.reader.auth(sector * 4, key_type, key, self.uid_mv)
        self._auth_sector = sector
        self._auth_type = key_type

    @micropython.native
    def _read3(self, block, first):
        """Blocks ``block``..``block + 2`` into raw blocks ``first``..``first + 2``."""
        r = self.reader
        v = self._blocks
        r.read_block(block, v[first])
        r.read_block(block + 1, v[first + 1])
        r.read_block(block + 2, v[first + 2])

    @micropython.native
    def _value(self, block):
        """Read a value block; ``None`` if it is not a value block holding the primary's address."""
        mv = self._blocks[6]
        self.reader.read_block(block, mv)
        try:
            value, addr = cl.decode_value_block(mv)
        except CardFormatError:
            return None
        return value if addr == _B_BALANCE else None

    @micropython.native
    def _write_slot(self, slot, st):
        """Write ``st`` into ``slot``; on success it becomes that slot's object and current."""
        cl.encode_state_into(self._buf, st, self._pk, self.uid_mv)
        self._auth(_SLOT_SECTOR[slot], KEY_A)
        r = self.reader
        b = _SLOT_BLOCK[slot]
        w = self._wblocks
        r.write_block(b, w[0])
        r.write_block(b + 1, w[1])
        r.write_block(b + 2, w[2])
        self._new = self._slots[slot]
        self._slots[slot] = st
        self._vs[slot] = _VALID
        self._cur = slot
        self.state = st

    @micropython.native
    def _write_next(self, st):
        """Write the new state ``st`` into the other slot, one generation on."""
        st.gen = cl.next_gen(self.state.gen)
        self._write_slot(1 - self._cur, st)

    @micropython.native
    def _copy(self, src, dst):
        self.reader.restore(src)
        self.reader.transfer(dst)

    @micropython.native
    def _lost(self):
        """A reader error mid-operation: the card must be read again before the next write."""
        self._ready = False
        self._auth_sector = -1

    def _reject(self, code, what):
        self._lost()
        raise CardRejected(code, "card %s: %s" % (cl.uid_hex(self.uid_mv), what))

    # -- read and classify --------------------------------------------------------------------

    @micropython.native
    def read(self):
        """Select the card, read and verify identity (``firmware.card_id``), purse and both state
        slots; sets ``torn``. The load register is read with them when ``loads`` says a load
        waits for the card, else only if needed (``load_seq``, or a state whose last money
        move was a server load): a plain sale does without it.

        :returns: the UID length (4 or 7), or 0 when no card is in the field.
        :raises ReaderError: the card left or the air failed: tap again.
        :raises CardRejected: not a campus card, or its identity or purse fails a check.
        """
        self._lost()
        self.torn = False
        try:
            return self._read()
        except ReaderError as e:
            self._lost()
            raise e

    @micropython.native
    def _read(self):
        c = self.card
        n = c.select()
        if not n:
            return 0
        self.uid_len = n  # set before the identity check: a rejected card is named by its UID
        self.uid_mv = c.uid_mv
        self.identity = None
        c.read_identity()
        self.identity = c.identity
        self._keys()
        r = self.reader
        self._auth(_S_PURSE, KEY_A)
        p = self._value(_B_BALANCE)
        b = self._value(_B_BACKUP)
        self._reg = _REG_UNREAD
        self.load_waiting = self.loads is not None and self.loads.waiting(c.uid_mv, n)
        if self.load_waiting:
            r.read_block(_B_LOADS, self._blocks[6])
            self._reg = _REG_UNKNOWN
        self._auth(_SLOT_SECTOR[0], KEY_A)
        self._read3(_SLOT_BLOCK[0], 0)
        self._auth(_SLOT_SECTOR[1], KEY_A)
        self._read3(_SLOT_BLOCK[1], 3)
        self._vs[0] = self._vs[1] = _UNKNOWN
        self._load_seq = -1
        self._classify(p, b)
        self._ready = True
        return n

    @micropython.native
    def _slot(self, i):
        """Slot ``i``'s state, its MAC checked on first use; None if the MAC fails."""
        vs = self._vs[i]
        if vs == _UNKNOWN:
            try:
                cl.decode_state_into(self._slots[i], self._slot_mvs[i], self._pk, self.uid_mv)
                vs = _VALID
            except CardFormatError:
                vs = _INVALID
            self._vs[i] = vs
        return self._slots[i] if vs == _VALID else None

    def _register(self):
        """The load register's sequence, read and its MAC checked on first use; -1 if the MAC
        fails.

        :raises ReaderError: the card left while the register was read.
        """
        if self._reg == _REG_UNREAD:
            self._auth(_S_PURSE, KEY_A)
            self.reader.read_block(_B_LOADS, self._blocks[6])
            self._reg = _REG_UNKNOWN
        if self._reg == _REG_UNKNOWN:
            try:
                self._reg = cl.decode_load_register(self._blocks[6], self._pk, self.uid_mv)
            except CardFormatError:
                self._reg = -1
        return self._reg

    @property
    def load_seq(self):
        """Sequence of the last server load applied to the card (read from the card and its MAC
        checked on first use: one card command, so ask only when a load is waiting).

        :raises CardRejected: REJECT_PURSE_MAC if the load register's MAC fails.
        :raises ReaderError: the card left while the register was read.
        """
        if self._load_seq < 0:
            reg = self._register()
            if reg < 0:
                self._reject(REJECT_PURSE_MAC, "the load register MAC fails")
            self._load_seq = reg
        return self._load_seq

    def _prev(self):
        return self._slot(1 - self._cur)

    @micropython.native
    def _classify(self, p, b):
        """Compare value blocks and slots (checking MACs only as far as needed); plan the repair."""
        sm = self._slot_mvs
        first = cl.newer_slot(cl.state_gen(sm[0]), cl.state_gen(sm[1]))
        if self._slot(first) is not None:
            cur = first
        elif self._slot(1 - first) is not None:
            cur = 1 - first
        else:
            self._reject(REJECT_PURSE_MAC, "the MAC of both purse state slots fails")
        self._cur = cur
        c = self.state = self._slots[cur]
        self._p_ok = p is not None
        self._b_ok = b is not None
        if p is None and b is None:
            self._reject(REJECT_PURSE_FORGED, "neither balance block 8 nor backup 9 is a valid value block")
        self._p = v = p if p is not None else b  # a primary torn before its commit: the backup counts
        self._b = b if b is not None else p
        self._fix_p = p is None
        self._fix_b = b is None or (p is not None and p != b)
        self._fix_l = False
        if v == c.balance:
            self._committed = True
            if p is not None and b is not None and p != b:
                q = self._prev()
                if q is None or b != q.balance:
                    self._reject(REJECT_PURSE_FORGED, "backup balance %d matches neither balance %d nor "
                                 "the previous state" % (b, p))
            if c.txn_terminal == 0 and c.txn_seq:  # the last money move was server load n: register written?
                reg = self._register()
                self._fix_l = reg < c.txn_seq
                self._load_seq = c.txn_seq if self._fix_l else reg
        else:
            q = self._prev()
            if q is None or v != q.balance or c.counter != q.counter + 1:
                self._reject(REJECT_PURSE_FORGED, "balance %d on the card does not match the purse state "
                             "(%d)" % (v, c.balance))
            if p is not None and b is not None and p != b:
                self._reject(REJECT_PURSE_FORGED, "balance %d and backup %d disagree" % (p, b))
            self._committed = False
        self.torn = self._fix_p or self._fix_b or self._fix_l or not self._committed

    # -- repair -----------------------------------------------------------------------------

    @micropython.native
    def _check_ready(self):
        if not self._ready:
            raise PurseError("read the card first (no card read, or the last operation was interrupted)")
        if self.torn:
            raise PurseError("card %s has an interrupted transaction: resolve_torn() first"
                             % cl.uid_hex(self.uid_mv))

    def resolve_torn(self, own_txn_seq=0):
        """Complete, redo (this terminal's pending ``own_txn_seq`` debit) or roll back a torn one.

        :returns: the :class:`Outcome`, or None when read() found nothing torn.
        :raises ReaderError: pulled again; read() and resolve_torn() on the next tap.
        """
        if not self._ready:
            raise PurseError("read the card first")
        if not self.torn:
            return None
        try:
            out = self._resolve(own_txn_seq)
        except ReaderError as e:
            self._lost()
            raise e
        self.torn = False
        self._fix_p = self._fix_b = self._fix_l = False
        self._p = self._b = self.state.balance
        return out

    def _resolve(self, own):
        r = self.reader
        c = self.state
        q = self._prev()
        out = self.outcome
        if self._committed:
            self._auth(_S_PURSE, KEY_B if self._fix_l else KEY_A)
            before = c.balance if q is None else q.balance
            if self._fix_p:
                self._copy(_B_BACKUP, _B_BALANCE)
            if self._fix_b:
                self._copy(_B_BALANCE, _B_BACKUP)
            if self._fix_l:
                r.write_block(_B_LOADS, cl.encode_load_register(c.txn_seq, self._pk, self.uid_mv))
                self._reg = self._load_seq = c.txn_seq
            amount = c.balance - before
            return out.set(OUT_REPAIR_COMPLETED, amount if amount >= 0 else -amount, before, c.balance,
                           c.counter, c.txn_terminal, c.txn_seq, own)
        # Not committed: q is valid and the value blocks hold q.balance.
        if q is None:
            raise PurseError("no previous purse state to roll back to: read the card again")
        self._auth(_S_PURSE, KEY_A)
        if own and c.txn_terminal == self.terminal_id and c.txn_seq == own and c.balance < q.balance:
            amount = q.balance - c.balance
            r.decrement(_B_BALANCE if self._p_ok else _B_BACKUP, amount)
            r.transfer(_B_BALANCE)  # commit point of the redone debit
            self._copy(_B_BALANCE, _B_BACKUP)
            return out.set(OUT_DEBIT, amount, q.balance, c.balance, c.counter, c.txn_terminal, c.txn_seq, own)
        if self._fix_p:
            self._copy(_B_BACKUP, _B_BALANCE)
        if self._fix_b:
            self._copy(_B_BALANCE, _B_BACKUP)
        amount = c.balance - q.balance
        out.set(OUT_REPAIR_ROLLED_BACK, amount if amount >= 0 else -amount, q.balance, q.balance, q.counter,
                c.txn_terminal, c.txn_seq, own)
        st = self._new
        st.copy_from(q)
        st.gen = c.gen  # the torn slot is rewritten with the old state: it stays the newer slot
        self._write_slot(self._cur, st)
        return out

    def committed(self, txn_seq):
        """True if the card's current state is this terminal's transaction ``txn_seq`` (done, no retry)."""
        st = self.state
        return self._ready and not self.torn and st.txn_terminal == self.terminal_id and st.txn_seq == txn_seq

    # -- transactions -----------------------------------------------------------------------

    @micropython.native
    def _move(self, increment, amount):
        """Value blocks: change the primary (commit point), then copy it to the backup."""
        r = self.reader
        self._auth(_S_PURSE, KEY_B if increment else KEY_A)
        if increment:
            r.increment(_B_BALANCE, amount)
        else:
            r.decrement(_B_BALANCE, amount)
        r.transfer(_B_BALANCE)
        self._copy(_B_BALANCE, _B_BACKUP)

    @micropython.native
    def debit(self, amount, txn_seq, day, meal_period, credit_limit, online):
        """Take ``amount`` cents from the purse; tear-safe (see the module docstring).

        :raises PurseError: amount not positive, or the balance would go below ``-credit_limit``.
        :raises ReaderError: the card left mid-way: read() and resolve_torn() on the next tap.
        """
        self._check_ready()
        cur = self.state
        if amount <= 0:
            raise PurseError("debit amount must be positive, got %d" % amount)
        after = cur.balance - amount
        if after < -credit_limit:
            raise PurseError("insufficient balance: %d cents, sale %d, credit limit %d"
                             % (cur.balance, amount, credit_limit))
        n = self._new
        n.copy_from(cur)
        n.counter = cur.counter + 1
        n.balance = after
        if cur.day != day:
            n.day = day
            n.day_total = 0
            n.meal_total = 0
        elif cur.meal_period != meal_period:
            n.meal_total = 0
        n.meal_period = meal_period
        n.day_total += amount
        n.meal_total += amount
        n.credit_used = -after if after < 0 else 0
        n.offline_spend = 0 if online else cur.offline_spend + amount
        n.txn_terminal = self.terminal_id
        n.txn_seq = txn_seq
        before = cur.balance
        try:
            self._write_next(n)
            self._move(False, amount)
        except ReaderError as e:
            self._lost()
            raise e
        self._p = self._b = after
        return self.outcome.set(OUT_DEBIT, amount, before, after, n.counter, self.terminal_id, txn_seq, txn_seq)

    def apply_load(self, load_seq, amount, txn_seq):
        """Add a server load (``load_seq`` must follow the card's last one); repays credit first.

        :raises PurseError: out-of-order ``load_seq`` or amount not positive.
        """
        self._check_ready()
        if load_seq != self.load_seq + 1:
            raise PurseError("load %d out of order: card %s last applied load %d"
                             % (load_seq, cl.uid_hex(self.uid_mv), self.load_seq))
        if amount <= 0:
            raise PurseError("load amount must be positive, got %d" % amount)
        cur = self.state
        before = cur.balance
        n = self._new
        n.copy_from(cur)
        n.counter = cur.counter + 1
        n.balance = before + amount
        n.credit_used = -n.balance if n.balance < 0 else 0
        n.txn_terminal = 0
        n.txn_seq = load_seq
        try:
            self._write_next(n)
            self._move(True, amount)
            self.reader.write_block(_B_LOADS, cl.encode_load_register(load_seq, self._pk, self.uid_mv))
        except ReaderError as e:
            self._lost()
            raise e
        self._reg = self._load_seq = load_seq
        self._p = self._b = n.balance
        return self.outcome.set(OUT_LOAD, amount, before, n.balance, n.counter, 0, load_seq, txn_seq)

    def _state_only(self, st):
        try:
            self._write_next(st)
        except ReaderError as e:
            self._lost()
            raise e
        return self.outcome.set(OUT_STATE_ONLY, 0, st.balance, st.balance, st.counter, st.txn_terminal,
                                st.txn_seq, 0)

    def update_pin_state(self, pin_retries=None, flags=None, pin_check=None):
        """State-only write: wrong-PIN count, flags, new PIN (``pin_check`` a PIN str or check int).

        A new PIN without ``flags`` clears FLAG_INITIAL_PIN. The counter does not change.
        """
        self._check_ready()
        n = self._new
        n.copy_from(self.state)
        if pin_retries is not None:
            n.pin_retries = pin_retries
        if pin_check is not None:
            n.pin_check = cl.pin_check_int(self._pk, self.uid_mv, pin_check) if isinstance(pin_check, str) \
                else pin_check
            if flags is None:
                flags = n.flags & ~cl.FLAG_INITIAL_PIN
        if flags is not None:
            n.flags = flags
        return self._state_only(n)

    def pin_ok(self, pin):
        """True if ``pin`` is the card's transaction PIN (compares check values, counts nothing)."""
        if self._pk is None:
            return False
        try:
            return cl.pin_check_int(self._pk, self.uid_mv, pin) == self.state.pin_check
        except CryptoError:
            return False

    def reset_offline_spend(self):
        """An online terminal clears the offline spending total (no write when already 0)."""
        self._check_ready()
        if self.state.offline_spend == 0:
            return None
        n = self._new
        n.copy_from(self.state)
        n.offline_spend = 0
        return self._state_only(n)
