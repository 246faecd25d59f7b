"""The MFRC522 driver on the MicroPython unix port (64 KB heap) against the register-level emulator.

Each test lays cards on a :class:`Field`, serves an :class:`MFRC522Emulator` on a unix socket
and runs ``tests/portable/mfrc522_script.py`` in ``micropython``: the driver's SPI bytes go
through ``firmware.hw.unix_spi`` and the bridge into the emulator. The test checks what the
driver printed and what the virtual card holds afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware import mifare
from terminal_sim.mfrc522_emulator import MFRC522Emulator
from terminal_sim.mfrc522_rf import cascade_levels, to_bits
from terminal_sim.mifare_card import Field, MifareClassic1K, parse_value_block, value_block
from terminal_sim.spi_bridge import SPIBridgeClient, SPIBridgeServer
from tests.micropython_plugin import micropython_binary, micropython_env

pytestmark = [pytest.mark.micropython, pytest.mark.e2e]

FF = "ff" * 6
UID4 = bytes.fromhex("04a1b2c3")
UID7 = bytes.fromhex("04112233445566")


class Bench:
    """An emulated MFRC522 on a socket, and a way to run driver commands on MicroPython."""

    def __init__(self, field: Field, path: str) -> None:
        self.field = field
        self.chip = MFRC522Emulator(field)
        self.server = SPIBridgeServer(self.chip, path).start()

    def run(self, *commands: str) -> list[str]:
        call = f"import mfrc522_script; mfrc522_script.main({self.server.path!r}, {';'.join(commands)!r})"
        proc = subprocess.run(
            [micropython_binary(), "-X", "heapsize=64K", "-c", call],
            capture_output=True,
            text=True,
            env=micropython_env(),
            # Not ROOT: `-c` puts the working directory first on sys.path, and the sources there
            # would be compiled on the 64 KB heap instead of loading the .mpy build.
            cwd=str(Path(self.server.path).parent),
            timeout=30,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The server takes one connection at a time: once a new one answers, the device's is done.
        with SPIBridgeClient(self.server.path) as spi:
            assert spi.read_register(0x37) == 0x92
        return [line.strip() for line in proc.stdout.splitlines()]


@pytest.fixture
def field() -> Field:
    return Field()


@pytest.fixture
def bench(field: Field) -> Iterator[Bench]:
    tmp = tempfile.mkdtemp(prefix="mfrc522-", dir="/tmp")  # AF_UNIX paths must stay short
    b = Bench(field, str(Path(tmp) / "spi.sock"))
    yield b
    b.server.close()
    shutil.rmtree(tmp, ignore_errors=True)
    assert b.server.errors == []
    assert b.chip.violations == [], b.chip.violations


def test_select_auth_read_write_value_and_halt_on_a_4_byte_card(field: Field, bench: Bench) -> None:
    card = MifareClassic1K(UID4)
    card.set_block(5, value_block(1000, 5))
    field.place(card)
    data = bytes(range(0x10, 0x20)).hex()
    out = bench.run(
        "version", "select", "auth 4 A " + FF, "read 4", "counters", "write 4 " + data, "read 4",
        "dec 5 250", "transfer 5", "inc 6 1", "restore 5",
        "select", "auth 4 A " + FF, "read 5", "halt", "select",
    )  # fmt: skip
    assert out == [
        "version = 0x92",
        "select = 4 04a1b2c3",
        f"auth 4 A {FF} = ok",
        "read 4 = " + "00" * 16,
        out[4],
        f"write 4 {data} = ok",
        "read 4 = " + data,
        "dec 5 250 = ok",
        "transfer 5 = ok",
        # Block 6 is no value block: NAK, and the card drops to IDLE, so it ignores what follows.
        "inc 6 1 ! CardIOError: card answered NAK 0x4 to command 0xc1 on block 6 (not allowed, or not authenticated)",
        "restore 5 ! Timeout: no answer from the card to command 0xc2 within 25 ms",
        "select = 4 04a1b2c3",
        f"auth 4 A {FF} = ok",
        "read 5 = " + value_block(750, 5).hex(),
        "halt = ok",
        "select = 0",  # halted: REQA wakes it no more
    ]
    # REQA + ANTICOLLISION + SELECT, AUTH, READ: the card I/O time the firmware model gives.
    expected_us = (
        mifare.card_io_time_us(mifare.OP_SELECT, 1, 2) + mifare.card_io_time_us(mifare.OP_SELECT, 2, 5)
        + mifare.card_io_time_us(mifare.OP_SELECT, 9, 3) + mifare.card_io_time_us(mifare.OP_AUTH, 12, 8)
        + mifare.card_io_time_us(mifare.OP_READ, 4, 18)
    )  # fmt: skip
    assert out[4].endswith(f"card_ios=5 card_io_us={expected_us}"), out[4]
    assert card.block(4).hex() == data
    assert parse_value_block(card.block(5)) == (750, 5)
    assert card.block(6) == bytes(16)  # block 6 is not a value block: refused, untouched
    assert card.halted


def test_7_byte_uid_goes_through_two_cascade_levels(field: Field, bench: Bench) -> None:
    card = MifareClassic1K(UID7)
    field.place(card)
    out = bench.run("select", "auth 1 A " + FF, "write 1 " + "a5" * 16, "read 1")
    assert out == ["select = 7 04112233445566", f"auth 1 A {FF} = ok", "write 1 %s = ok" % ("a5" * 16),
                   "read 1 = " + "a5" * 16]  # fmt: skip
    assert card.block(1) == b"\xa5" * 16
    assert bench.chip.air.frames[1] == (b"\x93\x20", 0) and bench.chip.air.frames[3] == (b"\x95\x20", 0)


def test_wrong_key_is_auth_failed_and_the_card_can_be_selected_again(field: Field, bench: Bench) -> None:
    field.place(MifareClassic1K(UID4))
    out = bench.run("select", "auth 4 B 000000000000", "read 4", "select", "auth 4 A " + FF, "read 4")
    assert out == [
        "select = 4 04a1b2c3",
        "auth 4 B 000000000000 ! AuthFailed: block 4: the card refused key B (or left the field)",
        "read 4 ! Timeout: no answer from the card to command 0x30 within 25 ms",
        "select = 4 04a1b2c3",
        f"auth 4 A {FF} = ok",
        "read 4 = " + "00" * 16,
    ]


def test_no_card_selects_nothing(bench: Bench) -> None:
    assert bench.run("version", "select") == ["version = 0x92", "select = 0"]
    assert bench.chip.air.frames == [(b"\x26", 7), (b"\x26", 7)]  # REQA, once more, then give up


def _winner(uid_a: bytes, uid_b: bytes) -> bytes:
    """The card the driver must pick: the one with a 1 at the first bit where the answers differ."""
    for cl_a, cl_b in zip(cascade_levels(uid_a), cascade_levels(uid_b), strict=False):
        bits_a, bits_b = to_bits(cl_a), to_bits(cl_b)
        for x, y in zip(bits_a, bits_b, strict=True):
            if x != y:
                return uid_a if x else uid_b
    raise AssertionError("UIDs do not differ")


@pytest.mark.parametrize(
    "uid_a, uid_b",
    [
        ("04a1b2c3", "04a1b2c7"),  # differ late, in the last UID byte
        ("04a1b2c3", "08a1b2c3"),  # differ in the first bits
        ("04a1b2c3", "04112233445566"),  # single vs double size: CL1 collides with the cascade tag
        ("04112233445566", "04112233aa5566"),  # same CL1, collide only in CL2
    ],
)
def test_two_cards_in_the_field_select_one_deterministically(
    field: Field, bench: Bench, uid_a: str, uid_b: str
) -> None:
    a, b = MifareClassic1K(bytes.fromhex(uid_a)), MifareClassic1K(bytes.fromhex(uid_b))
    field.place(a)
    field.place(b)
    first = _winner(a.uid, b.uid)
    second = b.uid if first == a.uid else a.uid
    out = bench.run("select", "auth 4 A " + FF, "read 4", "halt", "select", "halt", "select")
    assert out == [
        f"select = {len(first)} {first.hex()}",
        f"auth 4 A {FF} = ok",
        "read 4 = " + "00" * 16,
        "halt = ok",
        f"select = {len(second)} {second.hex()}",
        "halt = ok",
        "select = 0",
    ]
    assert a.halted and b.halted


NO_ANSWER = "! Timeout: no answer from the card to command 0x%02x within 25 ms"


@pytest.mark.parametrize(
    "pull_after, script, expected",
    [
        (1, ["read 4"], ["read 4 " + NO_ANSWER % 0x30]),
        (1, ["write 4 " + "11" * 16], ["write 4 " + "11" * 16 + " " + NO_ANSWER % 0xA0]),
        (2, ["dec 5 100", "transfer 5"], ["dec 5 100 = ok", "transfer 5 " + NO_ANSWER % 0xB0]),
    ],
)
def test_card_pulled_mid_transaction_times_out_and_leaves_the_card_unchanged(
    field: Field, bench: Bench, pull_after: int, script: list[str], expected: list[str]
) -> None:
    card = MifareClassic1K(UID4)
    card.set_block(5, value_block(1000, 5))
    field.place(card)
    before = card.image()
    card.pull_after(pull_after)  # the authentication is one operation
    out = bench.run("select", "auth 4 A " + FF, *script, "select")
    assert out == ["select = 4 04a1b2c3", f"auth 4 A {FF} = ok", *expected, "select = 0"]
    assert not card.present
    assert card.image() == before
