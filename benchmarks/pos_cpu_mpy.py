"""The POS firmware's own CPU per sale, with the hardware in the same process.

Run by ``benchmarks/pos_tap.py`` under MicroPython. The terminal is built as ``firmware.main``
builds it (``Terminal``: purse, journal on flash, blacklist, pending loads, parameters) on the
real PN532 driver, but the driver's UART is a chip answering in this process (``Chip``, with a
personalised card's 64 blocks, which its sales change as a card would) and the display
line is built and dropped. What is left is the work the device does per sale: keypad event,
reader frames, purse, limits, journal (its appends and fsyncs go to a directory: the only
system calls), display texts.

Usage::

    micropython -X heapsize=256K benchmarks/pos_cpu_mpy.py <workspace> <card file> [sales [flash dir]]

The chip's own CPU is measured in the same run (the frames of one sale answered as often)
and taken off; sales and chip run in 41 alternating rounds, each timed with the microsecond
clock (``ticks_us``): the process runs alone and never waits, so a round's time is its CPU
time plus whatever other jobs on this shared machine took from it. The fastest round is the
figure; the median is printed as well (the process CPU clock, ``time.clock``, counts whole
milliseconds, too coarse for rounds of a few ms).
``<workspace>`` holds config.json and secrets.json (``terminal_sim.console.Console`` writes
them); the flash goes to ``<flash dir>`` (default ``<workspace>/cpu-flash``; pos_tap.py
gives a RAM file system: the device's flash is no host disk to flush). ``<card file>`` holds cards of 64
blocks (1,024 bytes each), one after the other: the sales go to them in turn. Prints one JSON object: ``sales``,
``cpu_us_per_sale`` (the fastest sales round less the fastest chip round),
``median_cpu_us_per_sale`` (medians likewise), ``rounds_cpu_us_per_sale``, ``system_share``
(of all rounds' CPU, from /proc), ``chip_us_per_sale`` (what was taken off), ``reader_commands_per_sale``,
``alloc_bytes_per_sale`` (heap allocated by a sale, the chip's answers allocate nothing).
"""

import gc
import json
import os
import sys
import time

import micropython

from firmware import config, ui
from firmware.board_unix import Clock, Display
from firmware.drivers.pn532 import PN532_UART
from firmware.main import Terminal
from protocol import card_layout as cl

_ROUNDS = 41
_HEAD = b"\x00\x00\xff\x00\xff\x00\x00\x00\xff"  # an ACK, then the answer's start code
_TARGET = b"\x01\x01\x00\x04\x08"  # InListPassiveTarget: 1 target, Tg 1, ATQA 00 04, SAK 08


@micropython.viper
def _copy(dst, d: int, src, s: int, n: int):
    """dst[d:d + n] = src[s:s + n], without a slice object."""
    dp = ptr8(dst)  # noqa: F821 - viper built-in
    sp = ptr8(src)  # noqa: F821
    for i in range(n):
        dp[d + i] = sp[s + i]


@micropython.viper
def _sum(buf, a: int, b: int) -> int:
    p = ptr8(buf)  # noqa: F821
    t = 0
    for i in range(a, b):
        t += p[i]
    return t


