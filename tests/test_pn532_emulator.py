"""The PN532 emulator speaks the HSU frames of UM0701-02 byte for byte, seen from a raw pty."""

from __future__ import annotations

import os
import select
import time
import tty
from collections.abc import Iterator

import pytest

from terminal_sim.mifare_card import DEFAULT_KEY, Field, MifareClassic1K
from terminal_sim.pn532_emulator import PN532Emulator

UID = bytes.fromhex("04a1b2c3")
WAKE = bytes.fromhex("5555000000000000")


def HEX(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def FRAME(tfi_and_data: bytes) -> bytes:
    n = len(tfi_and_data)
    return bytes((0, 0, 0xFF, n, (-n) & 0xFF)) + tfi_and_data + bytes(((-sum(tfi_and_data)) & 0xFF, 0))


def CMD(text: str) -> bytes:
    return FRAME(b"\xd4" + HEX(text))


def RSP(text: str) -> bytes:
    return FRAME(b"\xd5" + HEX(text))


def ACK() -> bytes:
    return HEX("0000ff 00ff 00")


def NACK() -> bytes:
    return HEX("0000ff ff00 00")


def ERR() -> bytes:
    return HEX("0000ff 01ff 7f 81 00")


class Host:
    """The host end of the serial line, reading whole frames."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_frame(self, timeout: float = 1.0) -> bytes:
        """The next frame (from its 00 00 FF), or b"" if none arrives in time."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._take()
            if frame:
                return frame
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return b""
            self.pending += os.read(self.fd, 4096)

    def _take(self) -> bytes:
        buf = self.pending
        i = buf.find(b"\x00\x00\xff")
        if i < 0 or len(buf) < i + 5:
            return b""
        ln, lcs = buf[i + 3], buf[i + 4]
        if (ln, lcs) in ((0, 0xFF), (0xFF, 0)):
            size = 6
        elif (ln, lcs) == (0xFF, 0xFF):
            if len(buf) < i + 8:
                return b""
            size = 8 + ((buf[i + 5] << 8) | buf[i + 6]) + 2
        else:
            size = 5 + ln + 2
        if len(buf) < i + size:
            return b""
        frame = bytes(buf[i : i + size])
        del buf[: i + size]
        return frame

    def exchange(self, cmd: bytes, timeout: float = 1.0) -> bytes:
        self.write(cmd)
        assert self.read_frame(timeout) == ACK()
        return self.read_frame(timeout)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def field() -> Field:
    f = Field()
    f.place(MifareClassic1K(UID))
    return f


@pytest.fixture
def emu(field: Field) -> Iterator[PN532Emulator]:
    with PN532Emulator(field) as e:
        yield e


@pytest.fixture
def host(emu: PN532Emulator) -> Iterator[Host]:
    h = Host(emu.device_path)
    h.write(WAKE)
    yield h
    h.close()


def test_frame_helpers_match_the_manual_example() -> None:
    # UM0701-02 section 6.2: GetFirmwareVersion is 00 00 FF 02 FE D4 02 2A 00.
    assert CMD("02") == HEX("0000ff 02fe d4 02 2a 00")


def test_get_firmware_version(host: Host) -> None:
    assert host.exchange(CMD("02")) == RSP("03 32 01 06 07")
    assert RSP("03 32 01 06 07") == HEX("0000ff 06fa d5 03 32010607 e8 00")


def test_asleep_chip_loses_the_first_bytes_so_a_bare_frame_is_not_answered(emu: PN532Emulator) -> None:
    h = Host(emu.device_path)
    h.write(CMD("02"))  # no preamble: the wake-up eats 00 00 of the start code
    assert h.read_frame(0.3) == b""
    assert h.exchange(CMD("02")) == RSP("03 32 01 06 07")
    h.close()


def test_bad_checksums_are_ignored_without_ack(host: Host, emu: PN532Emulator) -> None:
    bad_dcs = bytearray(CMD("02"))
    bad_dcs[-2] ^= 0x01
    host.write(bytes(bad_dcs))
    assert host.read_frame(0.3) == b""
    host.write(HEX("0000ff 02ff d4 02 2a 00"))  # bad LCS
    assert host.read_frame(0.3) == b""
    assert any("bad DCS" in e for e in emu.errors) and any("bad LCS" in e for e in emu.errors)
    assert host.exchange(CMD("02")) == RSP("03 32 01 06 07")


def test_unknown_command_gets_ack_then_the_syntax_error_frame(host: Host) -> None:
    assert host.exchange(CMD("7e 00")) == ERR()
    assert host.exchange(CMD("14")) == ERR()  # SAMConfiguration without its mode byte


def test_nack_repeats_the_last_answer(host: Host) -> None:
    first = host.exchange(CMD("4a 01 00"))
    host.write(NACK())
    assert host.read_frame() == first == RSP("4b 01 01 0004 08 04 04a1b2c3")


def test_sam_rf_configuration_and_parameters(host: Host, emu: PN532Emulator) -> None:
    assert host.exchange(CMD("14 01 00 00")) == RSP("15")
    assert host.exchange(CMD("32 05 ff 01 03")) == RSP("33")
    assert host.exchange(CMD("12 00")) == RSP("13")
    assert emu.sam_configured and emu.max_retries_passive == 3


def test_registers_read_back_what_was_written(host: Host) -> None:
    assert host.exchange(CMD("06 6303 6339")) == RSP("07 80 26")
    assert host.exchange(CMD("08 6303 00")) == RSP("09")
    assert host.exchange(CMD("06 6303")) == RSP("07 00")


def test_diagnose_line_test_echoes_an_extended_frame(host: Host) -> None:
    data = b"\x00" + bytes(range(256)) + bytes(6)
    body = b"\xd4\x00" + data
    n = len(body)
    ext = bytes((0, 0, 0xFF, 0xFF, 0xFF, n >> 8, n & 0xFF, (-(n >> 8) - n) & 0xFF))
    ext += body + bytes(((-sum(body)) & 0xFF, 0))
    answer = host.exchange(ext)
    assert answer[3:5] == b"\xff\xff" and answer[8:10] == b"\xd5\x01" and answer[10:-2] == data


def test_list_one_card_106a(host: Host) -> None:
    # NbTg 1, Tg 1, SENS_RES 00 04, SEL_RES 08, NFCIDLength 4, NFCID1.
    assert host.exchange(CMD("4a 01 00")) == RSP("4b 01 01 0004 08 04 04a1b2c3")


def test_list_a_7_byte_uid(field: Field, host: Host) -> None:
    field.clear()
    field.place(MifareClassic1K(bytes.fromhex("04112233445566")))
    assert host.exchange(CMD("4a 01 00")) == RSP("4b 01 01 0044 08 07 04112233445566")


def test_two_cards_max_tg_1_lists_the_lowest_uid(field: Field, host: Host) -> None:
    field.place(MifareClassic1K(bytes.fromhex("01020304")))
    assert host.exchange(CMD("4a 01 00")) == RSP("4b 01 01 0004 08 04 01020304")
    assert host.exchange(CMD("4a 02 00")) == RSP("4b 02 01 0004 08 04 01020304 02 0004 08 04 04a1b2c3")


def test_no_card_with_finite_retries_answers_no_target(field: Field, host: Host) -> None:
    field.clear()
    assert host.exchange(CMD("32 05 ff 01 01")) == RSP("33")
    assert host.exchange(CMD("4a 01 00")) == RSP("4b 00")


def test_no_card_with_endless_retries_waits_until_a_card_comes(field: Field, host: Host) -> None:
    card = field.cards[0]
    field.clear()
    host.write(CMD("4a 01 00"))
    assert host.read_frame() == ACK()
    assert host.read_frame(0.2) == b""
    field.place(card)
    assert host.read_frame() == RSP("4b 01 01 0004 08 04 04a1b2c3")


def test_host_ack_aborts_a_waiting_command(field: Field, host: Host, emu: PN532Emulator) -> None:
    field.clear()
    host.write(CMD("4a 01 00"))
    assert host.read_frame() == ACK()
    host.write(ACK())
    assert host.exchange(CMD("02")) == RSP("03 32 01 06 07")
    assert "InListPassiveTarget aborted by the host" in emu.errors


def test_mifare_through_in_data_exchange(field: Field, host: Host) -> None:
    card = field.cards[0]
    host.exchange(CMD("4a 01 00"))
    key, uid = DEFAULT_KEY.hex(), UID.hex()
    assert host.exchange(CMD(f"40 01 60 04 {key} {uid}")) == RSP("41 00")
    assert host.exchange(CMD("40 01 a0 04 " + "11" * 16)) == RSP("41 00")
    assert host.exchange(CMD("40 01 30 04")) == RSP("41 00 " + "11" * 16)
    assert card.block(4) == b"\x11" * 16


def test_wrong_key_is_status_0x14(host: Host) -> None:
    host.exchange(CMD("4a 01 00"))
    assert host.exchange(CMD(f"40 01 61 04 {'00' * 6} {UID.hex()}")) == RSP("41 14")
    # The failed authentication left the card unauthenticated: a read is refused too.
    assert host.exchange(CMD("40 01 30 04")) == RSP("41 14")


def test_value_block_operations(field: Field, host: Host) -> None:
    card = field.cards[0]
    card.set_block(5, HEX("e8030000 17fcffff e8030000 05fa05fa"))  # 1000 at block 5
    host.exchange(CMD("4a 01 00"))
    host.exchange(CMD(f"40 01 60 05 {DEFAULT_KEY.hex()} {UID.hex()}"))
    assert host.exchange(CMD("40 01 c0 05 fa000000")) == RSP("41 00")  # decrement 250
    assert host.exchange(CMD("40 01 b0 05")) == RSP("41 00")
    assert card.block(5) == HEX("ee020000 11fdffff ee020000 05fa05fa")  # 750
    assert host.exchange(CMD("40 01 c1 04 01000000")) == RSP("41 14")  # block 4 is no value block


def test_pulled_card_is_status_0x01(field: Field, host: Host) -> None:
    card = field.cards[0]
    host.exchange(CMD("4a 01 00"))
    card.pull_after(1)
    assert host.exchange(CMD(f"40 01 60 04 {DEFAULT_KEY.hex()} {UID.hex()}")) == RSP("41 00")
    assert host.exchange(CMD("40 01 30 04")) == RSP("41 01")
    assert not card.present


def test_in_data_exchange_without_a_target_is_0x27(host: Host) -> None:
    assert host.exchange(CMD("40 01 30 04")) == RSP("41 27")


def test_in_release_halts_the_card_and_the_next_list_finds_it_again(field: Field, host: Host) -> None:
    card = field.cards[0]
    host.exchange(CMD("4a 01 00"))
    assert host.exchange(CMD("52 01")) == RSP("53 00")
    assert card.halted
    assert host.exchange(CMD("40 01 30 04")) == RSP("41 27")
    assert host.exchange(CMD("4a 01 00")) == RSP("4b 01 01 0004 08 04 04a1b2c3")


def test_power_down_then_wake_up(host: Host, emu: PN532Emulator) -> None:
    assert host.exchange(CMD("16 b0 00")) == RSP("17 00")
    assert emu.asleep
    host.write(WAKE)
    assert host.exchange(CMD("02")) == RSP("03 32 01 06 07")


def test_log_records_both_directions(host: Host, emu: PN532Emulator) -> None:
    host.exchange(CMD("02"))
    assert ("host", CMD("02")) in emu.log
    assert ("pn532", ACK()) in emu.log and ("pn532", RSP("03 32 01 06 07")) in emu.log
