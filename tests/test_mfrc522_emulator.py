"""The MFRC522 emulator driven by raw register traffic over the SPI bridge, as a driver would."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from terminal_sim.mfrc522_emulator import MFRC522Emulator
from terminal_sim.mfrc522_rf import cascade_levels, crc_a, with_crc
from terminal_sim.mifare_card import KEY_A, Field, MifareClassic1K, value_block
from terminal_sim.spi_bridge import SPIBridgeClient, SPIBridgeServer

COMMAND, COM_IRQ, DIV_IRQ, ERROR, STATUS2, FIFO_DATA, FIFO_LEVEL = 0x01, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A
CONTROL, BIT_FRAMING, COLL, MODE, TX_CONTROL, T_MODE, VERSION = 0x0C, 0x0D, 0x0E, 0x11, 0x14, 0x2A, 0x37
CRC_H, CRC_L = 0x21, 0x22
IDLE, CALC_CRC, TRANSCEIVE, MF_AUTHENT, SOFT_RESET = 0x0, 0x3, 0xC, 0xE, 0xF
RX_IRQ, IDLE_IRQ, ERR_IRQ, TIMER_IRQ = 0x20, 0x10, 0x02, 0x01
UID4 = bytes.fromhex("04a1b2c3")
UID7 = bytes.fromhex("04112233445566")


class Host:
    """What a driver does, spelled out in register accesses over the bridge."""

    def __init__(self, spi: SPIBridgeClient) -> None:
        self.spi = spi

    def rd(self, reg: int) -> int:
        return self.spi.read_register(reg)

    def wr(self, reg: int, *values: int) -> None:
        self.spi.write_register(reg, *values)

    def setup(self) -> None:
        self.wr(T_MODE, 0x80)  # TAuto
        self.wr(COLL, 0x00)  # ValuesAfterColl = 0
        self.wr(TX_CONTROL, 0x83)  # antenna on

    def fifo(self) -> tuple[bytes, int]:
        """FIFO content and RxLastBits."""
        n = self.rd(FIFO_LEVEL)
        data = self.spi.read_registers(FIFO_DATA, n) if n else b""
        return data, self.rd(CONTROL) & 0x07

    def transceive(self, frame: bytes, last_bits: int = 0, rx_align: int = 0) -> tuple[bytes, int, int]:
        """Send ``frame``; returns (FIFO answer, RxLastBits, ComIrqReg)."""
        self.wr(COMMAND, IDLE)
        self.wr(COM_IRQ, 0x7F)
        self.wr(FIFO_LEVEL, 0x80)
        self.wr(FIFO_DATA, *frame)
        self.wr(BIT_FRAMING, (rx_align << 4) | last_bits)
        self.wr(COMMAND, TRANSCEIVE)
        self.wr(BIT_FRAMING, 0x80 | (rx_align << 4) | last_bits)
        irq = self.rd(COM_IRQ)
        data, last = self.fifo()
        return data, last, irq

    def select(self, uid: bytes, request: bytes = b"\x26") -> int:
        """REQA (or WUPA), then SELECT each cascade level of ``uid`` straight away; returns the last SAK."""
        assert self.transceive(request, 7)[2] & RX_IRQ
        sak = -1
        for level, cl in enumerate(cascade_levels(uid)):
            bcc = cl[0] ^ cl[1] ^ cl[2] ^ cl[3]
            data, _, irq = self.transceive(with_crc(bytes((0x93 + 2 * level, 0x70)) + cl + bytes((bcc,))))
            assert irq & RX_IRQ and len(data) == 3, (irq, data.hex())
            sak = data[0]
        return sak

    def authenticate(self, block: int, key: bytes, uid: bytes, key_type: int = KEY_A) -> int:
        self.wr(COMMAND, IDLE)
        self.wr(COM_IRQ, 0x7F)
        self.wr(FIFO_LEVEL, 0x80)
        self.wr(FIFO_DATA, *(bytes((key_type, block)) + key + uid[-4:]))
        self.wr(COMMAND, MF_AUTHENT)
        return self.rd(COM_IRQ)


@pytest.fixture
def field() -> Field:
    return Field()


@pytest.fixture
def chip(field: Field) -> MFRC522Emulator:
    return MFRC522Emulator(field)


@pytest.fixture
def host(chip: MFRC522Emulator) -> Iterator[Host]:
    tmp = tempfile.mkdtemp(prefix="mfrc522-", dir="/tmp")  # AF_UNIX paths must stay short
    server = SPIBridgeServer(chip, str(Path(tmp) / "spi.sock")).start()
    client = SPIBridgeClient(server.path)
    yield Host(client)
    client.close()
    server.close()
    shutil.rmtree(tmp, ignore_errors=True)
    assert server.errors == []
    assert chip.violations == []


# -- SPI and registers -------------------------------------------------------------------------


def test_version_reg_reads_0x92_through_the_real_address_byte(host: Host) -> None:
    assert host.spi.transaction(b"\xee\x00") == b"\x00\x92"  # (0x37 << 1) | 0x80


def test_read_stream_returns_each_address_in_turn(host: Host) -> None:
    # ComIrqReg, ErrorReg, ModeReg, VersionReg: reset values 0x14, 0x00, 0x3F, 0x92
    assert host.spi.transaction(b"\x88\x8c\xa2\xee\x00") == b"\x00\x14\x00\x3f\x92"


def test_write_stream_fills_the_fifo_and_flush_empties_it(host: Host) -> None:
    host.wr(FIFO_DATA, 1, 2, 3, 4, 5)
    assert host.rd(FIFO_LEVEL) == 5
    assert host.spi.read_registers(FIFO_DATA, 5) == b"\x01\x02\x03\x04\x05"
    host.wr(FIFO_DATA, 9)
    host.wr(FIFO_LEVEL, 0x80)
    assert host.rd(FIFO_LEVEL) == 0


def test_fifo_overflow_sets_buffer_ovfl_until_flushed(host: Host) -> None:
    host.wr(FIFO_DATA, *range(65))
    assert host.rd(FIFO_LEVEL) == 64
    assert host.rd(ERROR) & 0x10
    assert host.rd(COM_IRQ) & ERR_IRQ
    host.wr(FIFO_LEVEL, 0x80)
    assert host.rd(ERROR) & 0x10 == 0


def test_com_irq_set1_sets_and_clears_marked_bits(host: Host) -> None:
    host.wr(COM_IRQ, 0x7F)
    assert host.rd(COM_IRQ) == 0
    host.wr(COM_IRQ, 0x80 | TIMER_IRQ)
    assert host.rd(COM_IRQ) == TIMER_IRQ


def test_software_cannot_set_mf_crypto1_on(host: Host) -> None:
    host.wr(STATUS2, 0x08)
    assert host.rd(STATUS2) & 0x08 == 0


def test_spi_slips_are_recorded(chip: MFRC522Emulator, host: Host) -> None:
    host.spi.transaction(b"\xef\x00")  # LSB of the address byte set
    host.spi.transaction(b"\xee\xee")  # read stream not ended by 0x00
    host.rd(VERSION)  # a round trip: the bridge has handled everything sent before
    assert len(chip.violations) == 2, chip.violations
    chip.violations.clear()


# -- CRC coprocessor ---------------------------------------------------------------------------


def test_calc_crc_gives_crc_a_and_keeps_adding_fifo_bytes(host: Host) -> None:
    host.wr(MODE, 0x3D)  # CRCPreset 01 = 0x6363
    host.wr(FIFO_DATA, 0x30, 0x00)
    host.wr(COMMAND, CALC_CRC)
    assert host.rd(DIV_IRQ) & 0x04
    assert (host.rd(CRC_L), host.rd(CRC_H)) == (0x02, 0xA8)
    host.wr(FIFO_DATA, 0x12)  # still CalcCRC: the byte joins the calculation
    assert host.rd(CRC_L) | host.rd(CRC_H) << 8 == crc_a(b"\x30\x00\x12")
    assert host.rd(FIFO_LEVEL) == 0


def test_crc_preset_follows_mode_reg(host: Host) -> None:
    host.wr(MODE, 0x3F)  # CRCPreset 11 = 0xFFFF
    host.wr(FIFO_DATA, 0x12, 0x34)
    host.wr(COMMAND, CALC_CRC)
    assert host.rd(CRC_L) | host.rd(CRC_H) << 8 == crc_a(b"\x12\x34", 0xFFFF)


# -- RF: request, anticollision, select ------------------------------------------------------


def test_antenna_off_means_silence_and_timer_irq(field: Field, host: Host) -> None:
    field.place(MifareClassic1K(UID4))
    host.wr(T_MODE, 0x80)
    _, _, irq = host.transceive(b"\x26", 7)
    assert irq & TIMER_IRQ and not irq & RX_IRQ
    host.wr(TX_CONTROL, 0x83)
    data, last, irq = host.transceive(b"\x26", 7)
    assert (data, last) == (b"\x04\x00", 0) and irq & RX_IRQ and not irq & TIMER_IRQ


def test_atqa_of_4_and_7_byte_cards_collide_in_bit_7(field: Field, host: Host) -> None:
    field.place(MifareClassic1K(UID4))
    field.place(MifareClassic1K(UID7))
    host.setup()
    data, _, irq = host.transceive(b"\x26", 7)
    assert irq & ERR_IRQ and host.rd(ERROR) & 0x08
    assert host.rd(COLL) & 0x3F == 7  # 0x04 vs 0x44: first difference is bit 7 (1-based)
    assert data == b"\x44\x00"


def test_anticollision_reports_collision_position_including_rx_align(field: Field, host: Host) -> None:
    a, b = bytes.fromhex("01000000"), bytes.fromhex("03000000")  # differ in bit 2 (1-based)
    field.place(MifareClassic1K(a))
    field.place(MifareClassic1K(b))
    host.setup()
    host.transceive(b"\x26", 7)
    data, _, _ = host.transceive(b"\x93\x20")
    assert host.rd(COLL) & 0x3F == 2 and host.rd(ERROR) & 0x08
    assert data == b"\x03\x00\x00\x00\x00"  # ValuesAfterColl = 0: the bits after bit 2 are cleared
    # Send the first 2 bits (1, 1): only card b answers, aligned at bit 2 of the first FIFO byte.
    data, last, irq = host.transceive(b"\x93\x22\x03", last_bits=2, rx_align=2)
    assert host.rd(ERROR) & 0x08 == 0 and host.rd(COLL) & 0x20  # CollPosNotValid: no collision
    assert last == 0 and len(data) == 5  # 2 aligned + 38 received bits fill 5 whole bytes
    assert data[0] & 0xFC == b[0] & 0xFC and data[1:4] == b[1:4]


def test_select_cascade_for_a_7_byte_uid(field: Field, host: Host) -> None:
    field.place(MifareClassic1K(UID7))
    host.setup()
    host.transceive(b"\x26", 7)
    data, _, _ = host.transceive(b"\x93\x20")
    assert data == bytes((0x88, 0x04, 0x11, 0x22, 0x88 ^ 0x04 ^ 0x11 ^ 0x22))
    data, _, _ = host.transceive(with_crc(b"\x93\x70" + data))
    assert data == with_crc(b"\x04")  # SAK: UID not complete
    data, _, _ = host.transceive(b"\x95\x20")
    assert data[:4] == UID7[3:]
    data, _, _ = host.transceive(with_crc(b"\x95\x70" + data))
    assert data == with_crc(b"\x08")


def test_select_with_a_wrong_crc_gets_no_answer(field: Field, host: Host) -> None:
    field.place(MifareClassic1K(UID4))
    host.setup()
    host.transceive(b"\x26", 7)
    frame = bytearray(with_crc(b"\x93\x70" + UID4 + bytes((UID4[0] ^ UID4[1] ^ UID4[2] ^ UID4[3],))))
    frame[-1] ^= 1
    _, _, irq = host.transceive(bytes(frame))
    assert irq & TIMER_IRQ and not irq & RX_IRQ


# -- MIFARE --------------------------------------------------------------------------------------


def test_mf_authent_sets_crypto1_on_and_ends_idle(field: Field, host: Host) -> None:
    field.place(MifareClassic1K(UID4))
    host.setup()
    host.select(UID4)
    irq = host.authenticate(4, b"\xff" * 6, UID4)
    assert irq & IDLE_IRQ and host.rd(STATUS2) & 0x08 and host.rd(COMMAND) & 0x0F == IDLE


def test_mf_authent_wrong_key_is_silence(field: Field, host: Host) -> None:
    card = MifareClassic1K(UID4)
    field.place(card)
    host.setup()
    host.select(UID4)
    irq = host.authenticate(4, b"\x00" * 6, UID4)
    assert irq & TIMER_IRQ and not irq & IDLE_IRQ and host.rd(STATUS2) & 0x08 == 0
    assert card.authenticated_sector is None


def test_read_write_value_ops_with_ack_nak_and_passive_ack(field: Field, host: Host) -> None:
    card = MifareClassic1K(UID4)
    card.set_block(5, value_block(1000, 5))
    field.place(card)
    host.setup()
    host.select(UID4)
    host.authenticate(4, b"\xff" * 6, UID4)
    data, last, _ = host.transceive(with_crc(b"\xa0\x04"))
    assert (data, last) == (b"\x0a", 4)  # ACK
    data, last, _ = host.transceive(with_crc(b"A" * 16))
    assert (data, last) == (b"\x0a", 4)
    data, _, _ = host.transceive(with_crc(b"\x30\x04"))
    assert data == with_crc(b"A" * 16)
    assert host.transceive(with_crc(b"\xc0\x05"))[:2] == (b"\x0a", 4)
    _, _, irq = host.transceive(with_crc((250).to_bytes(4, "little")))
    assert irq & TIMER_IRQ and not irq & RX_IRQ  # the second step is never acknowledged
    assert host.transceive(with_crc(b"\xb0\x05"))[:2] == (b"\x0a", 4)
    assert card.block(5) == value_block(750, 5) and card.block(4) == b"A" * 16


def test_nak_for_other_sector_and_for_bad_crc(field: Field, host: Host) -> None:
    card = MifareClassic1K(UID4)
    field.place(card)
    host.setup()
    host.select(UID4)
    host.authenticate(4, b"\xff" * 6, UID4)
    assert host.transceive(with_crc(b"\x30\x01"))[:2] == (b"\x04", 4)  # sector 0 not authenticated
    host.wr(STATUS2, 0x00)  # a NAK sends the card back to IDLE, crypto off: select and auth again
    host.select(UID4)
    host.authenticate(4, b"\xff" * 6, UID4)
    assert host.transceive(b"\x30\x04\x00\x00")[:2] == (b"\x05", 4)  # CRC error


def test_crypto_state_must_agree(field: Field, host: Host) -> None:
    field.place(MifareClassic1K(UID4))
    host.setup()
    host.select(UID4)
    host.authenticate(4, b"\xff" * 6, UID4)
    host.wr(STATUS2, 0x00)  # the reader drops Crypto1; the card still expects ciphertext
    _, _, irq = host.transceive(with_crc(b"\x30\x04"))
    assert irq & TIMER_IRQ and not irq & RX_IRQ


def test_pulled_card_is_silent_and_halt_needs_wupa(field: Field, host: Host) -> None:
    card = MifareClassic1K(UID4)
    field.place(card)
    host.setup()
    host.select(UID4)
    assert host.transceive(with_crc(b"\x50\x00"))[2] & TIMER_IRQ  # HLTA: never answered
    assert host.transceive(b"\x26", 7)[2] & TIMER_IRQ  # REQA: a halted card stays silent
    host.select(UID4, request=b"\x52")  # WUPA wakes it
    host.authenticate(4, b"\xff" * 6, UID4)
    card.pull_after(0)
    _, _, irq = host.transceive(with_crc(b"\x30\x04"))
    assert irq & TIMER_IRQ and not irq & RX_IRQ and not card.present


def test_soft_reset_restores_registers_and_powers_cards_down(field: Field, host: Host) -> None:
    card = MifareClassic1K(UID4)
    field.place(card)
    host.setup()
    host.select(UID4)
    host.transceive(with_crc(b"\x50\x00"))
    host.wr(COMMAND, SOFT_RESET)
    assert host.rd(TX_CONTROL) == 0x80 and host.rd(MODE) == 0x3F and host.rd(VERSION) == 0x92
    host.setup()
    assert host.transceive(b"\x26", 7)[:2] == (b"\x04\x00", 0)  # powered up again: IDLE, answers REQA