class Chip:
    """A PN532 with one MIFARE Classic card on its field, answering host frames in place, in
    machine code and without allocating (its work is not the firmware's): reads, writes and
    the value commands change the card's 64 blocks as the card would; authentication always
    succeeds."""

    def __init__(self, images):
        self.cards = [bytearray(images[i:i + 1024]) for i in range(0, len(images), 1024)]
        self.uids = [bytes(card[0:4]) for card in self.cards]
        self.blocks = self.cards[0]
        self.uid = self.uids[0]
        self.present = True
        self._out = bytearray(64)
        self._n = 0
        self._rp = 0
        self._value = 0  # the card's transfer buffer
        self._addr = 0
        self._block = bytearray(16)
        self.log = None  # a list: the frames written are kept there

    @micropython.native
    def _answer(self, code, n):
        """Frame the answer ``D5 code`` + the ``n`` data bytes already at ``_out[13:]``."""
        out = self._out
        _copy(out, 0, _HEAD, 0, 9)
        ln = n + 2
        out[9] = ln
        out[10] = (-ln) & 0xFF
        out[11] = 0xD5
        out[12] = code
        total = 0xD5 + code + _sum(out, 13, 13 + n)
        out[13 + n] = (-total) & 0xFF
        out[14 + n] = 0
        self._n = 15 + n
        self._rp = 0

    @micropython.native
    def _list(self):
        out = self._out
        if not self.present:
            out[13] = 0
            self._answer(0x4B, 1)
            return
        u = self.uid
        _copy(out, 13, _TARGET, 0, 5)  # NbTg, Tg, ATQA, SAK
        out[18] = len(u)
        _copy(out, 19, u, 0, len(u))
        self._answer(0x4B, 6 + len(u))

    @micropython.native
    def _mifare(self, frame):
        out = self._out
        op = frame[8]
        b = frame[9]
        blocks = self.blocks
        if op == 0x30:  # READ
            _copy(out, 14, blocks, 16 * b, 16)
            out[13] = 0
            self._answer(0x41, 17)
            return
        if op == 0xA0:  # WRITE
            _copy(blocks, 16 * b, frame, 10, 16)
        elif op == 0xC0 or op == 0xC1 or op == 0xC2:  # DECREMENT, INCREMENT, RESTORE
            o = 16 * b
            v = blocks[o] | blocks[o + 1] << 8 | blocks[o + 2] << 16 | blocks[o + 3] << 24
            if v >= 0x80000000:
                v -= 0x100000000
            amount = frame[10] | frame[11] << 8 | frame[12] << 16 | frame[13] << 24
            self._value = v - amount if op == 0xC0 else v + amount if op == 0xC1 else v
            self._addr = blocks[16 * b + 12]
        elif op == 0xB0:  # TRANSFER
            cl.encode_value_block_into(self._block, self._value, self._addr)
            _copy(blocks, 16 * b, self._block, 0, 16)
        out[13] = 0
        self._answer(0x41, 1)

    @micropython.native
    def write(self, frame):
        if self.log is not None:
            self.log.append(bytes(frame))
        if frame[0] == 0x55:  # HSU wake-up: no answer
            return len(frame)
        cmd = frame[6]
        if cmd == 0x4A:
            self._list()
        elif cmd == 0x40:
            self._mifare(frame)
        elif cmd == 0x02:  # GetFirmwareVersion: PN532 v1.6
            self._out[13:17] = b"\x32\x01\x06\x07"
            self._answer(0x03, 4)
        elif cmd == 0x52:  # InRelease
            self._out[13] = 0
            self._answer(0x53, 1)
        else:  # SAMConfiguration, RFConfiguration
            self._answer(cmd + 1, 0)
        return len(frame)

    @micropython.native
    def tap(self, i):
        """Card ``i`` comes to the field (the next customer)."""
        self.blocks = self.cards[i]
        self.uid = self.uids[i]
        self.present = True

    @micropython.native
    def wait(self, ms):
        return self._rp < self._n

    @micropython.native
    def any(self):
        return 1 if self._rp < self._n else 0

    @micropython.native
    def readinto(self, buf, nbytes=None):
        k = self._n - self._rp
        if nbytes is not None and nbytes < k:
            k = nbytes
        if k <= 0:
            return None
        _copy(buf, 0, self._out, self._rp, k)
        self._rp += k
        return k


class NoIO:
    """The display's output: built as on the console, then dropped."""

    def write(self, buf):
        pass

    def write_line(self, line):
        pass


class Board:
    def __init__(self, workspace, chip, flash):
        self.root = flash
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        self.display = Display(NoIO())
        self.clock = Clock(workspace + "/clock_offset")
        self.reader = PN532_UART(chip)
        self.keypad = None
        self.relay = None
        self.poll_ms = 0


def cpu_ticks():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def sell(term, chip, n):
    """``n`` sales of 1.00, to the cards in turn (each tap a new customer, as in a canteen)."""
    app = term.app
    k = len(chip.cards)
    for i in range(n):
        app.key((ui.EV_AMOUNT, 100))
        chip.tap(i % k)
        term.poll()
        chip.present = False
        term.poll()


