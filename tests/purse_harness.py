"""Run purse scripts under MicroPython against the PN532 emulator and a personalised virtual card.

The script runs in ``micropython`` with the real PN532 driver over
``firmware.hw.unix_uart`` on the emulator's pty. It prints result lines (``= word ...``) and
may ask the test for card actions through a small control channel: it prints ``? word ...``
and waits for one reply line on stdin, which the test's handler computes while MicroPython
waits — so the handler may pull the card, reset its image, or assert on its memory at that
exact point of the script.

The heap is ``tools.mpy_runtime.FIRMWARE_HEAPSIZE`` (256 KB), as for every terminal process:
the unix port keeps the bytecode of the driver, protocol and purse (about 57 KB) in its GC
heap, where an ESP32 keeps it frozen in flash. What the purse itself allocates is measured
by ``test_purse.py::test_a_tap_allocates_little`` instead.

Usage::

    card = make_card("04a1b2c3", "alice", balance=5000, card_master=CM, issuer_master=IM)
    with PurseRig(card) as rig:
        lines = rig.run('p = purse(7); p.read(); out("balance", p.state.balance)', on_ctl=handler)
    assert lines == [["balance", "5000"]]

The script sees: ``rdr`` (the PN532 reader), ``purse(terminal_id)``, ``out(*words)``,
``ctl(*words) -> str``, ``CM``/``IM`` (masters), and ``from firmware.purse import *``.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from protocol import card_layout as cl
from protocol import crypto
from terminal_sim.mifare_card import Field, MifareClassic1K
from terminal_sim.pn532_emulator import PN532Emulator
from tests.micropython_plugin import ROOT, micropython_binary, micropython_env
from tools.mpy_runtime import FIRMWARE_HEAPSIZE

CARD_MASTER = bytes(range(32))
ISSUER_MASTER = bytes(range(100, 132))

_PRELUDE = """\
import gc
import sys
from binascii import unhexlify
from firmware.hw.unix_uart import UART
gc.collect()
from firmware.drivers.pn532 import PN532_UART
gc.collect()
from firmware.mifare import ReaderError
from protocol import card_layout
gc.collect()
from firmware.purse import *
gc.collect()

CM = unhexlify("%(cm)s")
IM = unhexlify("%(im)s")
rdr = PN532_UART(UART("%(dev)s", baudrate=115200))
rdr.init()


def out(*words):
    print("=", *words)


def ctl(*words):
    print("?", *words)
    return sys.stdin.readline().strip()


def purse(tid):
    return Purse(rdr, CM, IM, tid)


