"""NXP PN532 reader driver: host frames, chip commands, and MIFARE Classic through
InDataExchange, as a :class:`firmware.mifare.Reader`.

References: PN532 User Manual UM0701-02 (section 6.2 host frames, section 7 commands).

Usage::

    from machine import UART                      # on the unix port: firmware.hw.unix_uart
    from firmware.drivers.pn532 import PN532_UART
    from firmware.mifare import KEY_A
    rdr = PN532_UART(UART(1, baudrate=115200, tx=17, rx=16))
    rdr.init()
    uid = bytearray(7)
    n = rdr.select(uid)
    if n:
        rdr.auth(4, KEY_A, key, memoryview(uid)[:n])
        rdr.read_block(4, buf)

========================  =================================================================
Host link                 HSU (UART) at 115200 baud; I2C/SPI would be subclasses that
                          override ``_wakeup``, ``_write_frame``, ``_recv`` and ``_drain``.
                          Normal information frames only (no extended frames: no command
                          here needs more than 254 bytes).  Answers are read in as few
                          bus reads as the line allows and checked in place; the line is
                          drained before a command only after an exchange that did not
                          end cleanly.
Checks                    LCS and DCS of every answer; a bad one is answered with NACK so the
                          chip resends (twice), then :class:`FrameError`.  A missing ACK
                          resends a chip command (3 tries), then :class:`Timeout`; a card
                          command (InDataExchange) is not sent twice: it is aborted with an
                          ACK and raises Timeout, as a missing answer does.
Polling                   ``init`` sets MxRtyPassiveActivation to 1 (RFConfiguration item 5)
                          so InListPassiveTarget returns "no target" instead of blocking.
Card errors               status 0x14 on authentication -> AuthFailed; 0x14 on another
                          MIFARE command (the card NAKed) -> CardIOError; 0x01 (the card did
                          not answer) -> NoCard; any other status -> CardIOError.
Quirk                     the PN532 lists a card that is still on the reader again after
                          InRelease, so the application must not take a second tap from the
                          same UID as a new one.
========================  =================================================================
"""

try:
    import micropython
except ImportError:
    from typing import Any  # noqa: F401 - the type comments below (MicroPython has no typing module)

    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity
    from protocol.compat import ptr8  # CPython reads viper annotations

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

try:
    from time import sleep_ms, ticks_diff, ticks_ms  # type: ignore[attr-defined]
except ImportError:
    from firmware.hw import sleep_ms, ticks_diff, ticks_ms

from firmware.mifare import (
    KEY_A,
    KEY_B,
    OP_AUTH,
    OP_HALT,
    OP_READ,
    OP_TRANSFER,
    OP_VALUE,
    OP_WRITE,
    AuthFailed,
    CardIOError,
    NoCard,
    Reader,
    ReaderError,
    Timeout,
    card_io_time_us,
)

_DEBUG = const(False)

# Commands (UM0701-02 section 7, table 11 "Command set").
_CMD_DIAGNOSE = const(0x00)
_CMD_GET_FIRMWARE_VERSION = const(0x02)
_CMD_SAM_CONFIGURATION = const(0x14)
_CMD_RF_CONFIGURATION = const(0x32)
_CMD_IN_DATA_EXCHANGE = const(0x40)
_CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)
_CMD_IN_RELEASE = const(0x52)

# RFConfiguration items (section 7.3.1).
_RF_FIELD = const(0x01)
_RF_MAX_RETRIES = const(0x05)
_PASSIVE_RETRIES = const(0x01)  # MxRtyPassiveActivation: 2 tries, then "no target"

# MIFARE Classic commands sent through InDataExchange (MF1S50yyX datasheet section 12).
_MF_READ = const(0x30)
_MF_WRITE = const(0xA0)
_MF_TRANSFER = const(0xB0)

