"""nfcpy's own PN532 driver against the emulator: a check by an implementation nobody here wrote.

nfcpy names a serial reader ``tty:<name>:pn532`` and opens ``/dev/<name>``; its path grammar
takes no ``/``, so the pty slave ``/dev/pts/N`` cannot be named directly.  One test therefore
builds the device the way ``nfc.clf.device.connect`` does (``TTY`` transport + ``pn532.init``)
on the pty path, and one opens ``tty:<link>:pn532`` through a symlink in /dev where the test
may create one (as root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import nfc
import nfc.clf.pn532
import nfc.clf.transport
import pytest
from nfc.clf import RemoteTarget

from terminal_sim.mifare_card import Field, MifareClassic1K
from terminal_sim.pn532_emulator import PN532Emulator

pytestmark = pytest.mark.e2e

UID = bytes.fromhex("04a1b2c3")


@pytest.fixture
def field() -> Field:
    f = Field()
    f.place(MifareClassic1K(UID, name="alice"))
    return f


@pytest.fixture
def emu(field: Field) -> Iterator[PN532Emulator]:
    with PN532Emulator(field) as e:
        yield e


def open_on_pty(path: str) -> nfc.ContactlessFrontend:
    """What ContactlessFrontend.open("tty:...:pn532") does, for a path under /dev/pts."""
    device = nfc.clf.pn532.init(nfc.clf.transport.TTY(path))
    device._path = path
    clf = nfc.ContactlessFrontend()
    clf.device = device
    return clf


def test_nfcpy_opens_the_emulator_and_senses_the_card(field: Field, emu: PN532Emulator) -> None:
    clf = open_on_pty(emu.device_path)
    try:
        assert str(clf.device).startswith("PN532v1.6")
        target = clf.sense(RemoteTarget("106A"))
        assert target is not None
        assert target.sdd_res == UID
        assert target.sel_res == b"\x08" and target.sens_res == b"\x04\x00"
        field.clear()
        assert clf.sense(RemoteTarget("106A")) is None
        field.place(MifareClassic1K(bytes.fromhex("04112233445566")))
        assert clf.sense(RemoteTarget("106A")).sdd_res == bytes.fromhex("04112233445566")
    finally:
        clf.close()
    # nfcpy's opening checks (Diagnose line test with an extended frame) and its close
    # (SetSerialBaudRate, PowerDown) all went through the emulator without an error frame.
    assert {0x00, 0x02, 0x14, 0x4A, 0x16} <= set(emu.commands_seen)
    assert not [e for e in emu.errors if "lost" not in e], emu.errors
    assert emu.asleep


# nfcpy's TTY.find() probes each candidate with termios.tcgetattr(open(path)) and never closes
# the file: that ResourceWarning is nfcpy's, not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_nfcpy_open_by_tty_path(emu: PN532Emulator) -> None:
    name = f"ttyCampusSim{os.getpid()}"
    link = f"/dev/{name}"
    try:
        os.symlink(emu.device_path, link)
    except OSError as e:
        pytest.skip(f"cannot create {link} for nfcpy's tty path: {e}")
    try:
        clf = nfc.ContactlessFrontend(f"tty:{name}:pn532")
        try:
            target = clf.sense(RemoteTarget("106A"))
            assert target is not None and target.sdd_res == UID
        finally:
            clf.close()
    finally:
        os.unlink(link)
