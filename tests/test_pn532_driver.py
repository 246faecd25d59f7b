"""The PN532 firmware driver on the MicroPython unix port, over a pty, against the emulator.

Each test places a purse card in the field, starts the emulator, runs
tests/pn532_driver_session.py under ``micropython -X heapsize=64K`` and checks both what the
firmware printed and what is on the card afterwards.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from firmware.mifare import (
    OP_AUTH,
    OP_HALT,
    OP_READ,
    OP_SELECT,
    OP_TRANSFER,
    OP_VALUE,
    OP_WRITE,
    card_io_time_us,
)
from terminal_sim.mifare_card import (
    Field,
    MifareClassic1K,
    encode_access_bits,
    make_trailer,
    parse_value_block,
    value_block,
)
from terminal_sim.pn532_emulator import NACK, PN532Emulator
from tests.micropython_plugin import ROOT, micropython_binary, micropython_env

pytestmark = [pytest.mark.e2e, pytest.mark.micropython]

UID = bytes.fromhex("04a1b2c3")
KA = bytes.fromhex("a0a1a2a3a4a5")
KB = bytes.fromhex("b0b1b2b3b4b5")
PURSE_ACCESS = encode_access_bits([(1, 1, 0), (1, 1, 0), (1, 1, 0), (0, 1, 1)])
SCRIPT = ROOT / "tests" / "pn532_driver_session.py"


@pytest.fixture
def card() -> MifareClassic1K:
    c = MifareClassic1K(UID, name="alice")
    c.set_block(4, b"holder: alice   ")
    c.set_block(5, value_block(1000, 5))
    c.set_block(6, value_block(1000, 5))
    c.set_block(7, make_trailer(KA, PURSE_ACCESS, KB))
    return c


@pytest.fixture
def field(card: MifareClassic1K) -> Field:
    f = Field()
    f.place(card)
    return f


@pytest.fixture
def emu(field: Field) -> Iterator[PN532Emulator]:
    with PN532Emulator(field) as e:
        yield e


def run(emu: PN532Emulator, scenario: str) -> dict[str, list[str]]:
    """Run the session under MicroPython; ``{step: [values...]}`` (repeated steps appended)."""
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=64K", str(SCRIPT), emu.device_path, scenario],
        capture_output=True,
        text=True,
        env=micropython_env(),
        cwd=str(ROOT),
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition(" ")
        out.setdefault(name, []).append(rest)
    assert out.get("done") == [""], proc.stdout + proc.stderr
    return out


def test_sale_with_both_keys(card: MifareClassic1K, emu: PN532Emulator) -> None:
    out = run(emu, "sale")
    assert out["init"] == ["ok"] and out["version"] == ["50.1.6.7"]
    assert out["select"] == ["4 04a1b2c3"] * 3
    assert out["auth_a"] == ["ok"] and out["data4"] == [b"holder: alice   ".hex()]
    assert out["decrement"] == out["transfer5"] == out["restore"] == out["transfer6"] == ["ok"]
    assert out["increment_a"][0].startswith("!CardIOError card refused the command on block 5")
    assert out["auth_b"] == out["write4"] == out["increment_b"] == out["transfer5b"] == ["ok"]
    assert out["data5"] == [value_block(850, 5).hex()]
    assert out["halt"] == ["ok"]
    assert out["auth_wrong"][0].startswith("!AuthFailed card refused the key for block 4")
    commands, card_ios, card_io_us = (int(x) for x in out["counters"][0].split())
    # init 3 + version 1 + 3 selects + 12 MIFARE commands + release + the failed auth.
    assert commands == 21
    t = card_io_time_us
    select = t(OP_SELECT, 1, 2) + t(OP_SELECT, 2, 5) + t(OP_SELECT, 9, 3)
    expected = (
        3 * select
        + 3 * t(OP_AUTH, 12, 8)
        + 2 * t(OP_READ, 4, 18)
        + t(OP_WRITE, 22, 0)
        + 4 * t(OP_VALUE, 10, 0)
        + 3 * t(OP_TRANSFER, 4, 0)
        + t(OP_HALT, 4, 0)
    )
    assert card_ios == 9 + 14 and card_io_us == expected
    assert 40_000 < card_io_us < 50_000  # ~47 ms on the air and in the card for this busy session
    # What the card holds now: the firmware's writes, value ops and the backup copy.
    assert card.block(4) == b"written by fw!!!"
    assert parse_value_block(card.block(5)) == (850, 5)
    assert parse_value_block(card.block(6)) == (750, 5)  # restore+transfer carried addr 5


def test_no_card_returns_0_without_blocking(field: Field, emu: PN532Emulator) -> None:
    field.clear()
    out = run(emu, "nocard")
    assert out["select"] == ["0 "]
    assert int(out["poll_ms"][0]) < 200
    assert int(out["poll_alloc"][0]) <= 32  # one memoryview of the command frame


def test_card_pulled_mid_sale_raises_and_leaves_the_purse_unchanged(
    card: MifareClassic1K, emu: PN532Emulator
) -> None:
    card.pull_after(2)  # auth and read succeed; the decrement meets an empty field
    out = run(emu, "pull")
    assert out["auth_a"] == out["read4"] == ["ok"]
    assert out["decrement"][0].startswith("!NoCard card did not answer at block 5")
    assert int(out["pulled_ms"][0]) < 200
    assert out["select"] == ["4 04a1b2c3", "0 "]
    assert parse_value_block(card.block(5)) == (1000, 5)
    assert not card.present


def test_driver_recovers_from_a_lost_frame_and_a_corrupted_answer(emu: PN532Emulator) -> None:
    emu.ignore_frames = 1  # the first command frame is lost: the driver must send it again
    emu.corrupt_next_response = True  # its answer arrives damaged: the driver must NACK
    t0 = time.monotonic()
    out = run(emu, "version")
    assert out["init"] == ["ok"] and out["version"] == ["50.1.6.7"]
    host = [f for who, f in emu.log if who == "host"]
    sam = bytes.fromhex("0000ff05fbd41401000017")
    assert sum(f.endswith(sam) or f.endswith(sam + b"\x00") for f in host) == 2
    assert NACK in host
    assert time.monotonic() - t0 < 5
