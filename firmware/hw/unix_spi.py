"""SPI bus and chip-select pin for the MicroPython unix port, carried to an emulator.

Stands in for ``machine.SPI`` + ``machine.Pin`` so a chip driver runs unchanged on the unix
port: every NSS edge and MOSI byte goes over a unix domain socket to
``terminal_sim.spi_bridge.SPIBridgeServer``, which feeds the chip emulator and returns the
MISO bytes (the wire format is documented there). ``write`` needs no answer, so it costs no
round trip; ``write_readinto``/``readinto``/``read`` wait for MISO.

Usage::

    from firmware.hw.unix_spi import SPI, Pin
    spi = SPI("/tmp/mfrc522.sock")
    cs = Pin(spi)                    # idles high
    rdr = MFRC522(spi, cs)

Only what the drivers use is provided: ``SPI.write``, ``write_readinto``, ``readinto``,
``read``, ``deinit``; ``Pin.value``, ``on``, ``off``, ``__call__``.
"""

import socket
import struct

_MSG_LOW = b"L"
_MSG_HIGH = b"H"


class SPI:
    """An SPI master whose slave is at the other end of a unix socket."""

    def __init__(self, path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # struct sockaddr_un: sa_family (host order, 16 bits) then the NUL-terminated path.
        self._sock.connect(struct.pack("<H", socket.AF_UNIX) + path.encode() + b"\x00")
        self._hdr = bytearray(4)
        self._hdr3 = memoryview(self._hdr)[:3]

    def _send(self, buf):
        self._sock.sendall(buf)

    def _header(self, kind, n):
        self._hdr[0] = kind
        struct.pack_into(">H", self._hdr, 1, n)

    def _recv_into(self, buf):
        n = len(buf)
        got = self._sock.readinto(buf) or 0  # type: ignore[attr-defined]  # MicroPython sockets are streams
        if got == n:
            return
        mv = memoryview(buf)
        while got < n:
            r = self._sock.readinto(mv[got:])  # type: ignore[attr-defined]  # MicroPython sockets are streams
            if not r:
                raise OSError("SPI bridge closed by the emulator after %d of %d bytes" % (got, n))
            got += r

    def _cs(self, level):
        self._send(_MSG_HIGH if level else _MSG_LOW)

    def write(self, buf):
        """Clock ``buf`` out; MISO is discarded."""
        self._header(0x57, len(buf))  # "W"
        self._send(self._hdr3)
        self._send(buf)

    def write_readinto(self, write_buf, read_buf):
        """Clock ``write_buf`` out and the same number of MISO bytes into ``read_buf``."""
        n = len(write_buf)
        if len(read_buf) != n:
            raise ValueError("write_readinto needs equal lengths, got %d and %d" % (n, len(read_buf)))
        self._header(0x58, n)  # "X"
        self._send(self._hdr3)
        self._send(write_buf)
        self._recv_into(read_buf)

    def readinto(self, buf, write=0x00):
        """Clock ``len(buf)`` copies of ``write`` out and MISO into ``buf``."""
        self._header(0x52, len(buf))  # "R"
        self._hdr[3] = write
        self._send(self._hdr)
        self._recv_into(buf)

    def read(self, nbytes, write=0x00):
        buf = bytearray(nbytes)
        self.readinto(buf, write)
        return buf

    def deinit(self):
        self._sock.close()


class Pin:
    """Chip select (NSS) on the bridge: ``value(0)`` selects the chip, ``value(1)`` releases it."""

    def __init__(self, spi, value=1):
        self._spi = spi
        self._value = 1
        self.value(value)

    def value(self, v=None):
        if v is None:
            return self._value
        v = 1 if v else 0
        if v != self._value:
            self._spi._cs(v)
            self._value = v
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)
