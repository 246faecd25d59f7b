"""The board for the MicroPython unix port: the terminal's hardware over ptys, sockets and files.

The same interfaces as ``board_esp32``, so the firmware runs unchanged on a PC against the
simulated hardware of ``terminal_sim``:

==========  ===================================================================================
reader      ``hw.reader`` "pn532": PN532 on the pty ``hw.reader_path`` (``firmware.hw.unix_uart``);
            "mfrc522": MFRC522 over the SPI bridge socket ``hw.reader_path`` (``firmware.hw.unix_spi``)
display     one line on stdout per change: ``DISPLAY <Chinese> | <English>``
keypad      lines on stdin, or on a unix socket ``hw.keypad`` (the display then writes there too);
            see :func:`parse` for the line protocol; ``@ready`` is printed when the firmware
            waits for the next line
relay       role "door": the lock relay, one line on the console per change: ``RELAY open <ms>``
            (a grant releases the lock), ``RELAY closed`` (locked again), and with the power
            off (``power off`` service line) ``RELAY open power-lost`` for a fail-safe lock
            (released without power) or ``RELAY closed power-lost`` for a fail-secure one
clock       ``time.time()`` plus an offset kept in ``<workspace>/clock_offset``
flash       ``hw.flash`` "dir": the directory ``<workspace>/flash`` (VfsPosix); "lfs": a littlefs
            image ``<workspace>/flash.img`` (``hw.flash_blocks`` x 4096 bytes) mounted at /flash
==========  ===================================================================================

Usage::

    board = Board(cfg, "/tmp/ws")
    board.reader.init()
    ev = board.keypad.poll(-1)
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

import os
import select
import socket
import struct
import sys
import time

from firmware import texts, ui

_AF_UNIX_ADDR = "<H"


def parse(line):
    """A keypad event from one protocol line (bytes), or None for an empty line.

    ``amount 1250`` (cents), ``pin 123456``, ``ok``/``confirm``/``key OK``, ``cancel``/``key CANCEL``,
    ``balance``/``key BAL``, ``pinchange``/``key PIN``, ``poll``; anything else is a service
    command ``(EV_SERVICE, (word, rest))``. Only the str an event carries is built: a str costs
    the unix port a search of every interned string.
    """
    line = line.strip()
    if not line:
        return None
    sp = line.find(b" ")
    word = line if sp < 0 else line[:sp]
    rest = b"" if sp < 0 else line[sp + 1:].strip()
    if word == b"key":
        word = rest.lower()
        rest = b""
    if word == b"poll":
        return (ui.EV_POLL, None)
    if word == b"amount":
        return (ui.EV_AMOUNT, int(rest) if rest.isdigit() else -1)
    if word == b"pin":
        return (ui.EV_PIN, rest.decode())
    if word == b"number":
        return (ui.EV_NUMBER, rest.decode())
    if word == b"ok" or word == b"confirm":
        return (ui.EV_CONFIRM, None)
    if word == b"cancel":
        return (ui.EV_CANCEL, None)
    if word == b"balance" or word == b"bal":
        return (ui.EV_BALANCE, None)
    if word == b"pinchange":
        return (ui.EV_PIN_CHANGE, None)
    return (ui.EV_SERVICE, (word.decode(), rest.decode()))


class LineIO:
    """The console stream on stdin/stdout, as bytes: lines in, lines out through one buffer."""

    def __init__(self):
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._out = bytearray(256)

    def write(self, buf):
        """Write ``buf``: whole lines, newlines included."""
        sys.stdout.buffer.write(buf)

    def write_line(self, line):
        out = self._out
        out[:] = b""
        out.extend(line)
        out.append(10)
        self.write(out)

    def _readline(self):
        return sys.stdin.buffer.readline()

    def read_line(self, timeout_ms):
        """One line (bytes, without the newline), b"" on timeout, None at end of input."""
        for _ in self._poll.ipoll(timeout_ms):  # type: ignore[attr-defined]  # MicroPython: no allocation
            break
        else:
            return b""
        line = self._readline()
        if not line:
            return None
        return line.rstrip(b"\r\n") or b" "


class SocketIO(LineIO):
    """The console stream on the one connection accepted at a unix socket ``path``."""

    def __init__(self, path):
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.remove(path)
        except OSError:
            pass
        srv.bind(struct.pack(_AF_UNIX_ADDR, socket.AF_UNIX) + path.encode() + b"\x00")
        srv.listen(1)
        self._conn = srv.accept()[0]
        srv.close()
        self._poll = select.poll()
        self._poll.register(self._conn, select.POLLIN)
        self._out = bytearray(256)

    def write(self, buf):
        self._conn.write(buf)  # type: ignore[attr-defined]  # MicroPython socket

    def _readline(self):
        return self._conn.readline()  # type: ignore[attr-defined]


@micropython.native
def _screen(b, lang, tid, arg, tid2, arg2, tid3, arg3):
    """Append up to three texts of one language (``texts.ZH`` or ``texts.EN``), " / " between."""
    texts.text_into(b, lang, tid, arg)
    if tid2:
        b.extend(b" / ")
        texts.text_into(b, lang, tid2, arg2)
    if tid3:
        b.extend(b" / ")
        texts.text_into(b, lang, tid3, arg3)


class Display(ui.Display):
    """Prints each screen as one line: Chinese (what the LCD shows) | English (for the console)."""

    def __init__(self, io):
        self._io = io
        self._line = bytearray(256)  # "DISPLAY <zh> | <en>\n", built in place
        self._line[:] = b"DISPLAY \n"

    @property
    def last(self):
        """The screen shown last: ``<Chinese> | <English>``."""
        return bytes(memoryview(self._line)[8:-1]).decode()

    @micropython.native
    def show(self, tid, arg=None, tid2=0, arg2=None, tid3=0, arg3=None):
        b = self._line
        b[:] = b"DISPLAY "
        _screen(b, texts.ZH, tid, arg, tid2, arg2, tid3, arg3)
        b.extend(b" | ")
        _screen(b, texts.EN, tid, arg, tid2, arg2, tid3, arg3)
        b.append(10)
        self._io.write(b)

    def out(self, line):
        self._io.write_line(line)


class Keypad(ui.Keypad):
    """Key events from protocol lines (see :func:`parse`); prints ``@ready`` before waiting."""

    def __init__(self, io):
        self._io = io
        self._prompt = True

    def poll(self, timeout_ms):
        if self._prompt:
            self._io.write_line("@ready")
            self._prompt = False
        line = self._io.read_line(timeout_ms)
        if line is None:
            return (ui.EV_SERVICE, ("quit", ""))
        if not line:
            return None
        self._prompt = True
        ev = parse(line)
        return ev if ev is not None else (ui.EV_SERVICE, ("", ""))


class Relay:
    """The door lock relay, simulated: prints what the lock does (see the module table).

    ``fail_mode`` "safe" (magnetic lock: open without power) or "secure" (stays locked; the
    terminal runs on battery); the door terminal sets it from config.json.
    """

    def __init__(self, io):
        self._io = io
        self.fail_mode = "safe"
        self.powered = True
        self._pulsing = False
        self._deadline = 0

    def pulse(self, ms):
        """Release the lock for ``ms`` milliseconds (the loop calls ``update`` to end it)."""
        self._deadline = time.ticks_add(time.ticks_ms(), ms)  # type: ignore[attr-defined]
        self._pulsing = True
        self._io.write_line("RELAY open %d" % ms)

    def remaining_ms(self):
        """Milliseconds until the pulse ends, -1 when none runs."""
        if not self._pulsing:
            return -1
        return max(0, time.ticks_diff(self._deadline, time.ticks_ms()))  # type: ignore[attr-defined]

    def update(self):
        """End the pulse once its time is up."""
        if self._pulsing and self.remaining_ms() == 0:
            self._pulsing = False
            self._report()

    def set_power(self, on):
        self.powered = on
        self._report()

    def is_open(self):
        """True while the door can be opened: a pulse runs, or a fail-safe lock has no power."""
        return self._pulsing or (not self.powered and self.fail_mode == "safe")

    def _report(self):
        line = "RELAY open" if self.is_open() else "RELAY closed"
        self._io.write_line(line if self.powered else line + " power-lost")


class Clock:
    """UTC seconds: the host clock plus an offset the server (or the console) sets."""

    def __init__(self, path):
        self._path = path
        self.offset = 0
        try:
            with open(path) as f:
                self.offset = int(f.read().strip() or "0")
        except (OSError, ValueError):
            self.offset = 0

    def now(self):
        return int(time.time()) + self.offset

    def set(self, utc):
        self.offset = utc - int(time.time())
        tmp = self._path + ".new"
        with open(tmp, "w") as f:
            f.write("%d\n" % self.offset)
        os.rename(tmp, self._path)


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


class Board:
    """Everything the application needs from the hardware, built from ``cfg.hw``."""

    name = "unix"

    def __init__(self, cfg, workspace):
        hw = cfg.hw
        self.workspace = workspace
        path = hw.get("keypad")
        self.io = SocketIO(path) if path else LineIO()
        self.display = Display(self.io)
        self.keypad = Keypad(self.io)
        self.clock = Clock(workspace + "/clock_offset")
        self.relay = Relay(self.io) if cfg.role == "door" else None
        self.root = self._flash(hw)
        self.reader = self._reader(hw)
        self.poll_ms = hw.get("poll_ms", 0)

    def _flash(self, hw):
        kind = hw.get("flash", "dir")
        if kind == "lfs":
            from firmware import flashdev

            dev = flashdev.FileBlockDev(self.workspace + "/flash.img", 4096, hw.get("flash_blocks", 512))
            try:
                flashdev.remount(dev, "/flash")
            except OSError:  # a new (erased) image: format it, as a factory-fresh board
                flashdev.format_and_mount(dev, "/flash")
            return "/flash"
        root = self.workspace + "/flash"
        _mkdir(root)
        return root

    def _reader(self, hw):
        kind = hw.get("reader", "pn532")
        path = hw.get("reader_path", "")
        if kind == "pn532":
            from firmware.drivers.pn532 import PN532_UART
            from firmware.hw.unix_uart import UART

            return PN532_UART(UART(path, 115200))
        if kind == "mfrc522":
            from firmware.drivers.mfrc522 import MFRC522
            from firmware.hw.unix_spi import SPI, Pin

            spi = SPI(path)
            return MFRC522(spi, Pin(spi))
        raise ValueError("hw.reader must be 'pn532' or 'mfrc522', got %r" % kind)
