"""The reader interface every card reader driver implements, card-level errors, and the
card I/O time model the benchmarks use.

The application talks MIFARE Classic through a :class:`Reader`; the PN532 and MFRC522
drivers implement it, so ``pos.py`` never sees frames, registers or chip status bytes.

Usage::

    from firmware.mifare import KEY_A, NoCard, AuthFailed
    uid = bytearray(7)
    n = reader.select(uid)            # 0: no card in the field
    if n:
        uid_mv = memoryview(uid)[:n]
        reader.auth(4, KEY_A, key, uid_mv)
        reader.read_block(4, buf)
        reader.decrement(5, 250)
        reader.transfer(5)
        reader.halt()

Errors, all :class:`ReaderError`:

======================  =========================================================
``NoCard``              the card is not (or no longer) in the field
``Timeout``             the reader chip or the card did not answer in time
``AuthFailed``          the card refused the key (wrong key or wrong UID)
``CardIOError``         NAK, CRC or frame error on the air: ask the holder to tap again
======================  =========================================================
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

KEY_A = const(0x60)
KEY_B = const(0x61)

# Card operations, for _card_io (one call per MIFARE / ISO 14443-3 command).
OP_SELECT = const(0)
OP_AUTH = const(1)
OP_READ = const(2)
OP_WRITE = const(3)
OP_VALUE = const(4)
OP_TRANSFER = const(5)
OP_HALT = const(6)

# ---------------------------------------------------------------------------------------
# Card I/O time model (microseconds on the air and in the card, not in the reader or host).
#
# Air time: ISO/IEC 14443-2 type A at fc/128 = 105.9 kbit/s, one bit is 128/13.56 MHz
# = 9.4395 us; each byte costs 8 data bits + 1 parity bit, each frame adds start of
# communication and end of communication (2 bit periods).  _air_us(n) = (9n + 2) * 9.4395.
#
# Byte counts drivers pass (tx = reader to card, rx = card to reader), including the two
# CRC_A bytes where a frame carries them, excluding 4-bit ACK/NAK (modelled below):
#   OP_SELECT    one call per exchange: REQA/WUPA tx 1 rx 2; ANTICOLLISION CLn tx 2 rx 5;
#                SELECT CLn tx 9 rx 3.  A 4-byte UID is 3 calls, a 7-byte UID 5
#                (Reader._select_io does this for chips that select by themselves).
#   OP_AUTH      tx 12 (AUTH frame 4 + reader token 8), rx 8 (card nonce 4 + token 4)
#   OP_READ      tx 4, rx 18
#   OP_WRITE     tx 22 (part 1: 4, part 2: 16 data + CRC), rx 0
#   OP_VALUE     tx 10 (part 1: 4, part 2: 4-byte operand + CRC), rx 0
#   OP_TRANSFER  tx 4, rx 0
#   OP_HALT      tx 4, rx 0
#
# Card-side time per command (_OP_FIXED_US), from the NXP MF1S50yyX/V1 datasheet
# (MIFARE Classic EV1 1K, Rev. 3.0): frame delay time n=9 -> (9*128+84)/fc = 91 us before
# each card answer (section 12 timing tables, "n=9"); a 4-bit ACK is 5 bit periods = 47 us.
# Section 8.2, Fig. 4 "MIFARE Classic command flow diagram" gives the typical
# transaction times: selection ~2.5 ms (+~1 ms for a 7-byte UID), authentication ~2 ms,
# read ~2.5 ms, write ~5.5 ms, de-/increment ~2.5 ms, transfer ~4.5 ms.  What Fig. 4's
# write and transfer times leave beyond air time, FDTs and ACKs is EEPROM programming:
# write 5500 - 1907 air - 2*(91+47) = ~3300 us; transfer 4500 - 359 air - 91 - 47 = ~4000 us.
# Value commands' part 2 is not acknowledged (section 12.4 remark) so the reader waits out
# a time-out: 2500 - 887 air - 91 - 47 = ~1500 us.  HLTA is never answered: the reader
# waits 1 ms (ISO/IEC 14443-3, HLTA) before taking silence as success.
# ---------------------------------------------------------------------------------------
# MIFARE Classic value commands (MF1S50yyX datasheet, section 9): the same on every reader chip.
_MF_DECREMENT = const(0xC0)
_MF_INCREMENT = const(0xC1)
_MF_RESTORE = const(0xC2)
_BIT_PS = const(9439528)  # picoseconds per bit at 106 kbit/s: 128 / 13.56 MHz
_FDT_US = const(91)
_ACK_US = const(47)
_FRAME_BITS = const(2)  # start + end of communication, per frame
_T_PROG_WRITE_US = const(3300)
_T_PROG_TRANSFER_US = const(4000)
_T_VALUE_WAIT_US = const(1500)
_T_HALT_WAIT_US = const(1000)

# Indexed by OP_*: what one command costs beyond the bytes passed to _card_io.
_OP_FIXED_US = (
    _FDT_US,  # OP_SELECT: one card answer
    2 * _FDT_US + 2 * (_FRAME_BITS * _BIT_PS // 1000000),  # OP_AUTH: 2 answers, 2 more frames
    _FDT_US,  # OP_READ
    2 * (_FDT_US + _ACK_US) + _T_PROG_WRITE_US,  # OP_WRITE: ACK after each part
    _FDT_US + _ACK_US + _T_VALUE_WAIT_US,  # OP_VALUE: ACK after part 1, none after part 2
    _FDT_US + _ACK_US + _T_PROG_TRANSFER_US,  # OP_TRANSFER
    _T_HALT_WAIT_US,  # OP_HALT
)


def air_us(nbytes):
    """Microseconds one frame of ``nbytes`` bytes takes on the air at 106 kbit/s (0 for none)."""
    if nbytes <= 0:
        return 0
    return (nbytes * 9 + _FRAME_BITS) * _BIT_PS // 1000000


def card_io_time_us(op, tx_bytes, rx_bytes):
    """Modelled time of one card command: air time of its bytes plus the card's own time."""
    return air_us(tx_bytes) + air_us(rx_bytes) + _OP_FIXED_US[op]


