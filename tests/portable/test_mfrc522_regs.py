"""MFRC522 driver against a scripted register-level fake: exact SPI bytes, CRC_A, error mapping.

Runs on CPython and MicroPython. The fake decodes the SPI address bytes like the chip
(datasheet 8.1.2), keeps a register file and FIFO, runs CalcCRC with a reference CRC_A, and
answers each Transceive with the next scripted reply (bytes, RxLastBits, ErrorReg, CollReg) or
silence (TimerIRq).
"""

from support import raises, unhex

from firmware import mifare
from firmware.drivers.mfrc522 import MFRC522


def crc_a(data, crc=0x6363):
    """Reference CRC_A, ISO/IEC 14443-3 Annex B."""
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return crc & 0xFFFF


def with_crc(data):
    c = crc_a(data)
    return bytes(data) + bytes((c & 0xFF, c >> 8))


class FakeChip:
    """SPI bus + chip-select pin in one object, in front of a scripted MFRC522 register file."""

    def __init__(self):
        self.regs = bytearray(64)
        self.regs[0x37] = 0x92  # VersionReg
        self.regs[0x14] = 0x80  # TxControlReg
        self.regs[0x0E] = 0xA0  # CollReg
        self.fifo = []  # a list: MicroPython's bytearray has no pop()
        self.level = 1
        self.mosi = None
        self.transactions = []  # MOSI bytes of every NSS-low .. NSS-high transaction
        self.replies = []  # per Transceive: None (silence) or (data, last_bits, error, coll)
        self.sent = []  # (frame, BitFramingReg) per Transceive
        self.auth_fifo = None
        self.auth_result = "ok"  # "ok", "silent", "no-crypto"
        self._mode = None
        self._addr = 0

    # Pin
    def value(self, v=None):
        if v is None:
            return self.level
        if self.level and not v:
            self.mosi = bytearray()
            self._mode = None
        elif not self.level and v:
            self.transactions.append(bytes(self.mosi))
        self.level = v

    # SPI
    def write(self, buf):
        for b in buf:
            self._byte(b)

    def write_readinto(self, out, into):
        for i in range(len(out)):
            into[i] = self._byte(out[i])

    def _byte(self, b):
        if self.level:
            raise AssertionError("SPI byte 0x%02x clocked with NSS high" % b)
        self.mosi.append(b)
        if self._mode is None:
            self._mode = "r" if b & 0x80 else "w"
            self._addr = (b >> 1) & 0x3F
            return 0
        if self._mode == "w":
            self._write(self._addr, b)
            return 0
        v = self._read(self._addr)
        self._addr = (b >> 1) & 0x3F
        return v

    def _read(self, addr):
        if addr == 0x09:
            return self.fifo.pop(0)
        if addr == 0x0A:
            return len(self.fifo)
        return self.regs[addr]

    def _write(self, addr, v):
        if addr == 0x09:
            self.fifo.append(v)
        elif addr == 0x0A:
            if v & 0x80:
                self.fifo = []
        elif addr in (0x04, 0x05):
            self.regs[addr] = (self.regs[addr] | (v & 0x7F)) if v & 0x80 else (self.regs[addr] & ~v)
        elif addr == 0x08:
            self.regs[8] &= v | 0xF7
        elif addr == 0x01:
            self.regs[1] = v
            self._command(v & 0x0F)
        else:
            self.regs[addr] = v
            if addr == 0x0D and v & 0x80 and self.regs[1] & 0x0F == 0x0C:
                self._transceive(v)

    def _command(self, cmd):
        if cmd == 0x03:  # CalcCRC
            c = crc_a(self.fifo)
            self.fifo = []
            self.regs[0x21] = c >> 8
            self.regs[0x22] = c & 0xFF
            self.regs[0x05] |= 0x04
        elif cmd == 0x0E:  # MFAuthent
            self.auth_fifo = bytes(self.fifo)
            self.fifo = []
            if self.auth_result == "silent":
                self.regs[0x04] |= 0x01
            else:
                self.regs[0x04] |= 0x10
                if self.auth_result == "ok":
                    self.regs[0x08] |= 0x08
        elif cmd == 0x0F:  # SoftReset
            self.regs[0x14] = 0x80

    def _transceive(self, framing):
        self.sent.append((bytes(self.fifo), framing & 0x7F))
        self.fifo = []
        reply = self.replies.pop(0)
        if reply is None:
            self.regs[0x04] |= 0x01
            return
        data, last_bits, err, coll = reply
        self.fifo = list(data)
        self.regs[0x0C] = last_bits
        self.regs[0x06] = err
        self.regs[0x0E] = coll
        self.regs[0x04] |= 0x20 | (0x02 if err else 0)


