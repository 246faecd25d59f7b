"""SPI over a unix domain socket, between the MicroPython unix port and the MFRC522 emulator.

On the ESP32 the driver gets a ``machine.SPI`` and a chip-select ``machine.Pin``; on the unix
port it gets ``firmware.hw.unix_spi.SPI``/``Pin``, which carry every NSS edge and every MOSI
byte here, and the emulator answers the MISO bytes the chip would clock out. Nothing is
summarised on the way: the emulator sees the real SPI byte stream.

Wire format (one stream per connection, each message one byte of type first):

=================================  ===========================================
``b"L"``                           NSS low (select); no answer
``b"H"``                           NSS high (deselect); no answer
``b"W" len:u16be mosi[len]``       clock bytes out, MISO discarded; no answer
``b"X" len:u16be mosi[len]``       clock bytes out; answer: ``miso[len]``
``b"R" len:u16be fill:u8``         clock ``len`` copies of ``fill``; answer ``miso[len]``
=================================  ===========================================

Usage::

    server = SPIBridgeServer(MFRC522Emulator(field), "/tmp/mfrc522.sock")
    server.start()                       # serves in a daemon thread
    with SPIBridgeClient("/tmp/mfrc522.sock") as spi:
        spi.read_register(0x37)          # 0x92
    server.close()
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from types import TracebackType

from terminal_sim.mfrc522_emulator import MFRC522Emulator

_HEADER = struct.Struct(">cH")


class BridgeError(Exception):
    """The bridge peer sent something that is not a bridge message, or hung up mid-message."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise BridgeError(f"bridge closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


class SPIBridgeServer:
    """Accepts bridge connections on a unix socket path and feeds them to one emulator."""

    def __init__(self, chip: MFRC522Emulator, path: str) -> None:
        self.chip = chip
        self.path = path
        self.errors: list[str] = []
        if os.path.exists(path):
            os.unlink(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(2)
        self._thread = threading.Thread(target=self._serve, name="spi-bridge", daemon=True)
        self._closed = False

    def start(self) -> SPIBridgeServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self._closed:
                conn.close()
                return
            with conn:
                try:
                    self._handle(conn)
                except (BridgeError, OSError) as e:
                    if not self._closed:
                        self.errors.append(str(e))
                finally:
                    self.chip.spi_deselect()

    def _handle(self, conn: socket.socket) -> None:
        chip = self.chip
        while True:
            kind = conn.recv(1)
            if not kind:
                return
            if kind == b"L":
                chip.spi_select()
            elif kind == b"H":
                chip.spi_deselect()
            elif kind in (b"W", b"X", b"R"):
                (n,) = struct.unpack(">H", _recv_exact(conn, 2))
                mosi = _recv_exact(conn, 1) * n if kind == b"R" else _recv_exact(conn, n)
                miso = chip.spi_exchange(mosi)
                if kind != b"W":
                    conn.sendall(miso)
            else:
                raise BridgeError(f"unknown bridge message type {kind!r} (expected L, H, W, X or R)")

    def close(self) -> None:
        """Stop serving: wakes the accepting thread with one last connection, then joins it."""
        self._closed = True
        if self._thread.is_alive():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
                    wake.connect(self.path)
            except OSError:
                pass
            self._thread.join(timeout=5)
        self._sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self) -> SPIBridgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class SPIBridgeClient:
    """Host-side SPI master on the bridge, with MFRC522 register helpers for tests and tools."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)

    def select(self) -> None:
        self._sock.sendall(b"L")

    def deselect(self) -> None:
        self._sock.sendall(b"H")

    def write(self, mosi: bytes) -> None:
        self._sock.sendall(_HEADER.pack(b"W", len(mosi)) + bytes(mosi))

    def exchange(self, mosi: bytes) -> bytes:
        self._sock.sendall(_HEADER.pack(b"X", len(mosi)) + bytes(mosi))
        return _recv_exact(self._sock, len(mosi))

    def transaction(self, mosi: bytes) -> bytes:
        """One NSS-framed transfer: select, clock ``mosi``, deselect; returns MISO."""
        self.select()
        try:
            return self.exchange(mosi)
        finally:
            self.deselect()

    def read_register(self, addr: int) -> int:
        return self.transaction(bytes((0x80 | ((addr << 1) & 0x7E), 0)))[1]

    def read_registers(self, addr: int, n: int) -> bytes:
        """``n`` reads of one register in one stream (the FIFO read pattern)."""
        a = 0x80 | ((addr << 1) & 0x7E)
        return self.transaction(bytes([a] * n + [0]))[1:]

    def write_register(self, addr: int, *values: int) -> None:
        self.select()
        self.write(bytes(((addr << 1) & 0x7E,) + values))
        self.deselect()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SPIBridgeClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
