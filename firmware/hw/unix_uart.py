"""A serial port for the MicroPython unix port, with the part of ``machine.UART`` the
drivers use: ``write``, ``readinto``, ``read``, ``any``; and ``wait(ms)``, which blocks in
one poll until bytes come (the PN532 driver uses it when the UART has it).

On the ESP32 the board hands the PN532 driver a real ``machine.UART``; on the unix port
(tests, the terminal simulator) it hands this one, opened on a tty or a pty such as
``terminal_sim.pn532_emulator.PN532Emulator.device_path``.

Usage::

    from firmware.hw.unix_uart import UART
    uart = UART("/dev/pts/3", baudrate=115200, timeout=0)
    uart.write(b"\\x55\\x55\\x00\\x00\\x00")
    if uart.wait(30):
        n = uart.readinto(buf)

The device is put in raw mode with VMIN = VTIME = 0, so a read returns at once with what
the line has (0 or None: nothing).  ``timeout`` (ms) is how long ``read``/``readinto`` wait
for the requested bytes, as ``machine.UART``'s ``timeout`` argument; with 0 (return what is
there) ``readinto`` and ``write`` are the file's own methods, so a driver's call costs no
Python frame.  ``any()`` says 1 when bytes are waiting (the unix port has no FIONREAD to
count them).  Reads and writes do not allocate.
"""

import select
import termios
from time import ticks_diff, ticks_ms  # type: ignore[attr-defined]  # MicroPython's time

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_VTIME = const(5)  # c_cc indices on Linux (termios.h)
_VMIN = const(6)
_ISPEED = const(4)
_OSPEED = const(5)

_BAUD = {
    9600: termios.B9600,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
    460800: termios.B460800,
    921600: termios.B921600,
}


class UART:
    """A tty opened raw; a subset of ``machine.UART``."""

    def __init__(self, path, baudrate=115200, timeout=0):
        if baudrate not in _BAUD:
            raise ValueError("unsupported baud rate %d" % baudrate)
        self._f = open(path, "rb+")
        fd = self._f.fileno()
        termios.setraw(fd)  # type: ignore[attr-defined]  # the unix port's termios has it
        attr = termios.tcgetattr(fd)
        attr[_ISPEED] = _BAUD[baudrate]
        attr[_OSPEED] = _BAUD[baudrate]
        attr[6][_VMIN] = 0
        attr[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self.timeout = timeout
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self.write = self._f.write  # type: ignore[method-assign]  # returns the byte count
        if timeout <= 0:
            self.readinto = self._f.readinto  # type: ignore[method-assign,assignment]  # returns at once

    def wait(self, ms):
        """True once bytes can be read, after waiting at most ``ms`` milliseconds (one poll;
        no allocation); False if none came.  ``machine.UART`` has no such method."""
        for _ in self._poll.ipoll(ms):  # type: ignore[attr-defined]  # MicroPython: no allocation
            return True
        return False

    def any(self):
        """1 if bytes can be read without waiting, else 0."""
        return 1 if self.wait(0) else 0

    def readinto(self, buf, nbytes=None):
        """Read up to ``nbytes`` (default ``len(buf)``) into ``buf``, waiting up to ``timeout``
        ms for them; returns the count, None if nothing came."""
        want = len(buf) if nbytes is None else nbytes
        mv = memoryview(buf)
        got = 0
        start = ticks_ms()
        while got < want:
            n = self._f.readinto(mv[got:want])
            if n:
                got += n
                continue
            left = self.timeout - ticks_diff(ticks_ms(), start)
            if left <= 0 or not self.wait(left):
                break
        return got or None

    def read(self, nbytes=256):
        """Up to ``nbytes`` bytes (waiting ``timeout`` ms for them), or None."""
        buf = bytearray(nbytes)
        n = self.readinto(buf)
        return bytes(buf[:n]) if n else None

    def write(self, buf):
        """Write all of ``buf``; returns the byte count (replaced by the file's own write)."""
        return self._f.write(buf)

    def flush(self):
        self._f.flush()

    def deinit(self):
        self._f.close()
