"""Boot: read config.json and secrets.json, build the board, the stores and the application,
then run the terminal's loop (keypad events, reader polls, service lines).

On the ESP32 the flash root holds ``main.py`` with ``from firmware import main; main.main()``;
on the unix port::

    MICROPYPATH=build/mpy micropython -X heapsize=64K -m firmware.main /path/to/workspace

Service lines (technician / simulator; the sync client of a later issue calls the same
library functions): ``time <utc>|+<s>|-<s>``, ``param <name> <int>``, ``net up`` / ``net down [since]``,
``blacklist add|remove <uid hex>``, ``loads <hex of 16-byte entries>``, ``journal`` (prints
``@rec <hex>`` per unacknowledged record), ``ack <seq>``, ``sync`` (a whole sync cycle now;
prints ``@sync online=<0|1> acked=<seq> ...``), ``stats`` (``@stats {json}``; ``stats
reset`` zeroes the counters, ``stats probe`` collects garbage before each poll so the heap
high-water is what a tap itself needs (measured only then), ``stats cpu`` adds up the CPU time of polls and of the
reader driver in them), ``quit``. Role "door" runs ``firmware.door_terminal`` (its own
service lines are listed there).
"""

import binascii
import gc
import json
import sys

from firmware import config, texts, ui

try:
    from time import ticks_diff, ticks_us  # type: ignore[attr-defined]

    import micropython
except ImportError:
    micropython = None  # type: ignore[assignment]
    from firmware.hw import ticks_diff  # CPython: the tests import this module only to read it

    def ticks_us():
        return 0


class TimedReader:
    """A reader that adds up the process CPU time spent in the driver (benchmarks only: the unix
    port's ``time.clock`` ticks in ms, so only sums over many calls mean anything)."""

    def __init__(self, reader, clock):
        self.reader = reader
        self.clock = clock
        self.cpu = 0.0

    def _timed(self, fn, a, b=None, c=None, d=None):
        t = self.clock()
        try:
            if b is None:
                return fn(a)
            if c is None:
                return fn(a, b)
            return fn(a, b, c, d)
        finally:
            self.cpu += self.clock() - t

    def select(self, uid_buf):
        return self._timed(self.reader.select, uid_buf)

    def auth(self, block, key_type, key, uid_mv):
        return self._timed(self.reader.auth, block, key_type, key, uid_mv)

    def read_block(self, block, out_buf):
        return self._timed(self.reader.read_block, block, out_buf)

    def write_block(self, block, data):
        return self._timed(self.reader.write_block, block, data)

    def decrement(self, block, amount):
        return self._timed(self.reader.decrement, block, amount)

    def increment(self, block, amount):
        return self._timed(self.reader.increment, block, amount)

    def restore(self, block):
        return self._timed(self.reader.restore, block)

    def transfer(self, block):
        return self._timed(self.reader.transfer, block)

    def halt(self):
        t = self.clock()
        self.reader.halt()
        self.cpu += self.clock() - t


FIRMWARE_VERSION = "0.1.0"