def reply(hexdata, last_bits=0, err=0, coll=0x20):
    return (unhex(hexdata), last_bits, err, coll)


def ack():
    return reply("0a", 4)


def make(*replies):
    chip = FakeChip()
    chip.replies = list(replies)
    return chip, MFRC522(chip, chip)


UID7 = unhex("04 11 22 33 44 55 66")


# -- SPI bytes ---------------------------------------------------------------------------------


def test_write_register_sends_address_then_value():
    chip, rdr = make()
    rdr._write_reg(0x01, 0x0F)  # CommandReg <- SoftReset
    assert chip.transactions == [b"\x02\x0f"], chip.transactions


def test_read_register_sets_msb_and_ends_with_zero():
    chip, rdr = make()
    assert rdr._read_reg(0x37) == 0x92
    assert chip.transactions == [b"\xee\x00"], chip.transactions


def test_fifo_is_read_in_one_stream_and_written_in_one_stream():
    chip, rdr = make()
    chip.fifo = [1, 2, 3]
    rdr._read_fifo(3)
    assert bytes(rdr._frame[:3]) == b"\x01\x02\x03"
    rdr._write_fifo(2)
    assert chip.transactions == [b"\x92\x92\x92\x00", b"\x12\x01\x02"], chip.transactions


# -- CRC_A -------------------------------------------------------------------------------------


def test_reference_crc_a_matches_iso14443_annex_b():
    assert crc_a(b"\x00\x00") == 0x1EA0  # sent A0 1E
    assert crc_a(b"\x12\x34") == 0xCF26  # sent 26 CF
    assert with_crc(b"\x30\x00") == b"\x30\x00\x02\xa8"
    assert with_crc(b"\x50\x00") == b"\x50\x00\x57\xcd"  # HLTA


def test_read_block_appends_crc_a_low_byte_first():
    data = bytes(range(16))
    chip, rdr = make(reply(with_crc(data).hex()))
    out = bytearray(16)
    rdr.read_block(0, out)
    assert chip.sent == [(b"\x30\x00\x02\xa8", 0)], chip.sent
    assert bytes(out) == data
    # The coprocessor ran with CRC_A's preset via CalcCRC: FIFO loaded, command 0x03 written.
    assert b"\x12\x30\x00" in chip.transactions and b"\x02\x03" in chip.transactions


def test_answer_with_wrong_crc_is_card_io_error():
    bad = bytearray(with_crc(bytes(16)))
    bad[17] ^= 0xFF
    chip, rdr = make(reply(bytes(bad).hex()))
    e = raises(mifare.CardIOError, rdr.read_block, 4, bytearray(16))
    assert "CRC_A mismatch" in str(e), str(e)


# -- error mapping -----------------------------------------------------------------------------


def test_timer_irq_is_timeout():
    chip, rdr = make(None)
    e = raises(mifare.Timeout, rdr.read_block, 4, bytearray(16))
    assert "0x30" in str(e), str(e)


def test_nak_is_card_io_error_with_the_code():
    chip, rdr = make(reply("04", 4))
    e = raises(mifare.CardIOError, rdr.read_block, 4, bytearray(16))
    assert "NAK 0x4" in str(e), str(e)


def test_error_reg_bits_are_card_io_errors():
    for err, word in ((0x10, "FIFO overflow"), (0x02, "parity"), (0x01, "protocol"), (0x08, "collision")):
        chip, rdr = make(reply(with_crc(bytes(16)).hex(), err=err, coll=0x05))
        e = raises(mifare.CardIOError, rdr.read_block, 4, bytearray(16))
        assert word in str(e), (err, str(e))


def test_auth_loads_key_and_last_four_uid_bytes():
    chip, rdr = make()
    rdr.auth(7, mifare.KEY_B, unhex("a0a1a2a3a4a5"), memoryview(UID7))
    assert chip.auth_fifo == unhex("61 07 a0a1a2a3a4a5 33445566"), chip.auth_fifo
    assert b"\x02\x0e" in chip.transactions  # CommandReg <- MFAuthent


def test_auth_silence_is_auth_failed():
    chip, rdr = make()
    chip.auth_result = "silent"
    e = raises(mifare.AuthFailed, rdr.auth, 4, mifare.KEY_A, bytes(6), memoryview(UID7)[:4])
    assert "key A" in str(e), str(e)