class ReaderError(Exception):
    """Anything that went wrong talking to the reader chip or the card."""


class NoCard(ReaderError):
    """No card in the field, or the card left it during the transaction."""


class Timeout(ReaderError):
    """The reader chip or the card did not answer in time."""


class AuthFailed(ReaderError):
    """The card refused authentication: wrong key, wrong key type, or wrong UID."""


class CardIOError(ReaderError):
    """NAK, CRC or framing error on the air; ask the holder to tap again."""


class Reader:
    """What every MIFARE Classic reader driver provides.

    Counters, for the benchmark: ``commands`` (reader chip commands issued; the driver
    increments it), ``card_ios`` and ``card_io_us`` (MIFARE commands exchanged with the card
    and their modelled time; the driver calls :meth:`_card_io` once per card command).
    """

    def __init__(self):
        self.commands = 0
        self.card_ios = 0
        self.card_io_us = 0

    def reset_counters(self):
        self.commands = 0
        self.card_ios = 0
        self.card_io_us = 0

    @micropython.native
    def _card_io(self, op, tx_bytes, rx_bytes):
        """Account one card command (see the time model at the top of this module); the same
        sum as :func:`card_io_time_us`, without its calls (drivers do this per command)."""
        self.card_ios += 1
        t = _OP_FIXED_US[op]
        if tx_bytes > 0:
            t += (tx_bytes * 9 + _FRAME_BITS) * _BIT_PS // 1000000
        if rx_bytes > 0:
            t += (rx_bytes * 9 + _FRAME_BITS) * _BIT_PS // 1000000
        self.card_io_us += t

    @micropython.native
    def _select_io(self, uid_len):
        """Account a whole REQA + anticollision + select sequence for a ``uid_len``-byte UID."""
        self._card_io(OP_SELECT, 1, 2)
        for _ in range(2 if uid_len == 7 else 1):
            self._card_io(OP_SELECT, 2, 5)
            self._card_io(OP_SELECT, 9, 3)

    def _missing(self, name):
        return NotImplementedError("%s.%s() is not implemented" % (type(self).__name__, name))

    def init(self):
        """Set the chip up (reset, SAM configuration, RF settings); raises ReaderError."""
        raise self._missing("init")

    @micropython.native
    def select(self, uid_buf):
        """Poll for ONE card; write its UID into ``uid_buf`` (len >= 7).

        :returns: the UID length, 4 or 7, or 0 when no card is in the field.
        """
        raise self._missing("select")

    @micropython.native
    def auth(self, block, key_type, key, uid_mv):
        """Authenticate ``block``'s sector with ``key`` (6 bytes) as KEY_A or KEY_B.

        ``uid_mv`` is the UID returned by select (4 or 7 bytes).
        :raises AuthFailed: the card refused the key.
        """
        raise self._missing("auth")

    @micropython.native
    def read_block(self, block, out_buf):
        """Read 16 bytes of ``block`` into ``out_buf`` (bytearray or memoryview)."""
        raise self._missing("read_block")

    @micropython.native
    def write_block(self, block, data):
        """Write 16 bytes of ``data`` to ``block``."""
        raise self._missing("write_block")

    @micropython.native
    def decrement(self, block, amount):
        """Load value block ``block`` minus ``amount`` into the card's transfer buffer."""
        self._value(_MF_DECREMENT, block, amount)

    def increment(self, block, amount):
        """Load value block ``block`` plus ``amount`` into the card's transfer buffer."""
        self._value(_MF_INCREMENT, block, amount)

    @micropython.native
    def restore(self, block):
        """Load value block ``block`` unchanged into the card's transfer buffer."""
        self._value(_MF_RESTORE, block, 0)

    @micropython.native
    def _value(self, cmd, block, amount):
        """Send the two-step value command ``cmd`` (command + block, then the 4-byte operand)."""
        raise self._missing("_value")

    @micropython.native
    def transfer(self, block):
        """Write the card's transfer buffer to ``block``."""
        raise self._missing("transfer")

    def halt(self):
        """Put the card to HALT (it stops answering until it leaves the field or a WUPA)."""
        raise self._missing("halt")