# Frame identifiers (section 6.2.1).
_TFI_HOST = const(0xD4)
_TFI_CHIP = const(0xD5)
_TFI_ERROR = const(0x7F)
_ACK_FRAME = b"\x00\x00\xff\x00\xff\x00"
_NACK_FRAME = b"\x00\x00\xff\xff\x00\x00"
# HSU wake-up: 0x55 0x55 then a long preamble of zeros while the oscillator starts (6.3.2.3).
_WAKEUP = b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

_P = const(7)  # offset of the first command parameter in the TX buffer
_TX_MAX = const(48)
_RX_MAX = const(64)  # TFI + data of one answer
_RB = const(96)  # bytes from the chip: an ACK and a whole answer frame, with room to spare
_ACK_TIMEOUT_MS = const(100)  # the chip ACKs within ~1 ms; a loaded host may be slow to read it
_SEND_TRIES = const(3)
_NACK_TRIES = const(2)
_TIMEOUT_MS = const(100)
_POLL_TIMEOUT_MS = const(250)

# Modelled card time (firmware.mifare) of each MIFARE command sent, by OP_*: AUTH 12 bytes to
# the card and 8 back, READ 4 and 18, WRITE 22, VALUE 10, TRANSFER 4, HALT 4.
_OP_US = (
    0,
    card_io_time_us(OP_AUTH, 12, 8),
    card_io_time_us(OP_READ, 4, 18),
    card_io_time_us(OP_WRITE, 22, 0),
    card_io_time_us(OP_VALUE, 10, 0),
    card_io_time_us(OP_TRANSFER, 4, 0),
    card_io_time_us(OP_HALT, 4, 0),
)

_GOT_ACK = const(-1)
_GOT_NACK = const(-2)
_GOT_NOTHING = const(-3)

# Status codes seen with MIFARE Classic (section 7.1, table "Error code list").
_ERRORS = (
    (0x01, "time-out, the target has not answered"),
    (0x02, "CRC error on the air"),
    (0x03, "parity error on the air"),
    (0x13, "format error on the air"),
    (0x14, "mifare authentication error"),
    (0x27, "command not acceptable in the current context"),
    (0x7F, "syntax error (error frame)"),
)


def _error_text(code):
    for c, text in _ERRORS:
        if c == code:
            return text
    return "unknown error"


class PN532Error(ReaderError):
    """A status code from the chip; ``code`` is the number, the message says what it means."""

    def __init__(self, code):
        super().__init__("PN532 error 0x%02x: %s" % (code, _error_text(code)))
        self.code = code


class FrameError(ReaderError):
    """A host frame that failed its checks (checksum, identifier, length)."""


# The byte work of every exchange, compiled by the viper emitter (machine code on typed ints
# and byte pointers): a command costs the driver a few thousand instructions instead of tens.


@micropython.viper
def _seal(tx: ptr8, n: int) -> int:
    """Finish the command frame in ``tx`` (TFI, code and ``n`` parameter bytes from offset 5):
    LEN, LCS, DCS and the postamble; returns the frame length."""
    ln = n + 2
    tx[3] = ln
    tx[4] = (0 - ln) & 0xFF
    end = 7 + n
    total = 0
    i = 5
    while i < end:
        total += tx[i]
        i += 1
    tx[end] = (0 - total) & 0xFF
    tx[end + 1] = 0
    return end + 2


@micropython.viper
def _ack_end(rb: ptr8, rn: int) -> int:
    """Where the bytes after a leading ACK (00 00 FF 00 FF, its 00 postamble if read) start in
    ``rb[:rn]``; 0 if ``rb`` does not start with an ACK."""
    if rn < 5 or rb[0] != 0 or rb[1] != 0 or rb[2] != 0xFF or rb[3] != 0 or rb[4] != 0xFF:
        return 0
    if rn > 5 and rb[5] == 0:
        return 6
    return 5