"""

Handler = Callable[[list[str]], str]


class ScriptError(Exception):
    """The MicroPython script failed: the message carries its output."""


class PurseRig:
    """A PN532 emulator with ``card`` on its field; :meth:`run` runs MicroPython scripts on it."""

    def __init__(self, card: MifareClassic1K, card_master: bytes = CARD_MASTER,
                 issuer_master: bytes = ISSUER_MASTER, heapsize: str = FIRMWARE_HEAPSIZE) -> None:
        self.card = card
        self.heapsize = heapsize
        self.card_master = card_master
        self.issuer_master = issuer_master
        self.field = Field()
        self.field.place(card)
        self.emu = PN532Emulator(self.field)

    def __enter__(self) -> PurseRig:
        self.emu.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.emu.stop()

    def run(self, body: str, on_ctl: Handler | None = None, timeout: float = 60) -> list[list[str]]:
        """Run ``body`` after the prelude; returns the ``=`` lines split into words.

        :raises ScriptError: MicroPython exited non-zero or timed out (output attached).
        """
        prelude = _PRELUDE % {"cm": self.card_master.hex(), "im": self.issuer_master.hex(),
                              "dev": self.emu.device_path}
        with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="purse_", delete=False) as f:
            f.write(prelude + body + "\n")
            path = Path(f.name)
        results: list[list[str]] = []
        transcript: list[str] = []
        with subprocess.Popen(
            [micropython_binary(), "-X", f"heapsize={self.heapsize}", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, cwd=str(ROOT), env=micropython_env(),
        ) as proc:
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            try:
                assert proc.stdout is not None and proc.stdin is not None
                for line in proc.stdout:
                    transcript.append(line)
                    words = line.split()
                    if words[:1] == ["="]:
                        results.append(words[1:])
                    elif words[:1] == ["?"]:
                        if on_ctl is None:
                            raise ScriptError(f"script asked {line.strip()!r} but the test gave no handler")
                        proc.stdin.write(on_ctl(words[1:]) + "\n")
                        proc.stdin.flush()
                rc = proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:
                    proc.kill()
                path.unlink()
        if rc != 0:
            tail = "".join(transcript[-40:])
            why = f"killed after {timeout} s" if rc == -9 else f"exited with status {rc}"
            raise ScriptError(f"MicroPython {why}; its last output:\n{tail}")
        return results


# -- looking at the card's memory directly (what the card really holds) ----------------------


class CardView:
    """Decodes a virtual card's purse from raw memory, bypassing keys: the test's ground truth."""

    def __init__(self, card: MifareClassic1K, card_master: bytes = CARD_MASTER) -> None:
        self.card = card
        self.purse_key = crypto.purse_mac_key(card_master, card.uid)

    def value(self, block: int) -> tuple[int, int]:
        return cl.decode_value_block(self.card.block(block))

    def slots(self) -> list[cl.PurseState | None]:
        out: list[cl.PurseState | None] = []
        for blocks in cl.STATE_SLOTS:
            data = b"".join(self.card.block(b) for b in blocks)
            try:
                out.append(cl.decode_state(data, self.purse_key, self.card.uid))
            except Exception:
                out.append(None)
        return out

    def state(self) -> cl.PurseState:
        """The current slot (newest valid); raises AssertionError if none is valid."""
        s0, s1 = self.slots()
        if s0 is not None and s1 is not None:
            return (s0, s1)[cl.newer_slot(s0.gen, s1.gen)]
        cur = s0 or s1
        if cur is None:
            raise AssertionError(f"card {self.card.uid.hex()}: no valid purse state slot")
        return cur

    def load_seq(self) -> int:
        return cl.decode_load_register(self.card.block(cl.BLOCK_LOADS), self.purse_key, self.card.uid)

    def check_consistent(self, balance: int, counter: int) -> None:
        """Primary == backup == state balance == ``balance`` (address byte 8), and the counter."""
        p = self.value(cl.BLOCK_BALANCE)
        b = self.value(cl.BLOCK_BACKUP)
        st = self.state()
        want = (balance, cl.BLOCK_BALANCE)
        if p != want or b != want or st.balance != balance or st.counter != counter:
            raise AssertionError(
                f"card {self.card.uid.hex()}: expected balance {balance} counter {counter} everywhere; "
                f"primary {p}, backup {b}, state balance {st.balance} counter {st.counter}")

    def snapshot(self) -> bytes:
        return self.card.image()

    def restore(self, image: bytes) -> None:
        """Put a saved image back (raw), and the card back on the reader, powered up afresh."""
        for n in range(64):
            self.card.set_block(n, image[n * 16 : n * 16 + 16])
        self.card.put_back()


class TracingCard(MifareClassic1K):
    """A virtual card that logs each command it completes: ``(name, block)`` in :attr:`trace`.

    A torn command raises before it completes, so it is not logged: after ``pull_after(n)`` the
    torn command is the one at index ``n`` of an untorn run's trace.
    """

    def __init__(self, uid: bytes, image: bytes | None = None, name: str = "") -> None:
        super().__init__(uid, image, name)
        self.trace: list[tuple[str, int]] = []

    def authenticate(self, block: int, key_type: int, key: bytes, uid: bytes | None = None) -> None:
        super().authenticate(block, key_type, key, uid)
        self.trace.append(("auth", block))

    def read(self, block: int) -> bytes:
        data = super().read(block)
        self.trace.append(("read", block))
        return data

    def write(self, block: int, data: bytes) -> None:
        super().write(block, data)
        self.trace.append(("write", block))

    def increment(self, block: int, amount: int) -> None:
        super().increment(block, amount)
        self.trace.append(("increment", block))

    def decrement(self, block: int, amount: int) -> None:
        super().decrement(block, amount)
        self.trace.append(("decrement", block))

    def restore(self, block: int) -> None:
        super().restore(block)
        self.trace.append(("restore", block))

    def transfer(self, block: int) -> None:
        super().transfer(block)
        self.trace.append(("transfer", block))

    def corrupt(self, block: int) -> None:
        """What a write torn mid-programming may leave: the block's first four bytes garbled."""
        data = bytearray(self.block(block))
        for i in range(4):
            data[i] ^= 0xFF
        self.set_block(block, bytes(data))
