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
    if uart.any():
        n = uart.readinto(buf)

The device is put in raw mode with VMIN = VTIME = 0, so a read returns at once with what
the line has; bytes are pulled into a small buffer so ``any()`` can count them (the unix port
has no FIONREAD).  Reads do not allocate.  ``timeout`` (ms) is how long ``read``/``readinto`` wait for the requested
bytes, as ``machine.UART``'s ``timeout`` argument; 0 means return what is there.
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
_RING = const(256)

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
        self._ring = bytearray(_RING)
        self._head = 0  # next byte to hand out
        self._tail = 0  # end of buffered bytes

    def _pull(self, wait_ms):
        """If the ring is empty, fill it with what the line has, waiting up to ``wait_ms``."""
        if self._head != self._tail:
            return
        self._head = self._tail = 0
        if wait_ms > 0:
            self.wait(wait_ms)
        n = self._f.readinto(self._ring)  # VMIN = VTIME = 0: returns at once
        if n:
            self._tail = n

    def wait(self, ms):
        """True once bytes can be read, after waiting at most ``ms`` milliseconds (one poll;
        no allocation); False if none came.  ``machine.UART`` has no such method."""
        if self._head != self._tail:
            return True
        for _ in self._poll.ipoll(ms):  # type: ignore[attr-defined]  # MicroPython: no allocation
            return True
        return False

    def any(self):
        """Number of bytes that can be read without waiting (at least 1 if the line has any)."""
        self._pull(0)
        return self._tail - self._head

    def readinto(self, buf, nbytes=None):
        """Read up to ``nbytes`` (default ``len(buf)``) into ``buf``; None if nothing came in time."""
        if self._head == self._tail and self.timeout <= 0:  # straight from the line: one read
            f = self._f
            n = f.readinto(buf) if nbytes is None else f.readinto(buf, nbytes)  # type: ignore[call-arg]
            return n or None
        return self._read_buffered(buf, len(buf) if nbytes is None else nbytes)

    def _read_buffered(self, buf, want):
        got = 0
        start = ticks_ms()
        while got < want:
            if self._head == self._tail:
                left = self.timeout - ticks_diff(ticks_ms(), start)
                self._pull(left)
                if self._head == self._tail:
                    if left <= 0:
                        break
                    continue
            ring = self._ring
            h = self._head
            n = min(want - got, self._tail - h)
            for i in range(n):
                buf[got + i] = ring[h + i]
            self._head = h + n
            got += n
        return got if got else None

    def read(self, nbytes=_RING):
        """Up to ``nbytes`` bytes (waiting ``timeout`` ms for them), or None."""
        buf = bytearray(nbytes)
        n = self.readinto(buf)
        return bytes(buf[:n]) if n else None

    def write(self, buf):
        """Write all of ``buf``; returns the byte count."""
        n = self._f.write(buf)
        return len(buf) if n is None else n

    def flush(self):
        self._f.flush()

    def deinit(self):
        self._f.close()