class Terminal:
    """The running POS terminal: board, stores, application and counters."""

    def __init__(self, board, cfg, code_heap=0):
        from firmware.blacklist import Blacklist
        from firmware.journal import Journal
        from firmware.params import Params
        from firmware.pending_loads import PendingLoads
        from firmware.pos import Pos
        from firmware.purse import Purse

        self.code_heap = code_heap
        root = board.root
        self.board = board
        self.params = Params(root)
        self.journal = Journal(root + "/journal", cfg.terminal_key, max_records=cfg.journal_max)
        self.blacklist = Blacklist(root + "/blacklist")
        self.loads = PendingLoads(root)
        purse = Purse(board.reader, cfg.card_master, cfg.issuer_master, cfg.terminal_id)
        self.app = Pos(purse, self.journal, self.blacklist, self.loads, self.params, board.display,
                       board.clock, cfg.terminal_id, cfg.journal_max)
        self.app.set_network_down_since(board.clock.now())  # down until the sync client says up
        self.sync = None
        if cfg.server_url:
            from firmware.sync import Sync

            self.sync = Sync.from_config(cfg, self.journal, self.blacklist, self.loads, self.params, board.clock,
                                         FIRMWARE_VERSION)
        self.reader_ok = False
        self.poll_us = 0  # time spent serving polls (includes waiting for the reader)
        self.polls = 0
        self.heap_high = 0
        self.gc_probe = False  # collect before each poll: heap_high is then what a tap needs
        self.cpu_clock = None  # time.clock while "stats cpu" times polls and the reader
        self.poll_cpu = 0.0

    def start_reader(self):
        from firmware.mifare import ReaderError

        try:
            self.board.reader.init()
            self.reader_ok = True
        except ReaderError as e:
            self.board.display.show(texts.T_READER_FAULT)
            self.board.display.out("@error reader: %s" % e)

    def poll(self):
        if not self.reader_ok:
            self.start_reader()
            if not self.reader_ok:
                return
        if self.gc_probe:
            gc.collect()
        clock = self.cpu_clock
        c = clock() if clock is not None else 0
        t = ticks_us()
        self.app.poll()
        self.poll_us += ticks_diff(ticks_us(), t)
        if clock is not None:
            self.poll_cpu += clock() - c
        self.polls += 1
        if self.gc_probe and micropython is not None:  # gc.mem_alloc walks the whole heap
            used = gc.mem_alloc()  # type: ignore[attr-defined]
            if used > self.heap_high:
                self.heap_high = used

    def service(self, word, rest):
        """Run one service line; returns False for ``quit``."""
        out = self.board.display.out
        try:
            if word == "quit":
                return False
            if word == "time":
                clock = self.board.clock
                clock.set(clock.now() + int(rest) if rest[0] in "+-" else int(rest))
            elif word == "param":
                name, value = rest.split()
                self.params.apply({name: int(value)})
            elif word == "net":
                parts = rest.split()
                if parts[0] == "up":
                    self.app.set_network_down_since(0)
                else:
                    self.app.set_network_down_since(int(parts[1]) if len(parts) > 1 else self.board.clock.now())
            elif word == "blacklist":
                self._blacklist(rest)
            elif word == "loads":
                self.loads.replace(binascii.unhexlify(rest))
            elif word == "journal":
                self._dump_journal()
            elif word == "ack":
                self.journal.ack(int(rest))
            elif word == "stats":
                self._stats(rest)
            elif word == "sync":
                self._sync_now()
            elif word:
                out("@error unknown command %r" % word)
                return True
            out("@ok %s" % word)
        except Exception as e:  # noqa: BLE001 - a bad service line must not stop the terminal
            out("@error %s: %s" % (word, e))
        return True

    def sync_tick(self):
        """Between taps: one request of the sync cycle, then tell the POS what it learnt."""
        s = self.sync
        if s is not None and s.tick(self.params.sync_interval_s):
            self.app.set_network_down_since(s.network_down_since())
            self.app.set_unauthorised_offline(s.unauthorised_offline())

    def _sync_now(self):
        """Service line ``sync``: a whole cycle at once; prints the outcome."""
        s = self.sync
        if s is None:
            raise ValueError("no server_url configured")
        s.force = True
        self.sync_tick()
        while s.busy():
            self.sync_tick()
        self.board.display.out("@sync online=%d acked=%d unacked=%d blacklist=%d error=%s" % (
            s.online, self.journal.acked_seq(), self.journal.unacked_count(), self.blacklist.version,
            s.last_error if not s.online or s.last_error else "-"))
        s.last_error = ""

    def _blacklist(self, rest):
        action, uid_hex = rest.split()
        uid = binascii.unhexlify(uid_hex)
        key = uid if len(uid) == 7 else b"\x00\x00\x00" + uid
        v = self.blacklist.version
        fields = {"version": v + 1, "full": False, "since": v, "added": b"", "removed": b""}
        fields["added" if action == "add" else "removed"] = key
        self.blacklist.apply(fields, self.board.clock.now())

    def _dump_journal(self):
        j = self.journal
        buf = bytearray(64)
        seq = j.first_unacked()
        while seq <= j.last_seq():
            j.read_unacked(seq, buf, 1)
            self.board.display.out("@rec " + binascii.hexlify(buf).decode())
            seq += 1

    def _stats(self, rest):
        r = self.board.reader
        if rest == "probe" or rest == "noprobe":
            self.gc_probe = rest == "probe"
            return
        purse = self.app.purse
        if rest == "cpu":
            import time

            self.cpu_clock = time.clock  # type: ignore[attr-defined]  # unix port: process CPU time
            purse.reader = TimedReader(r, self.cpu_clock)
            self.poll_cpu = 0.0
            return
        if rest == "reset":
            r.reset_counters()
            self.poll_us = 0
            self.polls = 0
            self.app.sales = 0
            self.poll_cpu = 0.0
            if purse.reader is not r:
                purse.reader.cpu = 0.0
            gc.collect()
            self.heap_high = 0
            return
        d = {"sales": self.app.sales, "polls": self.polls, "poll_us": self.poll_us,
             "commands": r.commands, "card_ios": r.card_ios, "card_io_us": r.card_io_us,
             "heap_high": self.heap_high, "code_heap": self.code_heap, "poll_cpu_s": self.poll_cpu,
             "reader_cpu_s": purse.reader.cpu if purse.reader is not r else 0.0,
             "journal_unacked": self.journal.unacked_count(), "blacklist_count": self.blacklist.count(),
             "clock": self.board.clock.now(), "params": self.params.as_dict(),
             "sync_requests": self.sync.requests if self.sync is not None else 0}
        if micropython is not None:
            d["mem_peak"] = micropython.mem_peak()  # type: ignore[attr-defined]
            d["mem_alloc"] = gc.mem_alloc()  # type: ignore[attr-defined]
            d["mem_free"] = gc.mem_free()  # type: ignore[attr-defined]
        self.board.display.out("@stats " + json.dumps(d))

    def run(self):
        """The terminal's loop: until the keypad input ends or ``quit``."""
        board = self.board
        app = self.app
        keypad = board.keypad
        wait = board.poll_ms if board.poll_ms > 0 else -1
        self.start_reader()
        board.display.show(texts.T_READY)
        while True:
            ev = keypad.poll(wait)
            app.retry_held()
            if ev is None:
                self.poll()
                self.sync_tick()
                continue
            kind = ev[0]
            if kind == ui.EV_POLL:
                self.poll()
            elif kind == ui.EV_SERVICE:
                if not self.service(ev[1][0], ev[1][1]):
                    return
            else:
                app.key(ev)


