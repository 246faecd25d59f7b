"""Run the terminal firmware under the MicroPython unix port against the simulated reader.

Starts the reader emulator (PN532 on a pty, or MFRC522 behind the SPI bridge socket) over a
:class:`~terminal_sim.mifare_card.Field`, writes the workspace's ``config.json`` (and
``secrets.json`` with fresh random keys if there is none), and starts
``micropython -X heapsize=<code + 64K> -m firmware.main <workspace>`` with the keypad on its
stdin and the display on its stdout.

Heap: the unix port loads the firmware's bytecode (.mpy) into the GC heap, about 100 KB on
this 64-bit port, where a production ESP32 runs it frozen or from ROMFS in flash. So the
default heap is measured: what the imported code takes (``firmware.main.code_heap``) plus
the 64 KB the firmware's data must fit in; running out of it fails as on the device.

:meth:`TerminalProcess.send` writes one keypad/service line and returns what the firmware
printed until it waited for the next line (``@ready``).

Usage::

    field = Field()
    with TerminalProcess(Path("/tmp/ws"), field=field) as term:
        term.send("amount 1250")           # ['DISPLAY 请刷卡 12.50元 | Tap card: 12.50']
        field.place(card)
        term.send("poll")                  # the firmware polls the reader and serves the card
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from terminal_sim.mifare_card import Field
from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd

READY = "@ready"
DATA_HEAP = 64 * 1024  # what the firmware's data (not its code) must fit in
_GC_USABLE = 64640 / 65536  # share of -X heapsize the GC can hand out (the rest is its tables)
DISPLAY = "DISPLAY "


class FirmwareError(Exception):
    """The firmware process died, or did not answer in time."""


def ensure_secrets(workspace: Path) -> dict[str, str]:
    """The workspace's secrets.json, created with random keys (hex) on first use."""
    path = workspace / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    doc = {"terminal_key": secrets.token_hex(32), "card_master": secrets.token_hex(16),
           "issuer_master": secrets.token_hex(16)}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    os.chmod(path, 0o600)
    return doc


def write_config(workspace: Path, reader: str, reader_path: str, terminal_id: int = 1001,
                 merchant_id: int = 7, journal_max: int = 30000, flash: str = "dir", poll_ms: int = 0,
                 role: str = "pos", door_fail_mode: str = "safe",
                 server_url: str = "http://127.0.0.1:8080") -> None:
    """Write the workspace's config.json for the unix board (``door_fail_mode``: role door only)."""
    doc: dict[str, Any] = {
        "terminal_id": terminal_id, "merchant_id": merchant_id, "role": role,
        "server_url": server_url, "board": "unix", "journal_max_records": journal_max,
        "hw": {"reader": reader, "reader_path": reader_path, "flash": flash, "poll_ms": poll_ms}}
    if role == "door":
        doc["door_fail_mode"] = door_fail_mode
    (workspace / "config.json").write_text(json.dumps(doc, indent=1) + "\n")


