"""NXP MFRC522 contactless reader IC on SPI, as a MIFARE Classic :class:`~firmware.mifare.Reader`.

The caller injects the bus: a ``machine.SPI`` and the chip-select ``machine.Pin`` on the
ESP32, ``firmware.hw.unix_spi.SPI``/``Pin`` on the unix port (wired to the register-level
emulator in ``terminal_sim``). Only ``spi.write``, ``spi.write_readinto`` and ``cs.value``
are used; all buffers are allocated once in ``__init__``.

Usage::

    from firmware.drivers.mfrc522 import MFRC522
    rdr = MFRC522(spi, cs)
    rdr.init()                       # soft reset, timer, antenna on; raises ReaderError
    uid = bytearray(7)
    n = rdr.select(uid)              # 0, 4 or 7
    rdr.auth(4, KEY_A, key, memoryview(uid)[:n])
    rdr.read_block(4, buf)

What the driver does (NXP MFRC522 datasheet rev. 3.9 section numbers; ISO/IEC 14443-3;
MF1S50yyX datasheet for the MIFARE commands):

==========================  ======================================================================
SPI (8.1.2)                 address byte ``(reg << 1) & 0x7E``, bit 7 set to read; FIFO reads in
                            one stream (the address repeated, 0x00 last), FIFO writes in one
REQA                        7-bit short frame (BitFramingReg TxLastBits = 7); a second REQA when
                            nothing answers, since a card left ACTIVE drops to IDLE on the first
anticollision               cascade levels CL1 0x93 / CL2 0x95, cascade tag 0x88, BCC checked,
                            bit-oriented on collisions (CollReg CollPos, RxAlign = TxLastBits):
                            the card with a 1 at each colliding bit wins, so two cards always
                            give the same one; 4- and 7-byte UIDs (10-byte UIDs refused)
CRC_A                       the chip's CRC coprocessor (CalcCRC, preset 0x6363 in ModeReg)
                            appends CRC_A to every MIFARE frame and checks every answer
MIFARE Classic              MFAuthent (Status2Reg MFCrypto1On checked), READ, two-step WRITE
                            (4-bit ACK 0xA twice), DECREMENT/INCREMENT/RESTORE (ACK, then
                            silence is the acknowledgement), TRANSFER, HLTA (never answered)
errors                      ComIrqReg TimerIRq -> Timeout; ErrorReg BufferOvfl/ParityErr/
                            ProtocolErr/CollErr, NAK, CRC mismatch -> CardIOError; a silent
                            MFAuthent -> AuthFailed; no chip (VersionReg 0x00/0xFF) -> ReaderError
==========================  ======================================================================

Quirk: a card removed in the middle of a value operation's second step is indistinguishable
from its passive ACK; the TRANSFER that must follow then times out, so nothing is written.
"""

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

from firmware import mifare

_DEBUG = const(False)