@micropython.viper
def _answer_at(rb: ptr8, p: int, rn: int, code: int, ack: int) -> int:
    """The chip's answer to command ``code`` checked in place, when it came whole within
    ``rb[:rn]``: the frame 00 00 FF LEN LCS D5 code+1 data DCS (postamble or not) at ``rb[p:]``,
    or, with ``ack``, right after an ACK and its postamble at ``rb[0:6]``. Returns
    ``d << 16 | end << 8 | LEN``, with the TFI at ``rb[d]`` and the next unread byte at
    ``end``; 0 otherwise (then the careful path reads and judges the bytes: preamble, NACK,
    checksum, error frame, another command's answer)."""
    if ack:
        if rn < 6 or rb[0] != 0 or rb[1] != 0 or rb[2] != 0xFF or rb[3] != 0 or rb[4] != 0xFF or rb[5] != 0:
            return 0
        p = 6
    if p + 5 > rn or rb[p] != 0 or rb[p + 1] != 0 or rb[p + 2] != 0xFF:
        return 0
    ln = rb[p + 3]
    d = p + 5
    if ((ln + rb[p + 4]) & 0xFF) != 0 or ln < 2 or ln > _RX_MAX or d + ln >= rn:
        return 0
    total = 0
    i = d
    while i <= d + ln:  # TFI + data + DCS = 0 (mod 256)
        total += rb[i]
        i += 1
    if (total & 0xFF) != 0 or rb[d] != _TFI_CHIP or rb[d + 1] != code + 1:
        return 0
    end = d + ln + 1
    if end < rn and rb[end] == 0:
        end += 1  # postamble
    return (d << 16) | (end << 8) | ln


@micropython.viper
def _copy16(dst: ptr8, src: ptr8, s: int):
    """dst[0:16] = src[s:s + 16], without a slice object."""
    for i in range(16):
        dst[i] = src[s + i]