def measure_code_heap(workspace: Path) -> int:
    """Heap bytes the firmware's code takes on this port with this workspace's configuration."""
    script = f"from firmware import main; print(main.code_heap({str(workspace)!r}))"
    out = subprocess.run([micropython_binary(), "-X", "heapsize=2M", "-c", script], capture_output=True,
                         text=True, env=micropython_env(), cwd=mpy_cwd(), timeout=60)
    try:
        return int(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise FirmwareError(f"could not measure the firmware's code heap: {out.stdout}{out.stderr}") from None


def display_lines(lines: list[str]) -> list[str]:
    """The screens among firmware output lines (without the ``DISPLAY`` prefix)."""
    return [line[len(DISPLAY):] for line in lines if line.startswith(DISPLAY)]


class TerminalProcess:
    """The firmware of one POS terminal in a MicroPython subprocess, with its reader emulator."""

    def __init__(self, workspace: Path, field: Field | None = None, reader: str = "pn532",
                 heapsize: str = "auto", timeout: float = 20.0, **config: Any) -> None:
        self.workspace = Path(workspace)
        self.field = field if field is not None else Field()
        self.reader = reader
        self.heapsize = heapsize if heapsize != "auto" else ""
        self.code_heap = 0
        self.timeout = timeout
        self.config = config
        self.emulator: Any = None
        self.chip: Any = None
        self._bridge: Any = None
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        self.boot_lines: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def _start_reader(self) -> str:
        if self.reader == "pn532":
            from terminal_sim.pn532_emulator import PN532Emulator

            self.emulator = PN532Emulator(self.field).start()
            return str(self.emulator.device_path)
        if self.reader == "mfrc522":
            from terminal_sim.mfrc522_emulator import MFRC522Emulator
            from terminal_sim.spi_bridge import SPIBridgeServer

            self.chip = MFRC522Emulator(self.field)
            path = str(self.workspace / "mfrc522.sock")
            self._bridge = SPIBridgeServer(self.chip, path).start()
            return path
        raise ValueError(f"reader must be 'pn532' or 'mfrc522', got {self.reader!r}")

    def start(self) -> list[str]:
        """Start emulator and firmware; returns the boot output (up to the first ``@ready``)."""
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._lines = queue.Queue()
        ensure_secrets(self.workspace)
        write_config(self.workspace, self.reader, self._start_reader(), **self.config)
        if not self.heapsize:
            self.code_heap = measure_code_heap(self.workspace)
            kib = -(-int((self.code_heap + DATA_HEAP * _GC_USABLE) / _GC_USABLE) // 1024)
            self.heapsize = f"{kib}K"
        self._stderr = open(self.workspace / "firmware.stderr", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [micropython_binary(), "-X", f"heapsize={self.heapsize}", "-m", "firmware.main", str(self.workspace)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8",
            env=micropython_env(), cwd=mpy_cwd(), bufsize=1)
        self._pump_thread = threading.Thread(target=self._pump, name="firmware-stdout", daemon=True)
        self._pump_thread.start()
        self.boot_lines = self._until_ready()
        return self.boot_lines

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def stop(self) -> None:
        """Ask the firmware to quit, then stop it and the emulator."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    assert self.proc.stdin is not None
                    self.proc.stdin.write("quit\n")
                    self.proc.stdin.close()
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait()
            self._pump_thread.join(timeout=5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
            self._stderr.close()
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    def __enter__(self) -> TerminalProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- talking -------------------------------------------------------------------------------

    def stderr_tail(self, n: int = 2000) -> str:
        try:
            return (self.workspace / "firmware.stderr").read_text()[-n:]
        except OSError:
            return ""

    def _until_ready(self) -> list[str]:
        out: list[str] = []
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise FirmwareError(f"firmware did not answer within {self.timeout} s; output so far: {out}\n"
                                    f"stderr: {self.stderr_tail()}") from None
            if line is None:
                raise FirmwareError(f"firmware exited (status {self.proc.poll() if self.proc else '?'}); "
                                    f"output: {out}\nstderr: {self.stderr_tail()}")
            if line == READY:
                return out
            out.append(line)
            self.transcript.append(line)

    def send(self, line: str) -> list[str]:
        """Send one keypad/service line; returns the firmware's output lines for it."""
        if self.proc is None or self.proc.stdin is None:
            raise FirmwareError("firmware is not running: start() it first")
        self.transcript.append("> " + line)
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except OSError as e:
            raise FirmwareError(f"firmware stdin closed ({e}); stderr: {self.stderr_tail()}") from e
        return self._until_ready()

    def service(self, line: str) -> list[str]:
        """A service line that must succeed (``@ok``); raises FirmwareError with its ``@error``."""
        out = self.send(line)
        if not any(x.startswith("@ok") for x in out):
            raise FirmwareError(f"service line {line!r} failed: {out}")
        return out

    def journal_hex(self) -> list[str]:
        """The unacknowledged journal records, as hex, in sequence order."""
        return [x[len("@rec "):] for x in self.service("journal") if x.startswith("@rec ")]

    def stats(self) -> dict[str, Any]:
        for x in self.send("stats"):
            if x.startswith("@stats "):
                return dict(json.loads(x[len("@stats "):]))
        raise FirmwareError("firmware printed no @stats line")