# Registers, datasheet 9.2 "Register overview", with their bits beneath (9.3).
# Page 0: command and status (9.3.1)
_REG_COMMAND = const(0x01)  # 9.3.1.2 CommandReg
_COMMAND_POWER_DOWN = const(0x10)
_REG_COM_IRQ = const(0x04)  # 9.3.1.5 ComIrqReg; bit 7 Set1: write 0 clears the marked bits
_COM_IRQ_RX = const(0x20)
_COM_IRQ_IDLE = const(0x10)
_COM_IRQ_TIMER = const(0x01)
_COM_IRQ_ALL = const(0x7F)
_REG_DIV_IRQ = const(0x05)  # 9.3.1.6 DivIrqReg; bit 7 Set2
_DIV_IRQ_CRC = const(0x04)
_REG_ERROR = const(0x06)  # 9.3.1.7 ErrorReg
_ERR_WR = const(0x80)
_ERR_TEMP = const(0x40)
_ERR_BUFFER_OVFL = const(0x10)
_ERR_COLL = const(0x08)
_ERR_CRC = const(0x04)
_ERR_PARITY = const(0x02)
_ERR_PROTOCOL = const(0x01)
_ERR_FATAL = const(0xD7)  # every error but CollErr (handled by anticollision) and reserved bit 5
_REG_STATUS2 = const(0x08)  # 9.3.1.9 Status2Reg
_STATUS2_MF_CRYPTO1_ON = const(0x08)
_REG_FIFO_DATA = const(0x09)  # 9.3.1.10 FIFODataReg, 64-byte FIFO (8.3)
_REG_FIFO_LEVEL = const(0x0A)  # 9.3.1.11 FIFOLevelReg
_FIFO_LEVEL_FLUSH = const(0x80)
_FIFO_LEVEL_MASK = const(0x7F)
_REG_CONTROL = const(0x0C)  # 9.3.1.13 ControlReg
_CONTROL_RX_LAST_BITS = const(0x07)
_REG_BIT_FRAMING = const(0x0D)  # 9.3.1.14 BitFramingReg: StartSend, RxAlign[6:4], TxLastBits[2:0]
_BIT_FRAMING_START_SEND = const(0x80)
_REG_COLL = const(0x0E)  # 9.3.1.15 CollReg
_COLL_VALUES_AFTER_COLL = const(0x80)
_COLL_POS_NOT_VALID = const(0x20)
_COLL_POS_MASK = const(0x1F)  # 1..31 = bit 1..31, 0 = bit 32
# Page 1: command (9.3.2)
_REG_MODE = const(0x11)  # 9.3.2.2 ModeReg
_MODE_TX_WAIT_RF = const(0x20)
_MODE_POL_MFIN = const(0x08)
_MODE_RESERVED = const(0x14)  # reserved bits, 1 after reset: kept
_MODE_CRC_PRESET_6363 = const(0x01)  # CRC_A preset, ISO/IEC 14443-3
_REG_TX_CONTROL = const(0x14)  # 9.3.2.5 TxControlReg
_TX_CONTROL_RF_EN = const(0x03)  # Tx2RFEn | Tx1RFEn: antenna drivers on
_REG_TX_ASK = const(0x15)  # 9.3.2.6 TxASKReg
_TX_ASK_FORCE_100ASK = const(0x40)
# Page 2: configuration (9.3.3)
_REG_CRC_RESULT_H = const(0x21)  # 9.3.3.2 CRCResultReg
_REG_CRC_RESULT_L = const(0x22)
_REG_T_MODE = const(0x2A)  # 9.3.3.10 TModeReg, TPrescalerReg
_T_MODE_T_AUTO = const(0x80)  # timer starts at the end of each transmission
_REG_T_PRESCALER = const(0x2B)
_REG_T_RELOAD_H = const(0x2C)  # 9.3.3.11 TReloadReg
_REG_T_RELOAD_L = const(0x2D)
# Page 3: test (9.3.4)
_REG_VERSION = const(0x37)  # 9.3.4.8 VersionReg: 0x91 v1.0, 0x92 v2.0

# Timer (8.5): f = 13.56 MHz / (2 * 169 + 1) = 40 kHz, 1000 ticks = 25 ms without an answer.
_T_PRESCALER = const(169)
_T_RELOAD = const(1000)

# Commands, datasheet 10.3 (table 149).
_CMD_IDLE = const(0x00)
_CMD_CALC_CRC = const(0x03)
_CMD_TRANSCEIVE = const(0x0C)
_CMD_MF_AUTHENT = const(0x0E)
_CMD_SOFT_RESET = const(0x0F)

# ISO/IEC 14443-3 type A and MIFARE Classic (MF1S50yyX section 9) command codes.
_PICC_REQA = const(0x26)
_PICC_SEL_CL1 = const(0x93)  # CL2 = 0x95
_PICC_NVB_SELECT = const(0x70)
_PICC_CASCADE_TAG = const(0x88)
_PICC_SAK_CASCADE = const(0x04)
_PICC_HLTA = const(0x50)
_MF_READ = const(0x30)
_MF_WRITE = const(0xA0)
_MF_TRANSFER = const(0xB0)
_MF_ACK = const(0x0A)