def _board_module(cfg):
    if cfg.board == "esp32":
        from firmware import board_esp32

        return board_esp32
    from firmware import board_unix

    return board_unix


def preload(cfg):
    """Import every module the terminal runs (board, reader driver, stores, application) and
    return the board module; afterwards the heap holds the code and little else."""
    board_mod = _board_module(cfg)
    if cfg.hw.get("reader", "pn532") == "mfrc522":
        import firmware.drivers.mfrc522  # noqa: F401
        if cfg.board != "esp32":
            import firmware.hw.unix_spi  # noqa: F401
    else:
        import firmware.drivers.pn532  # noqa: F401
        if cfg.board != "esp32":
            import firmware.hw.unix_uart  # noqa: F401
    if cfg.hw.get("flash") == "lfs":
        import firmware.flashdev  # noqa: F401
    import firmware.blacklist  # noqa: F401
    import firmware.journal  # noqa: F401
    import firmware.params  # noqa: F401
    if cfg.server_url:
        import firmware.sync  # noqa: F401 - with firmware.http_client
    if cfg.role == "door":
        import firmware.door_terminal  # noqa: F401 - with firmware.door, access, card_id

        return board_mod
    import firmware.pending_loads  # noqa: F401
    import firmware.pos  # noqa: F401
    import firmware.purse  # noqa: F401

    return board_mod


def code_heap(workspace):
    """Heap bytes the terminal's code takes once imported (bytecode lives in the heap when it
    is loaded from .mpy files, not when frozen or in ROMFS as on a production ESP32)."""
    cfg = config.load(workspace + "/config.json", workspace + "/secrets.json")
    preload(cfg)
    cfg = None
    gc.collect()
    return gc.mem_alloc()  # type: ignore[attr-defined]


def main(workspace=None):
    """Boot the terminal from ``<workspace>/config.json`` and ``secrets.json`` (default: flash root)."""
    if workspace is None:
        workspace = sys.argv[1] if len(sys.argv) > 1 else ""
    cfg = config.load(workspace + "/config.json", workspace + "/secrets.json")
    board_mod = preload(cfg)
    gc.collect()
    code = gc.mem_alloc() if micropython is not None else 0  # type: ignore[attr-defined]
    if cfg.server_url:
        from firmware import sync

        sync.reserve()  # data, not code: after the code was measured
    board = board_mod.Board(cfg, workspace)
    if cfg.role == "door":
        from firmware import door_terminal

        mode = cfg.door_fail_mode
        gc.collect()
        door_terminal.DoorTerminal(board, cfg, code, mode).run()
        return
    gc.collect()
    Terminal(board, cfg, code).run()


if __name__ == "__main__":
    main()