def test_auth_without_crypto1_on_is_auth_failed():
    chip, rdr = make()
    chip.auth_result = "no-crypto"
    e = raises(mifare.AuthFailed, rdr.auth, 4, mifare.KEY_A, bytes(6), memoryview(UID7)[:4])
    assert "MFCrypto1On" in str(e), str(e)


def test_init_rejects_a_missing_chip():
    chip, rdr = make()
    chip.regs[0x37] = 0x00
    e = raises(mifare.ReaderError, rdr.init)
    assert "0x00" in str(e), str(e)


def test_init_programs_timer_mode_and_antenna():
    chip, rdr = make()
    rdr.init()
    r = chip.regs
    assert (r[0x2A], r[0x2B], r[0x2C], r[0x2D]) == (0x80, 0xA9, 0x03, 0xE8)  # TAuto, 40 kHz, 25 ms
    assert r[0x11] == 0x3D and r[0x15] == 0x40 and r[0x14] & 0x03 == 0x03
    assert r[0x0E] & 0x80 == 0  # ValuesAfterColl cleared for anticollision
    assert rdr.version == 0x92


# -- MIFARE commands ---------------------------------------------------------------------------


def test_write_block_is_two_steps_each_acknowledged():
    data = b"0123456789abcdef"
    chip, rdr = make(ack(), ack())
    rdr.write_block(8, data)
    assert chip.sent == [(with_crc(b"\xa0\x08"), 0), (with_crc(data), 0)], chip.sent


def test_value_operation_takes_silence_as_ack_and_nak_as_error():
    chip, rdr = make(ack(), None)
    rdr.decrement(5, 0x01020304)
    assert chip.sent[1][0] == with_crc(b"\x04\x03\x02\x01"), chip.sent
    chip, rdr = make(ack(), reply("04", 4))
    raises(mifare.CardIOError, rdr.increment, 5, 1)


def test_transfer_needs_an_ack():
    chip, rdr = make(reply("01", 4))
    e = raises(mifare.CardIOError, rdr.transfer, 5)
    assert "NAK 0x1" in str(e), str(e)


def test_halt_sends_hlta_and_clears_crypto1():
    chip, rdr = make(None)
    chip.regs[0x08] = 0x08
    rdr.halt()
    assert chip.sent == [(b"\x50\x00\x57\xcd", 0)] and chip.regs[0x08] & 0x08 == 0


def test_select_4_byte_uid_sends_reqa_anticollision_select():
    uid = unhex("04a1b2c3")
    bcc = uid[0] ^ uid[1] ^ uid[2] ^ uid[3]
    chip, rdr = make(reply("0400"), reply(uid.hex() + "%02x" % bcc), reply(with_crc(b"\x08").hex()))
    buf = bytearray(7)
    assert rdr.select(buf) == 4
    assert bytes(buf[:4]) == uid
    assert chip.sent[0] == (b"\x26", 0x07)  # REQA: 7 bits
    assert chip.sent[1] == (b"\x93\x20", 0x00)
    assert chip.sent[2] == (with_crc(b"\x93\x70" + uid + bytes((bcc,))), 0x00)


def test_select_rejects_bad_bcc_and_returns_0_without_card():
    chip, rdr = make(reply("0400"), reply("04a1b2c300"))
    e = raises(mifare.CardIOError, rdr.select, bytearray(7))
    assert "BCC" in str(e), str(e)
    chip, rdr = make(None, None)
    assert rdr.select(bytearray(7)) == 0
    assert len(chip.sent) == 2  # REQA twice


def test_select_resolves_a_collision_bit_by_bit():
    # Two cards differ first in bit 3 of UID byte 0: CollPos 4, ValuesAfterColl cleared the rest.
    uid = unhex("08112233")
    bcc = uid[0] ^ uid[1] ^ uid[2] ^ uid[3]
    rest = bytes((uid[0] & 0xF0,)) + uid[1:] + bytes((bcc,))  # bits 4.. of byte 0 onwards
    chip, rdr = make(
        reply("0400"),
        reply("0800000000", err=0x08, coll=0x04),
        reply(rest.hex()),
        reply(with_crc(b"\x08").hex()),
    )
    buf = bytearray(7)
    assert rdr.select(buf) == 4
    assert bytes(buf[:4]) == uid, buf
    assert chip.sent[2] == (b"\x93\x24\x08", 0x44)  # NVB 2 bytes + 4 bits; RxAlign = TxLastBits = 4
