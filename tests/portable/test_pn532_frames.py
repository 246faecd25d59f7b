"""PN532 driver frames, byte for byte, against a scripted UART (runs on CPython and MicroPython).

Helpers follow nfcpy's tests: ``CMD('4A 01 00')`` / ``RSP('4B 00')`` build whole frames with
LEN, LCS and DCS computed; each FakeUART reply answers one ``write``.
"""

from support import raises, unhex

from firmware import mifare
from firmware.drivers.pn532 import PN532_UART, FrameError, PN532Error
from firmware.mifare import KEY_A, KEY_B, AuthFailed, CardIOError, NoCard, Timeout

UID = unhex("04a1b2c3")
KEY = unhex("ffffffffffff")


def FRAME(data):
    n = len(data)
    return bytes([0, 0, 0xFF, n, (256 - n) & 0xFF]) + data + bytes([(256 - sum(data)) & 0xFF, 0])


def CMD(text):
    return FRAME(b"\xd4" + unhex(text))


def RSP(text):
    return FRAME(b"\xd5" + unhex(text))


def ACK():
    return unhex("0000ff00ff00")


def NACK():
    return unhex("0000ffff0000")


WAKE = unhex("5555") + bytes(14)


class FakeUART:
    """Records writes; after the i-th write, makes ``replies[i]`` readable."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.written = []
        self.rx = b""

    def write(self, buf):
        self.written.append(bytes(buf))
        if self.replies:
            self.rx = self.rx + self.replies.pop(0)
        return len(buf)

    def any(self):
        return len(self.rx)

    def readinto(self, buf, nbytes=None):
        n = min(len(self.rx), len(buf) if nbytes is None else nbytes)
        if not n:
            return None
        for i in range(n):
            buf[i] = self.rx[i]
        self.rx = self.rx[n:]
        return n


def reader(*replies):
    uart = FakeUART(*replies)
    return PN532_UART(uart), uart


def selected(*replies):
    """A reader that has listed the card UID as target 1."""
    rdr, uart = reader(ACK() + RSP("4b 01 01 0004 08 04 04a1b2c3"), *replies)
    uid = bytearray(7)
    assert rdr.select(uid) == 4
    uart.written = []
    return rdr, uart


def test_frame_helper_matches_the_manual():
    assert CMD("02") == unhex("0000ff02fed4022a00")
    assert RSP("03 32 01 06 07") == unhex("0000ff06fad50332010607e800")


def test_init_wakes_configures_and_limits_polling_retries():
    rdr, uart = reader(b"", ACK() + RSP("15"), ACK() + RSP("03 32 01 06 07"), ACK() + RSP("33"))
    rdr.init()
    assert uart.written == [WAKE, CMD("14 01 00 00"), CMD("02"), CMD("32 05 ff 01 01")]
    assert rdr.commands == 3


def test_get_firmware_version_fields():
    rdr, uart = reader(ACK() + RSP("03 32 01 06 07"))
    assert rdr.get_firmware_version() == (0x32, 1, 6, 7)


def test_not_a_pn532_is_reported():
    rdr, uart = reader(b"", ACK() + RSP("15"), ACK() + RSP("03 33 01 06 07"))
    e = raises(mifare.ReaderError, rdr.init)
    assert "not a PN532: IC 0x33" in str(e)


def test_select_returns_the_uid_and_its_length():
    rdr, uart = reader(ACK() + RSP("4b 01 01 0004 08 04 04a1b2c3"))
    uid = bytearray(7)
    assert rdr.select(uid) == 4
    assert uart.written == [CMD("4a 01 00")]
    assert bytes(uid[:4]) == UID and rdr.sak == 0x08 and rdr.atqa == 0x0004


def test_select_a_7_byte_uid():
    rdr, uart = reader(ACK() + RSP("4b 01 01 0044 08 07 04112233445566"))
    uid = bytearray(7)
    assert rdr.select(uid) == 7
    assert bytes(uid) == unhex("04112233445566")


def test_select_no_card_returns_0():
    rdr, uart = reader(ACK() + RSP("4b 00"))
    assert rdr.select(bytearray(7)) == 0
    assert rdr.card_ios == 0


def test_auth_sends_key_and_uid_through_in_data_exchange():
    rdr, uart = selected(ACK() + RSP("41 00"))
    rdr.auth(4, KEY_A, KEY, memoryview(UID))
    assert uart.written == [CMD("40 01 60 04 ffffffffffff 04a1b2c3")]


def test_auth_with_a_7_byte_uid_uses_its_last_4_bytes():
    rdr, uart = selected(ACK() + RSP("41 00"))
    rdr.auth(8, KEY_B, unhex("b0b1b2b3b4b5"), memoryview(unhex("04112233445566")))
    assert uart.written == [CMD("40 01 61 08 b0b1b2b3b4b5 33445566")]


def test_wrong_key_raises_auth_failed():
    rdr, uart = selected(ACK() + RSP("41 14"))
    e = raises(AuthFailed, rdr.auth, 4, KEY_A, KEY, memoryview(UID))
    assert "0x14" in str(e)


def test_nak_on_read_is_a_card_io_error_and_timeout_is_no_card():
    rdr, uart = selected(ACK() + RSP("41 14"), ACK() + RSP("41 01"))
    buf = bytearray(16)
    e = raises(CardIOError, rdr.read_block, 4, buf)
    assert "NAK" in str(e)
    e = raises(NoCard, rdr.read_block, 4, buf)
    assert "left the field" in str(e)


def test_read_block_fills_the_buffer():
    rdr, uart = selected(ACK() + RSP("41 00 000102030405060708090a0b0c0d0e0f"))
    buf = bytearray(16)
    rdr.read_block(4, memoryview(buf))
    assert uart.written == [CMD("40 01 30 04")]
    assert bytes(buf) == unhex("000102030405060708090a0b0c0d0e0f")


def test_read_block_into_a_view_writes_its_16_bytes_only():
    """The block lands in the view given, nothing before or after it in the buffer beneath."""
    rdr, uart = selected(ACK() + RSP("41 00 000102030405060708090a0b0c0d0e0f"))
    buf = bytearray(b"\xee" * 40)
    rdr.read_block(4, memoryview(buf)[8:24])
    assert bytes(buf) == b"\xee" * 8 + unhex("000102030405060708090a0b0c0d0e0f") + b"\xee" * 16


def test_short_read_is_an_error():
    rdr, uart = selected(ACK() + RSP("41 00 0001"))
    e = raises(CardIOError, rdr.read_block, 4, bytearray(16))
    assert "expected 16 bytes, got 2" in str(e)


def test_write_and_value_commands():
    rdr, uart = selected(*([ACK() + RSP("41 00")] * 5))
    rdr.write_block(4, unhex("11" * 16))
    rdr.decrement(5, 250)
    rdr.increment(5, 0x01020304)
    rdr.restore(5)
    rdr.transfer(6)
    assert uart.written == [
        CMD("40 01 a0 04 " + "11" * 16),
        CMD("40 01 c0 05 fa000000"),
        CMD("40 01 c1 05 04030201"),
        CMD("40 01 c2 05 00000000"),
        CMD("40 01 b0 06"),
    ]


def test_argument_checks():
    rdr, uart = selected()
    raises(ValueError, rdr.auth, 4, 0x62, KEY, memoryview(UID))
    raises(ValueError, rdr.write_block, 4, b"short")
    raises(ValueError, rdr.decrement, 5, -1)
    raises(ValueError, rdr.read_block, 4, bytearray(15))  # the block is copied without bounds checks
    assert uart.written == []


def test_halt_releases_the_target():
    rdr, uart = selected(ACK() + RSP("53 00"))
    rdr.halt()
    rdr.halt()  # nothing selected any more: no command
    assert uart.written == [CMD("52 01")]


def test_card_io_time_is_accounted_per_card_command():
    rdr, uart = selected(ACK() + RSP("41 00"), ACK() + RSP("41 00" + "00" * 16))
    rdr.auth(4, KEY_A, KEY, memoryview(UID))
    rdr.read_block(4, bytearray(16))
    t = mifare.card_io_time_us
    expected = t(0, 1, 2) + t(0, 2, 5) + t(0, 9, 3) + t(1, 12, 8) + t(2, 4, 18)
    assert rdr.card_ios == 5 and rdr.card_io_us == expected
    assert 5000 < expected < 8000  # select ~2.3 ms, auth ~2 ms, read ~2 ms
    assert rdr.commands == 3


def test_bad_checksum_is_nacked_and_the_resent_answer_accepted():
    bad = bytearray(RSP("03 32 01 06 07"))
    bad[-2] ^= 0xFF
    rdr, uart = reader(ACK() + bytes(bad), RSP("03 32 01 06 07"))
    assert rdr.get_firmware_version() == (0x32, 1, 6, 7)
    assert uart.written == [CMD("02"), NACK()]


def test_checksum_still_bad_after_two_nacks_raises_frame_error():
    bad = bytearray(RSP("03 32 01 06 07"))
    bad[-2] = 0x8B
    rdr, uart = reader(ACK() + bytes(bad), bytes(bad), bytes(bad))
    e = raises(FrameError, rdr.get_firmware_version)
    assert str(e) == "bad frame checksum: expected 0xe8, got 0x8b"
    assert uart.written == [CMD("02"), NACK(), NACK()]


def test_bad_length_checksum_is_reported():
    bad_lcs = unhex("0000ff 06fb d5 03 32010607 e8 00")
    rdr, uart = reader(ACK() + bad_lcs, bad_lcs, bad_lcs)
    e = raises(FrameError, rdr.get_firmware_version)
    assert "bad frame length checksum: LEN 0x06, expected LCS 0xfa, got 0xfb" in str(e)
    assert uart.written == [CMD("02"), NACK(), NACK()]


def test_missing_ack_resends_then_times_out():
    rdr, uart = reader(b"", b"", ACK() + RSP("15"))
    rdr.sam_configuration()
    assert uart.written == [CMD("14 01 00 00")] * 3
    rdr, uart = reader(b"", b"", b"")
    e = raises(Timeout, rdr.sam_configuration)
    assert "did not acknowledge command 0x14" in str(e)


def test_card_command_without_ack_is_aborted_not_sent_twice():
    """A DECREMENT whose ACK is lost may have run: sent again it would take twice. The driver
    aborts it with an ACK and raises Timeout; the purse sorts the card out on the next tap."""
    rdr, uart = selected(b"", ACK() + RSP("41 00"))
    e = raises(Timeout, rdr.decrement, 5, 250)
    assert "did not acknowledge command 0x40" in str(e)
    assert uart.written == [CMD("40 01 c0 05 fa000000"), ACK()]


def test_missing_answer_aborts_with_ack_and_times_out():
    rdr, uart = reader(ACK())
    e = raises(Timeout, rdr.get_firmware_version)
    assert "no answer to command 0x02" in str(e)
    assert uart.written == [CMD("02"), ACK()]


def test_error_frame_is_a_pn532_error():
    rdr, uart = reader(ACK() + unhex("0000ff01ff7f8100"))
    e = raises(PN532Error, rdr.command, 0x7E)
    assert e.code == 0x7F and "syntax error" in str(e)


def test_answer_to_another_command_is_a_frame_error():
    rdr, uart = reader(ACK() + RSP("15"))
    e = raises(FrameError, rdr.get_firmware_version)
    assert "expected D5 03, got D5 15" in str(e)


def test_stale_bytes_are_drained_before_a_command():
    rdr, uart = reader(ACK() + RSP("03 32 01 06 07"))
    uart.rx = RSP("4b 00")  # left over from an aborted command
    assert rdr.get_firmware_version() == (0x32, 1, 6, 7)


def test_generic_command_returns_the_answer_data():
    rdr, uart = reader(ACK() + RSP("07 80 26"))
    assert bytes(rdr.command(0x06, unhex("6303 6339"))) == unhex("8026")
    assert uart.written == [CMD("06 6303 6339")]