def chip_cpu(chip, frames, n):
    """Microseconds the chip alone takes to answer ``frames`` ``n`` times (as the driver asks:
    write, wait, read): its share of the sales' CPU, taken off the firmware's."""
    buf = bytearray(64)
    card = bytes(chip.blocks)  # the replayed writes must not change the card the sales go on with
    write, wait, readinto = chip.write, chip.wait, chip.readinto
    t0 = time.ticks_us()
    for _ in range(n):
        for frame in frames:
            write(frame)
            wait(0)
            readinto(buf)
    t = time.ticks_diff(time.ticks_us(), t0)
    chip.blocks[:] = card
    return t


def terminal(workspace, blocks, flash):
    """(Terminal, Chip): the POS as firmware.main builds it, on a chip with the cards ``blocks``,
    its flash in the directory ``flash``."""
    cfg = config.load(workspace + "/config.json", workspace + "/secrets.json")
    cfg.server_url = ""  # no sync client: the loop here never syncs (sync cycles are not sales)
    chip = Chip(blocks)
    term = Terminal(Board(workspace, chip, flash), cfg)
    for line in ("double_tap_gap_s 0", "per_txn_limit 10000000", "daily_limit 10000000"):
        term.service("param", line)
    term.service("net", "up")
    term.start_reader()
    return term, chip


def main():
    workspace = sys.argv[1]
    with open(sys.argv[2], "rb") as f:
        blocks = f.read()
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    term, chip = terminal(workspace, blocks, sys.argv[4] if len(sys.argv) > 4 else workspace + "/cpu-flash")
    sales0 = term.app.sales
    sell(term, chip, 20)  # files open, GC settled
    term.journal.ack(term.journal.last_seq())
    if term.app.sales - sales0 != 20:
        raise SystemExit("warm-up sales did not complete: %d of 20" % (term.app.sales - sales0))
    reader = term.board.reader
    chip.log = []
    sell(term, chip, 1)
    frames = chip.log  # one sale's frames, for the chip's own share
    chip.log = None
    reader.reset_counters()
    # Rounds of sales and of the chip alone, alternated, each timed in microseconds: the
    # machine is shared and other jobs only ever add time, so the least disturbed round is the
    # figure (the median is printed too). /proc gives the user/system split over all rounds.
    rounds = []
    m = max(1, n // _ROUNDS)
    done = 0
    chip_rounds = []
    u0, s0 = cpu_ticks()
    for _ in range(_ROUNDS):
        gc.collect()
        t0 = time.ticks_us()
        sell(term, chip, m)
        t = time.ticks_diff(time.ticks_us(), t0)
        c = chip_cpu(chip, frames, m)
        rounds.append(t / m)
        chip_rounds.append(c / m)
        done += m
        term.journal.ack(term.journal.last_seq())  # what the sync client does: the journal never fills
    u1, s1 = cpu_ticks()
    if term.app.sales - sales0 != 21 + done:
        raise SystemExit("sales did not complete: %d of %d" % (term.app.sales - sales0 - 21, done))
    commands = reader.commands
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()  # type: ignore[attr-defined]
    sell(term, chip, 2)  # without collections: the heap must hold what 2 sales allocate
    alloc = gc.mem_alloc() - a0  # type: ignore[attr-defined]
    gc.enable()
    rounds.sort()
    chip_rounds.sort()
    # The chip's fastest round is taken off the sales' fastest (its median off their median):
    # a chip round slowed by another job must not make the firmware look faster.
    mid = len(rounds) // 2
    fastest, median = rounds[0] - chip_rounds[0], rounds[mid] - chip_rounds[mid]
    rounds = [r - chip_rounds[0] for r in rounds]
    ticks = (u1 - u0) + (s1 - s0)  # sales and chip rounds together; the split applies to both
    print(json.dumps({"sales": done, "cpu_us_per_sale": fastest, "median_cpu_us_per_sale": median,
                      "rounds_cpu_us_per_sale": [round(r) for r in rounds], "chip_us_per_sale": chip_rounds[0],
                      "system_share": (s1 - s0) / ticks if ticks else 0.0,
                      "reader_commands_per_sale": commands / done, "alloc_bytes_per_sale": alloc / 2}))

if __name__ == "__main__":
    main()