_FIFO_SIZE = const(64)
_FIFO_READ = const(0x92)  # (FIFODataReg << 1) | 0x80
# Polls of ComIrqReg before giving up on the chip: ~50 us each on a 4 MHz bus, far beyond
# the chip's own 25 ms timer, so only a dead or miswired chip reaches it.
_POLL_LIMIT = const(2000)
# One read stream: ErrorReg, FIFOLevelReg, ControlReg, CollReg, then the 0x00 end byte.
_STATUS_READ = b"\x8c\x94\x98\x9c\x00"
# One read stream: CRCResultRegL, CRCResultRegH, end.
_CRC_READ = b"\xc4\xc2\x00"
_VERSIONS = b"\x91\x92\x88\x12"  # NXP v1.0, v2.0; FM17522 and common clones answer 0x88, 0x12


def _error_text(err):
    """ErrorReg bits as words, for error messages."""
    for bit, name in (
        (_ERR_BUFFER_OVFL, "FIFO overflow"),
        (_ERR_PROTOCOL, "protocol error"),
        (_ERR_PARITY, "parity error"),
        (_ERR_CRC, "CRC error"),
        (_ERR_COLL, "collision"),
        (_ERR_TEMP, "overheated"),
        (_ERR_WR, "FIFO written at the wrong time"),
    ):
        if err & bit:
            return "MFRC522 ErrorReg 0x%02x: %s" % (err, name)
    return "MFRC522 ErrorReg 0x%02x" % err