class PN532(Reader):
    """The PN532 chip, whatever the host bus; subclasses move the bytes."""

    def __init__(self):
        super().__init__()
        self._tx = bytearray(_TX_MAX)
        self._tx[2] = 0xFF  # preamble and start code 00 00 FF, then LEN LCS, TFI
        self._tx[5] = _TFI_HOST
        self._txmv = memoryview(self._tx)
        # The first n bytes of _tx as a memoryview, made once per frame length.
        self._frames = [None] * (_TX_MAX + 1)  # type: list[memoryview | None]
        # Bytes from the chip, parsed in place: an answer's TFI sits at _rb[_d].
        self._rb = bytearray(_RB)
        self._rbmv = memoryview(self._rb)
        self._rp = 0  # next unread byte
        self._rn = 0  # end of the bytes read
        self._d = 0
        self._stale = True  # the line may hold bytes of an earlier exchange: drain it first
        # Set by a bus that can wait for the chip's bytes: wait(ms) -> True once readable,
        # readinto(buf, n) -> count or None. _send_command then reads without _recv's polling.
        self._wait = None  # type: Any
        self._readinto = None  # type: Any
        self._tg = 0
        self.atqa = 0
        self.sak = 0

    # -- bus, overridden per host interface ------------------------------------------------

    def _wakeup(self):
        pass

    def _write_frame(self, mv):
        raise self._missing("_write_frame")

    def _recv(self, buf, nbytes, start, timeout_ms):
        """Read up to ``nbytes`` of what the chip has sent (at least one byte) into ``buf``;
        returns the count, or 0 if nothing came ``timeout_ms`` after ``start``."""
        raise self._missing("_recv")

    def _drain(self):
        """Throw away bytes left over from an earlier exchange."""

    # -- frames ------------------------------------------------------------------------------

    def _need(self, k, start, timeout_ms):
        """True once ``_rb`` holds ``k`` unread bytes; False if they did not come in time."""
        rb = self._rb
        while self._rn - self._rp < k:
            p = self._rp
            n = self._rn
            if p == n:
                p = n = 0
            elif p + k > _RB:  # a frame split across reads: move its start to the front
                for i in range(n - p):
                    rb[i] = rb[p + i]
                n -= p
                p = 0
            self._rp = p
            got = self._recv(rb if n == 0 else self._rbmv[n:], _RB - n, start, timeout_ms)
            self._rn = n + got
            if not got:
                return False
        return True

    def _discard(self):
        """Drop what was read but not parsed, and what waits on the line."""
        self._rp = self._rn = 0
        self._drain()

    def _read_frame(self, timeout_ms):
        """Read one frame: LEN of TFI + data (at ``_rb[_d:]``), or _GOT_ACK/_GOT_NACK/_GOT_NOTHING."""
        start = ticks_ms()
        rb = self._rb
        while True:  # start code 00 FF after any preamble, then LEN and LCS
            if self._rn - self._rp < 4 and not self._need(4, start, timeout_ms):
                return _GOT_NOTHING
            p = self._rp
            if rb[p] == 0x00 and rb[p + 1] == 0xFF:
                break
            self._rp = p + 1
        ln = rb[p + 2]
        lcs = rb[p + 3]
        p += 4
        self._rp = p
        if ln == 0x00 and lcs == 0xFF:
            if p < self._rn and rb[p] == 0x00:
                self._rp = p + 1  # postamble
            return _GOT_ACK
        if ln == 0xFF and lcs == 0x00:
            return _GOT_NACK
        if ln == 0xFF and lcs == 0xFF:
            raise FrameError("extended frame from the PN532: not supported")
        if (ln + lcs) & 0xFF:
            raise FrameError(
                "bad frame length checksum: LEN 0x%02x, expected LCS 0x%02x, got 0x%02x"
                % (ln, (-ln) & 0xFF, lcs)
            )
        if ln > _RX_MAX:
            raise FrameError("frame too long: LEN %d, buffer holds %d" % (ln, _RX_MAX))
        if self._rn - p <= ln and not self._need(ln + 1, start, timeout_ms):
            raise FrameError("frame cut short: got %d of %d bytes and the checksum" % (self._rn - self._rp, ln))
        p = self._rp
        end = p + ln
        total = rb[end]  # DCS: TFI + data + DCS = 0 (mod 256)
        for i in range(p, end):
            total += rb[i]
        end += 1
        if end < self._rn and rb[end] == 0x00:
            end += 1  # postamble
        self._rp = end
        if total & 0xFF:
            raise FrameError("bad frame checksum: expected 0x%02x, got 0x%02x"
                             % ((rb[p + ln] - total) & 0xFF, rb[p + ln]))
        self._d = p
        return ln

    def _answer(self, code, timeout_ms):
        """Read the answer frame the hard way: NACK a damaged one (twice), abort on time-out."""
        nacks = 0
        while True:
            try:
                got = self._read_frame(timeout_ms)
            except FrameError as e:
                if nacks == _NACK_TRIES:
                    raise e
                nacks += 1
                self._discard()
                self._write_frame(_NACK_FRAME)  # ask for the answer again (section 6.2.1.4)
                continue
            if got == _GOT_NOTHING:
                raise self._no_answer(code, timeout_ms)
            if got >= 0:
                return got

    def _no_answer(self, code, timeout_ms):
        self._write_frame(_ACK_FRAME)  # abort the command (section 6.2.1.3)
        return Timeout("PN532 gave no answer to command 0x%02x within %d ms" % (code, timeout_ms))

    @micropython.native
    def _send_command(self, code, n, expect=_RX_MAX, timeout_ms=_TIMEOUT_MS, tries=_SEND_TRIES, op=-1):
        """Send command ``code`` with ``n`` parameter bytes already at ``_tx[_P:]``.

        ``expect`` is the answer's usual LEN (TFI + data): the ACK and an answer of that size
        are read with one bus read when they are both there; any other size works too.
        ``tries``: sends without an ACK before giving up; 1 for a card command, which the chip
        may have run although its ACK was lost (a DECREMENT sent twice takes twice), so it is
        aborted with an ACK instead of sent again.
        ``op``: a MIFARE operation (``OP_*``) for a card command, an InDataExchange whose MIFARE
        bytes (command, block, ...) are at ``_tx[_P + 1:]``: the target goes in ``_tx[_P]``,
        the answer's status byte is checked and the card I/O counted (one method, not two: a
        call costs MicroPython more than the checks).

        :returns: the number of answer data bytes, which start at ``_rb[_d + 2]``; for a card
            command, the number after the status byte (they start at ``_rb[_d + 3]``).
        :raises Timeout: no ACK after ``tries`` sends, or no answer in ``timeout_ms``.
        :raises FrameError: the answer failed its checks after 2 NACKs.
        :raises PN532Error: the chip answered with the syntax error frame.
        :raises NoCard, AuthFailed, CardIOError: a card command's status byte is not 0.
        """
        tx = self._tx
        if n > _TX_MAX - _P - 2:
            raise ValueError("command too long: %d parameter bytes" % n)
        tx[6] = code  # 00 00 FF and TFI D4 are in place since __init__
        if op >= 0:
            tx[_P] = self._tg
        k = _seal(tx, n)
        frame = self._frames[k]
        if frame is None:
            frame = self._frames[k] = self._txmv[:k]
        self.commands += 1
        if _DEBUG:
            print("pn532 >", bytes(frame).hex())
        # A clean exchange leaves nothing behind; after a fault, drain what the chip still sent.
        stale = self._stale
        self._stale = True
        rb = self._rb
        wait = self._wait
        readinto = self._readinto
        want = expect + 13 if expect < _RB - 13 else _RB  # ACK 6, frame overhead 7
        m = -1
        for _ in range(tries):
            if stale:
                self._discard()
            self._write_frame(frame)
            # The ACK 00 00 FF 00 FF 00 comes first, often together with the answer. A bus that
            # can wait for bytes (``_wait``) waits and reads once; else ``_recv`` polls.
            start = ticks_ms()
            rn = 0
            if wait is not None and wait(_ACK_TIMEOUT_MS):
                rn = readinto(rb, want) or 0
            if not rn:
                rn = self._recv(rb, want, start, _ACK_TIMEOUT_MS)
            fast = _answer_at(rb, 0, rn, code, 1)
            if fast:  # the usual exchange: ACK and answer whole in one read
                d = fast >> 16
                self._d = d
                end = (fast >> 8) & 0xFF
                self._rp = end
                self._rn = rn
                self._stale = end != rn
                m = (fast & 0xFF) - 2
                break
            self._rp = 0
            self._rn = rn
            if 0 < rn < 6:
                self._need(6, start, _ACK_TIMEOUT_MS)
                rn = self._rn
            p = _ack_end(rb, rn)
            if p:
                break
            got = _GOT_NOTHING
            if rn:  # something else came: parse it as a frame
                try:
                    got = self._read_frame(_ACK_TIMEOUT_MS)
                except FrameError:
                    pass
            if got == _GOT_ACK:
                p = self._rp
                rn = self._rn
                break
            stale = True
        else:
            if tries == 1:
                self._write_frame(_ACK_FRAME)  # abort, in case the chip runs it after all
            raise Timeout("PN532 did not acknowledge command 0x%02x" % code)
        if m < 0:  # the careful path: the answer after the ACK, read and checked as it comes
            m = self._answer_after_ack(code, p, rn, want, timeout_ms)
            d = self._d
        if _DEBUG:
            print("pn532 <", bytes(self._rbmv[d : d + m + 2]).hex())
        if op < 0:
            return m
        self.card_ios += 1
        self.card_io_us += _OP_US[op]
        if m and not rb[d + 2] & 0x3F:
            return m - 1
        raise self._card_error(op, tx[_P + 2], m)

    def _answer_after_ack(self, code, p, rn, want, timeout_ms):
        """The answer to ``code`` whose ACK ended at ``_rb[p]`` (``rn`` bytes read), checked in
        place when it came whole (``_answer_at``), else read through _read_frame (preamble,
        NACK, time-out, error frame); returns its data count (data at ``_rb[_d + 2]``)."""
        rb = self._rb
        if p == rn:
            p = 0
            rn = self._recv(rb, want - 6, ticks_ms(), timeout_ms)
            self._rn = rn
            if not rn:
                raise self._no_answer(code, timeout_ms)
        whole = _answer_at(rb, p, rn, code, 0)
        if whole:
            got = whole & 0xFF
            d = whole >> 16
            self._d = d
            self._rp = (whole >> 8) & 0xFF
        else:
            self._rp = p
            got = self._answer(code, timeout_ms)
            d = self._d
        if rb[d] == _TFI_ERROR:
            raise PN532Error(_TFI_ERROR)
        if got < 2 or rb[d] != _TFI_CHIP or rb[d + 1] != code + 1:
            raise FrameError(
                "unexpected answer: expected D5 %02X, got %02X %02X" % (code + 1, rb[d], rb[d + 1] if got > 1 else 0)
            )
        self._stale = self._rp != self._rn
        return got - 2

    def command(self, code, data=b"", timeout=_TIMEOUT_MS):
        """Send ``code`` with parameter bytes ``data``; returns the answer data (a memoryview
        into the receive buffer, valid until the next command)."""
        n = len(data)
        if n > _TX_MAX - _P - 2:
            raise ValueError("command too long: %d parameter bytes" % n)
        for i in range(n):
            self._tx[_P + i] = data[i]
        m = self._send_command(code, n, _RX_MAX, timeout)
        return self._data(0, m)

    def _data(self, skip, m):
        """The last answer's data after its first ``skip`` bytes, up to its ``m`` bytes."""
        d = self._d + 2
        return self._rbmv[d + skip : d + m]

    # -- chip commands -----------------------------------------------------------------------

    def get_firmware_version(self):
        """(IC, Ver, Rev, Support): (0x32, 1, 6, 7) for a PN532 v1.6."""
        d = self.command(_CMD_GET_FIRMWARE_VERSION)
        if len(d) != 4:
            raise FrameError("firmware version: expected 4 bytes, got %d" % len(d))
        return d[0], d[1], d[2], d[3]

    def sam_configuration(self, mode=1, timeout=0, irq=0):
        """Mode 1 = normal (no SAM); also takes the chip out of its power-on low-battery mode."""
        self._tx[_P] = mode
        self._tx[_P + 1] = timeout
        self._tx[_P + 2] = irq
        self._send_command(_CMD_SAM_CONFIGURATION, 3, 2)

    def rf_configuration(self, item, data):
        """RFConfiguration ``item`` with its configuration bytes ``data``."""
        self._tx[_P] = item
        for i in range(len(data)):
            self._tx[_P + 1 + i] = data[i]
        self._send_command(_CMD_RF_CONFIGURATION, 1 + len(data), 2)

    def set_passive_retries(self, retries):
        """How often InListPassiveTarget retries before it answers "no target" (0xFF: forever)."""
        self.rf_configuration(_RF_MAX_RETRIES, (0xFF, 0x01, retries))

    def rf_field(self, on):
        self.rf_configuration(_RF_FIELD, (0x01 if on else 0x00,))

    def in_list_passive_target(self, max_tg=1, brty=0, initiator_data=b""):
        """List up to ``max_tg`` targets; returns the answer (NbTg, then per target its data)."""
        self._tx[_P] = max_tg
        self._tx[_P + 1] = brty
        for i in range(len(initiator_data)):
            self._tx[_P + 2 + i] = initiator_data[i]
        m = self._send_command(_CMD_IN_LIST_PASSIVE_TARGET, 2 + len(initiator_data), _RX_MAX, _POLL_TIMEOUT_MS)
        return self._data(0, m)

    def in_data_exchange(self, tg, data, timeout=_TIMEOUT_MS):
        """Send ``data`` to target ``tg``; returns its answer, raises PN532Error on a status."""
        n = len(data)
        self._tx[_P] = tg
        for i in range(n):
            self._tx[_P + 1 + i] = data[i]
        m = self._send_command(_CMD_IN_DATA_EXCHANGE, 1 + n, _RX_MAX, timeout)
        if m < 1:
            raise FrameError("InDataExchange answer has no status byte")
        status = self._rb[self._d + 2] & 0x3F
        if status:
            raise PN532Error(status)
        return self._data(1, m)

    def in_release(self, tg=0):
        """Release target ``tg`` (0: all); returns the status byte."""
        self._tx[_P] = tg
        m = self._send_command(_CMD_IN_RELEASE, 1, 3)
        return self._rb[self._d + 2] if m else 0

    def diagnose_line(self, n=16):
        """Communication line test: the chip echoes ``n`` bytes; True if they come back intact."""
        self._tx[_P] = 0x00
        for i in range(n):
            self._tx[_P + 1 + i] = i
        m = self._send_command(_CMD_DIAGNOSE, 1 + n, 3 + n)
        d = self._d + 2
        return m == 1 + n and self._rb[d : d + 1 + n] == self._tx[_P : _P + 1 + n]

    # -- firmware.mifare.Reader --------------------------------------------------------------

    def init(self):
        self._wakeup()
        self.sam_configuration()
        ic, ver, rev, _ = self.get_firmware_version()
        if ic != 0x32:
            raise ReaderError("not a PN532: IC 0x%02x (firmware %d.%d)" % (ic, ver, rev))
        self.set_passive_retries(_PASSIVE_RETRIES)

    @micropython.native
    def select(self, uid_buf):
        self._tx[_P] = 1  # MaxTg
        self._tx[_P + 1] = 0  # 106 kbps type A
        m = self._send_command(_CMD_IN_LIST_PASSIVE_TARGET, 2, 12, _POLL_TIMEOUT_MS)  # 12: a 4-byte UID
        rb = self._rb
        d = self._d  # answer: D5 4B NbTg Tg ATQA(2) SAK NFCIDLength NFCID1
        self._tg = 0
        if m < 1 or rb[d + 2] == 0:
            return 0
        if m < 6:
            raise FrameError("InListPassiveTarget answer too short: %d bytes" % m)
        n = rb[d + 7]
        if (n != 4 and n != 7) or m < 6 + n:
            raise CardIOError("card with a %d-byte UID: not a MIFARE Classic" % n)
        self.atqa = (rb[d + 4] << 8) | rb[d + 5]
        self.sak = rb[d + 6]
        d += 8
        for i in range(n):
            uid_buf[i] = rb[d + i]
        self._tg = rb[d - 5]
        self._select_io(n)
        return n

    def _card_error(self, op, block, m):
        """The error for an InDataExchange answer of ``m`` bytes without status 0."""
        if m < 1:
            return FrameError("InDataExchange answer has no status byte")
        status = self._rb[self._d + 2] & 0x3F
        if status == 0x01:
            return NoCard("card did not answer at block %d (PN532 error 0x01): it left the field" % block)
        if status == 0x14 and op == OP_AUTH:
            return AuthFailed("card refused the key for block %d (PN532 error 0x14)" % block)
        if status == 0x14:
            return CardIOError("card refused the command on block %d (NAK, PN532 error 0x14)" % block)
        return CardIOError("block %d: PN532 error 0x%02x: %s" % (block, status, _error_text(status)))

    @micropython.native
    def auth(self, block, key_type, key, uid_mv):
        if key_type != KEY_A and key_type != KEY_B:
            raise ValueError("key type must be KEY_A (0x60) or KEY_B (0x61), got 0x%02x" % key_type)
        if len(key) != 6:
            raise ValueError("key must be 6 bytes, got %d" % len(key))
        tx = self._tx
        tx[_P + 1] = key_type
        tx[_P + 2] = block
        tx[_P + 3 : _P + 9] = key
        tx[_P + 9] = uid_mv[-4]  # the last 4 UID bytes enter the authentication
        tx[_P + 10] = uid_mv[-3]
        tx[_P + 11] = uid_mv[-2]
        tx[_P + 12] = uid_mv[-1]
        self._send_command(_CMD_IN_DATA_EXCHANGE, 13, 3, _TIMEOUT_MS, 1, OP_AUTH)

    @micropython.native
    def read_block(self, block, out_buf):
        self._tx[_P + 1] = _MF_READ
        self._tx[_P + 2] = block
        if len(out_buf) < 16:  # _copy16 writes without bounds checks
            raise ValueError("block buffer must hold 16 bytes, got %d" % len(out_buf))
        m = self._send_command(_CMD_IN_DATA_EXCHANGE, 3, 19, _TIMEOUT_MS, 1, OP_READ)
        if m != 16:
            raise CardIOError("short read of block %d: expected 16 bytes, got %d" % (block, m))
        _copy16(out_buf, self._rb, self._d + 3)

    @micropython.native
    def write_block(self, block, data):
        if len(data) != 16:
            raise ValueError("block data must be 16 bytes, got %d" % len(data))
        tx = self._tx
        tx[_P + 1] = _MF_WRITE
        tx[_P + 2] = block
        tx[_P + 3 : _P + 19] = data
        self._send_command(_CMD_IN_DATA_EXCHANGE, 19, 3, _TIMEOUT_MS, 1, OP_WRITE)

    @micropython.native
    def _value(self, cmd, block, amount):
        if amount < 0 or amount > 0x7FFFFFFF:
            raise ValueError("amount %d out of range 0..2**31-1" % amount)
        tx = self._tx
        tx[_P + 1] = cmd
        tx[_P + 2] = block
        tx[_P + 3] = amount & 0xFF  # little-endian operand
        tx[_P + 4] = (amount >> 8) & 0xFF
        tx[_P + 5] = (amount >> 16) & 0xFF
        tx[_P + 6] = amount >> 24
        self._send_command(_CMD_IN_DATA_EXCHANGE, 7, 3, _TIMEOUT_MS, 1, OP_VALUE)

    @micropython.native
    def transfer(self, block):
        self._tx[_P + 1] = _MF_TRANSFER
        self._tx[_P + 2] = block
        self._send_command(_CMD_IN_DATA_EXCHANGE, 3, 3, _TIMEOUT_MS, 1, OP_TRANSFER)

    def halt(self):
        """Release the target: the PN532 halts the card (HLTA)."""
        if self._tg:
            tg = self._tg
            self._tg = 0
            self.in_release(tg)
            self.card_ios += 1
            self.card_io_us += _OP_US[OP_HALT]


class PN532_UART(PN532):
    """PN532 on its HSU (UART) interface; ``uart`` is a machine.UART or firmware.hw.unix_uart.UART.

    A UART with a ``wait(ms)`` method (True once bytes are readable, False after ``ms``
    milliseconds) lets the driver block until the chip answers; without one it looks again
    every millisecond.
    """

    def __init__(self, uart):
        super().__init__()
        self._uart = uart
        self._wait = getattr(uart, "wait", None)
        self._write_frame = uart.write  # type: ignore[method-assign]  # a frame is one write
        self._readinto = uart.readinto  # bound once: every exchange reads

    def _wakeup(self):
        self._uart.write(_WAKEUP)
        sleep_ms(2)

    @micropython.native
    def _recv(self, buf, nbytes, start, timeout_ms):
        wait = self._wait
        readinto = self._readinto
        while True:
            left = timeout_ms - ticks_diff(ticks_ms(), start)
            if wait is not None:
                wait(left if left > 0 else 0)  # returns as soon as bytes come
            got = readinto(buf, nbytes)
            if got or left <= 0:
                return got or 0
            if wait is None:
                sleep_ms(1)

    def _drain(self):
        uart = self._uart
        while uart.any():
            uart.readinto(self._rb)