class MFRC522(mifare.Reader):
    """MIFARE Classic reader on an MFRC522; ``spi`` and ``cs`` are injected by the board."""

    def __init__(self, spi, cs):
        super().__init__()
        self._spi = spi
        self._cs = cs
        cs.value(1)
        self._tx = bytearray(2)  # register access: address byte, value
        self._rx2 = bytearray(2)  # MISO of a register read
        self._rx = bytearray(_FIFO_SIZE + 1)  # MISO of every read stream
        self._rmv = memoryview(self._rx)
        self._fifo_rd = bytearray(_FIFO_SIZE + 1)  # FIFO read stream: address repeated, 0x00 last
        for i in range(_FIFO_SIZE + 1):
            self._fifo_rd[i] = _FIFO_READ
        self._frmv = memoryview(self._fifo_rd)
        self._fifo_wr = bytearray(1)  # FIFO write stream address byte
        self._fifo_wr[0] = _REG_FIFO_DATA << 1
        self._frame = bytearray(_FIFO_SIZE)  # frame to send, then the answer
        self._fmv = memoryview(self._frame)
        self._cl = bytearray(5)  # one cascade level: 4 UID bytes + BCC
        self._clmv = memoryview(self._cl)
        self._coll = 0  # CollPos of the last answer: 0 none, 1..32, 0xFF out of range
        self._op = 0  # command code of the exchange under way, for error messages
        self.version = 0
        self.sak = 0

    # -- bus: register and FIFO access (8.1.2) ------------------------------------------------

    def _write_reg(self, reg, value):
        self._tx[0] = (reg << 1) & 0x7E
        self._tx[1] = value
        self._cs.value(0)
        self._spi.write(self._tx)
        self._cs.value(1)

    def _read_reg(self, reg):
        self._tx[0] = 0x80 | ((reg << 1) & 0x7E)
        self._tx[1] = 0
        self._cs.value(0)
        self._spi.write_readinto(self._tx, self._rx2)
        self._cs.value(1)
        return self._rx2[1]

    def _read_stream(self, addrs):
        """One read stream (address bytes, 0x00 last): the values land at ``self._rx[1:]``."""
        self._cs.value(0)
        self._spi.write_readinto(addrs, self._rmv[: len(addrs)])
        self._cs.value(1)

    def _write_fifo(self, n):
        """Write ``self._frame[:n]`` to the FIFO in one write stream."""
        self._cs.value(0)
        self._spi.write(self._fifo_wr)
        self._spi.write(self._fmv[:n])
        self._cs.value(1)

    def _read_fifo(self, n):
        """Read ``n`` FIFO bytes into ``self._frame[:n]``."""
        if n == 0:
            return
        self._fifo_rd[n] = 0
        self._read_stream(self._frmv[: n + 1])
        self._fifo_rd[n] = _FIFO_READ
        self._fmv[:n] = self._rmv[1 : n + 1]

    def _start(self, cmd):
        """Cancel any command, clear the IRQ bits, flush the FIFO."""
        self._write_reg(_REG_COMMAND, _CMD_IDLE)
        self._write_reg(_REG_COM_IRQ, _COM_IRQ_ALL)
        self._write_reg(_REG_FIFO_LEVEL, _FIFO_LEVEL_FLUSH)
        self.commands += 1
        if _DEBUG:
            print("mfrc522: command 0x%x" % cmd)

    def _wait(self, reg, mask):
        """Poll ``reg`` until a bit of ``mask`` is set; raises ReaderError if the chip never does."""
        for _ in range(_POLL_LIMIT):
            v = self._read_reg(reg)
            if v & mask:
                return v
        raise mifare.ReaderError(
            "MFRC522 did not finish its command (register 0x%02x never showed 0x%02x): check SPI wiring and reset"
            % (reg, mask)
        )

    # -- chip --------------------------------------------------------------------------------

    def init(self):
        """Soft reset, 25 ms timer in TAuto mode, 100 % ASK, CRC preset 0x6363, antenna on."""
        self._write_reg(_REG_COMMAND, _CMD_SOFT_RESET)
        for _ in range(_POLL_LIMIT):
            if not self._read_reg(_REG_COMMAND) & _COMMAND_POWER_DOWN:
                break
        version = self._read_reg(_REG_VERSION)
        if version not in _VERSIONS:
            raise mifare.ReaderError(
                "no MFRC522 answering on SPI: VersionReg reads 0x%02x (expected 0x91 or 0x92); check wiring and CS"
                % version
            )
        self.version = version
        self._write_reg(_REG_T_MODE, _T_MODE_T_AUTO | (_T_PRESCALER >> 8))
        self._write_reg(_REG_T_PRESCALER, _T_PRESCALER & 0xFF)
        self._write_reg(_REG_T_RELOAD_H, _T_RELOAD >> 8)
        self._write_reg(_REG_T_RELOAD_L, _T_RELOAD & 0xFF)
        self._write_reg(_REG_TX_ASK, _TX_ASK_FORCE_100ASK)
        self._write_reg(_REG_MODE, _MODE_TX_WAIT_RF | _MODE_POL_MFIN | _MODE_RESERVED | _MODE_CRC_PRESET_6363)
        # Bits received after a collision are cleared (ValuesAfterColl = 0), for anticollision.
        self._write_reg(_REG_COLL, self._read_reg(_REG_COLL) & ~_COLL_VALUES_AFTER_COLL)
        self.antenna(True)

    def antenna(self, on):
        """Switch the antenna drivers TX1/TX2 on or off; off, no card is powered."""
        v = self._read_reg(_REG_TX_CONTROL)
        self._write_reg(_REG_TX_CONTROL, (v | _TX_CONTROL_RF_EN) if on else (v & ~_TX_CONTROL_RF_EN))

    def _stop_crypto(self):
        """Clear Status2Reg MFCrypto1On, so the next card is spoken to in clear."""
        self._write_reg(_REG_STATUS2, self._read_reg(_REG_STATUS2) & ~_STATUS2_MF_CRYPTO1_ON)

    def calc_crc(self, n):
        """CRC_A of ``self._frame[:n]`` by the CRC coprocessor (CalcCRC, 10.3.1.4); its low byte goes first."""
        self._write_reg(_REG_COMMAND, _CMD_IDLE)
        self._write_reg(_REG_DIV_IRQ, _DIV_IRQ_CRC)
        self._write_reg(_REG_FIFO_LEVEL, _FIFO_LEVEL_FLUSH)
        self._write_fifo(n)
        self._write_reg(_REG_COMMAND, _CMD_CALC_CRC)
        self.commands += 1
        self._wait(_REG_DIV_IRQ, _DIV_IRQ_CRC)
        self._write_reg(_REG_COMMAND, _CMD_IDLE)
        self._read_stream(_CRC_READ)
        return self._rx[1] | (self._rx[2] << 8)

    def _append_crc(self, n):
        crc = self.calc_crc(n)
        self._frame[n] = crc & 0xFF
        self._frame[n + 1] = crc >> 8
        return n + 2

    def _check_crc(self, n, what):
        """The answer is ``self._frame[:n]`` followed by its CRC_A; CardIOError if it does not match."""
        got = self._frame[n] | (self._frame[n + 1] << 8)
        crc = self.calc_crc(n)
        if crc != got:
            raise mifare.CardIOError(
                "%s: CRC_A mismatch in the card's answer (expected 0x%04x, got 0x%04x)" % (what, crc, got)
            )

    def transceive(self, n, tx_last_bits=0, rx_align=0, silent_ok=False, coll_ok=False):
        """Send ``self._frame[:n]`` and receive the answer into ``self._frame``.

        :returns: bits received plus ``rx_align`` (the FIFO bit positions filled); -1 for
            silence when ``silent_ok``.
        :raises Timeout: nothing answered (TimerIRq).
        :raises CardIOError: ErrorReg flagged the answer (or a collision unless ``coll_ok``).
        """
        self._start(_CMD_TRANSCEIVE)
        self._write_fifo(n)
        framing = (rx_align << 4) | tx_last_bits
        self._write_reg(_REG_BIT_FRAMING, framing)
        self._write_reg(_REG_COMMAND, _CMD_TRANSCEIVE)
        self._write_reg(_REG_BIT_FRAMING, framing | _BIT_FRAMING_START_SEND)
        irq = self._wait(_REG_COM_IRQ, _COM_IRQ_RX | _COM_IRQ_IDLE | _COM_IRQ_TIMER)
        self._write_reg(_REG_BIT_FRAMING, framing)
        if not irq & (_COM_IRQ_RX | _COM_IRQ_IDLE):
            if silent_ok:
                return -1
            raise mifare.Timeout("no answer from the card to command 0x%02x within 25 ms" % self._op)
        self._read_stream(_STATUS_READ)
        err = self._rx[1]
        level = self._rx[2] & _FIFO_LEVEL_MASK
        last = self._rx[3] & _CONTROL_RX_LAST_BITS
        coll = self._rx[4]
        if err & _ERR_FATAL:
            raise mifare.CardIOError(_error_text(err))
        self._coll = 0
        if err & _ERR_COLL:
            if not coll_ok:
                raise mifare.CardIOError("collision: more than one card answered; present one card")
            self._coll = 0xFF if coll & _COLL_POS_NOT_VALID else ((coll & _COLL_POS_MASK) or 32)
        self._read_fifo(level)
        if last == 0:
            return level * 8
        return (level - 1) * 8 + last

    # -- ISO/IEC 14443-3: request, anticollision, select, halt ----------------------------------

    def select(self, uid_buf):
        """Poll for one card and select it; its UID goes to ``uid_buf``. Returns 4, 7 or 0."""
        self._stop_crypto()
        bits = -1
        self._op = _PICC_REQA
        for _ in range(2):
            self._frame[0] = _PICC_REQA
            bits = self.transceive(1, tx_last_bits=7, silent_ok=True, coll_ok=True)
            if bits >= 0:
                break
        if bits < 0:
            return 0
        if bits != 16:
            raise mifare.CardIOError("ATQA: expected 16 bits, got %d" % bits)
        self._card_io(mifare.OP_SELECT, 1, 2)
        n = 0
        for level in range(2):
            sel = _PICC_SEL_CL1 + 2 * level
            self._anticollision(sel)
            sak = self._select_level(sel)
            cl = self._cl
            if cl[0] == _PICC_CASCADE_TAG and sak & _PICC_SAK_CASCADE:
                uid_buf[n : n + 3] = self._clmv[1:4]
                n += 3
                continue
            if sak & _PICC_SAK_CASCADE:
                raise mifare.CardIOError(
                    "SAK 0x%02x says the UID goes on, but cascade level %d has no tag 0x88" % (sak, level + 1)
                )
            uid_buf[n : n + 4] = self._clmv[0:4]
            self.sak = sak
            return n + 4
        raise mifare.CardIOError("10-byte (triple size) UIDs are not supported")

    def _anticollision(self, sel):
        """Resolve one cascade level into ``self._cl`` (4 UID bytes + BCC), bit by bit on collisions."""
        cl = self._cl
        for i in range(5):
            cl[i] = 0
        known = 0
        f = self._frame
        self._op = sel
        for _ in range(33):
            nb = known >> 3
            nbit = known & 7
            tx = 2 + nb + (1 if nbit else 0)
            f[0] = sel
            f[1] = ((2 + nb) << 4) | nbit  # NVB: bytes (with SEL and NVB) and extra bits sent
            self._fmv[2:tx] = self._clmv[0 : tx - 2]
            # The bit count includes the RxAlign offset: FIFO byte 0 lines up with cl[nb].
            bits = self.transceive(tx, tx_last_bits=nbit, rx_align=nbit, coll_ok=True) - nbit
            m = (nbit + bits + 7) >> 3
            if bits < 0 or nb + m > 5:
                raise mifare.CardIOError(
                    "anticollision: %d bits answered after %d known, expected %d" % (bits, known, 40 - known)
                )
            keep = (1 << nbit) - 1  # bits of the split byte we sent ourselves
            cl[nb] = (cl[nb] & keep) | (f[0] & ~keep & 0xFF)
            for i in range(1, m):
                cl[nb + i] = f[i]
            self._card_io(mifare.OP_SELECT, tx, m)
            if not self._coll:
                if known + bits != 40:
                    raise mifare.CardIOError("anticollision: expected %d bits, got %d" % (40 - known, bits))
                break
            pos = nb * 8 + self._coll  # bits known now, up to and including the colliding one
            if self._coll == 0xFF or pos <= known or pos > 32:
                raise mifare.CardIOError("anticollision: collision position out of range after %d known bits" % known)
            i = pos - 1
            cl[i >> 3] = (cl[i >> 3] | (1 << (i & 7))) & ((2 << (i & 7)) - 1)  # take the 1, drop the rest
            known = pos
        else:
            raise mifare.CardIOError("anticollision did not converge")
        bcc = cl[0] ^ cl[1] ^ cl[2] ^ cl[3]
        if bcc != cl[4]:
            raise mifare.CardIOError("UID check byte BCC mismatch: expected 0x%02x, got 0x%02x" % (bcc, cl[4]))

    def _select_level(self, sel):
        """SELECT the cascade level in ``self._cl``; returns SAK."""
        f = self._frame
        f[0] = self._op = sel
        f[1] = _PICC_NVB_SELECT
        self._fmv[2:7] = self._clmv
        bits = self.transceive(self._append_crc(7))
        if bits != 24:
            raise mifare.CardIOError("SELECT: expected SAK + CRC (24 bits), got %d bits" % bits)
        self._check_crc(1, "SELECT")
        self._card_io(mifare.OP_SELECT, 9, 3)
        return f[0]

    def halt(self):
        """HLTA (never answered by a card that obeys), then Crypto1 off."""
        self._frame[0] = self._op = _PICC_HLTA
        self._frame[1] = 0
        bits = self.transceive(self._append_crc(2), silent_ok=True)
        self._stop_crypto()
        if bits >= 0:
            raise mifare.CardIOError("the card answered HLTA with %d bits (a card must stay silent)" % bits)
        self._card_io(mifare.OP_HALT, 4, 0)

    # -- MIFARE Classic ------------------------------------------------------------------------

    def auth(self, block, key_type, key, uid_mv):
        """MFAuthent (10.3.1.9) with ``key`` and the last 4 UID bytes; AuthFailed if refused."""
        if key_type != mifare.KEY_A and key_type != mifare.KEY_B:
            raise ValueError("key type must be KEY_A (0x60) or KEY_B (0x61), got 0x%02x" % key_type)
        f = self._frame
        f[0] = key_type
        f[1] = block
        self._fmv[2:8] = key[0:6]
        n = len(uid_mv)
        self._fmv[8:12] = uid_mv[n - 4 : n]
        self._start(_CMD_MF_AUTHENT)
        self._write_fifo(12)
        self._write_reg(_REG_COMMAND, _CMD_MF_AUTHENT)
        irq = self._wait(_REG_COM_IRQ, _COM_IRQ_IDLE | _COM_IRQ_TIMER)
        if not irq & _COM_IRQ_IDLE:
            self._write_reg(_REG_COMMAND, _CMD_IDLE)
            letter = "A" if key_type == mifare.KEY_A else "B"
            raise mifare.AuthFailed("block %d: the card refused key %s (or left the field)" % (block, letter))
        err = self._read_reg(_REG_ERROR)
        if err & _ERR_FATAL:
            raise mifare.CardIOError(_error_text(err))
        if not self._read_reg(_REG_STATUS2) & _STATUS2_MF_CRYPTO1_ON:
            raise mifare.AuthFailed("block %d: MFAuthent ended but Status2Reg MFCrypto1On is not set" % block)
        self._card_io(mifare.OP_AUTH, 12, 8)

    def _command(self, cmd, block):
        """Send a 2-byte MIFARE command with CRC_A; returns the bits answered."""
        self._frame[0] = self._op = cmd
        self._frame[1] = block
        return self.transceive(self._append_crc(2))

    def _ack(self, bits, cmd, block):
        if bits == 4 and (self._frame[0] & 0x0F) == _MF_ACK:
            return
        if bits == 4:
            raise mifare.CardIOError(
                "card answered NAK 0x%x to command 0x%02x on block %d (not allowed, or not authenticated)"
                % (self._frame[0] & 0x0F, cmd, block)
            )
        raise mifare.CardIOError("command 0x%02x block %d: expected a 4-bit ACK, got %d bits" % (cmd, block, bits))

    def read_block(self, block, out_buf):
        bits = self._command(_MF_READ, block)
        if bits != 144:
            self._ack(bits, _MF_READ, block)  # raises: NAK or a short answer
            raise mifare.CardIOError("READ block %d: expected 18 bytes, got an ACK" % block)
        self._check_crc(16, "READ")
        out_buf[0:16] = self._fmv[0:16]
        self._card_io(mifare.OP_READ, 4, 18)

    def write_block(self, block, data):
        self._ack(self._command(_MF_WRITE, block), _MF_WRITE, block)
        self._fmv[0:16] = data[0:16]
        self._ack(self.transceive(self._append_crc(16)), _MF_WRITE, block)
        self._card_io(mifare.OP_WRITE, 22, 0)

    def _value(self, cmd, block, operand):
        self._ack(self._command(cmd, block), cmd, block)
        f = self._frame
        for i in range(4):
            f[i] = (operand >> (8 * i)) & 0xFF
        bits = self.transceive(self._append_crc(4), silent_ok=True)
        if bits >= 0:  # only a NAK breaks the silence of the second step
            self._ack(bits, cmd, block)
            raise mifare.CardIOError("command 0x%02x block %d: the card acknowledged the operand" % (cmd, block))
        self._card_io(mifare.OP_VALUE, 10, 0)

    def transfer(self, block):
        self._ack(self._command(_MF_TRANSFER, block), _MF_TRANSFER, block)
        self._card_io(mifare.OP_TRANSFER, 4, 0)
