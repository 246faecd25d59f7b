"""A PN532 on a pseudo terminal: the HSU (UART) frame protocol of the NXP PN532 User Manual
(UM0701-02, section 6.2), with the RF side mapped onto virtual MIFARE Classic cards.

The firmware driver (``firmware.drivers.pn532`` over ``firmware.hw.unix_uart``) and nfcpy
(``nfc.clf.pn532``) both talk to it through ``device_path`` exactly as to a chip on a serial
line.

Usage::

    field = Field()
    field.place(MifareClassic1K(bytes.fromhex("04a1b2c3")))
    with PN532Emulator(field) as emu:          # start()s the thread, stop()s on exit
        run_firmware(uart_path=emu.device_path)
    print(emu.log)                             # [("host", frame), ("pn532", frame), ...]

==========================  ================================================================
Host link                   normal and extended information frames, ACK, NACK (resend the
                            last response), ACK from the host aborts a waiting command;
                            frames with a bad LCS or DCS are ignored (no ACK: the host times
                            out and resends); a valid frame with an unknown command or a bad
                            parameter length gets ACK + the syntax error frame
                            ``00 00 FF 01 FF 7F 81 00`` (section 6.2.1.5).
Power                       starts asleep (power-on / after PowerDown): the byte that wakes
                            the chip and the one after it are lost while the oscillator
                            starts, which is why hosts send a long preamble (0x55 0x55 00..).
Commands                    Diagnose (line test echo), GetFirmwareVersion (32 01 06 07),
                            GetGeneralStatus, ReadRegister/WriteRegister (a register file),
                            SetSerialBaudRate, SetParameters, SAMConfiguration, PowerDown,
                            RFConfiguration (field on/off, MxRtyPassiveActivation),
                            InListPassiveTarget (106 kbps type A only), InDataExchange,
                            InSelect, InDeselect, InRelease.
Cards                       InListPassiveTarget wakes halted cards too (so a card left on the
                            reader is listed again); with two cards and MaxTg=1 it lists the
                            lowest UID.  InDataExchange maps MIFARE commands 60/61, 30, A0,
                            C0/C1/C2, B0 onto the card: status 0x14 for an authentication
                            failure and for a card NAK (the manual has no separate NAK code),
                            0x01 (time-out) when the card is gone.
==========================  ================================================================
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from types import TracebackType

from terminal_sim.mifare_card import (
    AccessError,
    AuthError,
    CardError,
    CardRemoved,
    Field,
    MifareClassic1K,
    ValueFormatError,
)

ACK = bytes.fromhex("0000ff00ff00")
NACK = bytes.fromhex("0000ffff0000")
ERROR_FRAME = bytes.fromhex("0000ff01ff7f8100")
FIRMWARE_VERSION = bytes((0x32, 0x01, 0x06, 0x07))  # IC, Ver, Rev, Support (UM0701-02 7.2.2)

STATUS_OK = 0x00
STATUS_TIMEOUT = 0x01
STATUS_INVALID_PARAM = 0x10
STATUS_MIFARE = 0x14
STATUS_BAD_CONTEXT = 0x27

_TFI_HOST = 0xD4
_TFI_CHIP = 0xD5
_WAKE_LOST_BYTES = 2
_POLL_S = 0.01


def frame(payload: bytes) -> bytes:
    """A normal (or, past 254 bytes, extended) information frame around TFI + data."""
    n = len(payload)
    dcs = (-sum(payload)) & 0xFF
    if n < 255:
        return bytes((0, 0, 0xFF, n, (-n) & 0xFF)) + payload + bytes((dcs, 0))
    hi, lo = n >> 8, n & 0xFF
    return bytes((0, 0, 0xFF, 0xFF, 0xFF, hi, lo, (-(hi + lo)) & 0xFF)) + payload + bytes((dcs, 0))


class PN532Emulator:
    """One PN532 chip in HSU mode, its host side a pty, its RF side a :class:`Field`."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self.log: list[tuple[str, bytes]] = []
        self.errors: list[str] = []  # what the chip silently dropped, for tests and debugging
        self.asleep = True
        self.sam_configured = False
        self.rf_on = False
        self.max_retries_passive = 0xFF
        self.registers: dict[int, int] = {0x6303: 0x80, 0x6339: 0x26}  # CIU_RxMode, CIU_FIFOData
        self.targets: list[MifareClassic1K] = []
        self.commands_seen: list[int] = []
        # Fault injection for tests: corrupt the DCS of the next response / ignore next frames.
        self.corrupt_next_response = False
        self.ignore_frames = 0
        self._rx = bytearray()
        self._drop = 0
        self._last_response: bytes | None = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.device_path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handlers = {
            0x00: self._diagnose,
            0x02: self._get_firmware_version,
            0x04: self._get_general_status,
            0x06: self._read_register,
            0x08: self._write_register,
            0x10: self._set_serial_baud_rate,
            0x12: self._set_parameters,
            0x14: self._sam_configuration,
            0x16: self._power_down,
            0x32: self._rf_configuration,
            0x40: self._in_data_exchange,
            0x44: self._in_deselect,
            0x4A: self._in_list_passive_target,
            0x52: self._in_release,
            0x54: self._in_select,
        }

    # -- thread --------------------------------------------------------------------------------

    def start(self) -> PN532Emulator:
        self._thread = threading.Thread(target=self._run, name="pn532-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PN532Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            kind, body = self._next_frame()
            if kind == "nack":
                if self._last_response is not None:
                    self._send(self._last_response)
            elif kind == "cmd":
                self._command(body)

    # -- host link -----------------------------------------------------------------------------

    def _fill(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for bytes from the host and append them to the input."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self._master, 4096)
        except OSError:
            time.sleep(timeout)
            return
        if self.asleep and data:
            self.asleep = False
            self._drop = _WAKE_LOST_BYTES
        if self._drop:
            self.errors.append(f"waking up: lost {data[: self._drop].hex()}")
            n = min(self._drop, len(data))
            data, self._drop = data[n:], self._drop - n
        self._rx += data

    def _next_frame(self) -> tuple[str, bytes]:
        """Parse one frame from the input: ("ack"|"nack"|"cmd", body), or ("", b"") for none yet."""
        while True:
            kind, body, used = self._parse()
            if used:
                del self._rx[:used]
            if kind:
                return kind, body
            if self._stop.is_set():
                return "", b""
            before = len(self._rx)
            self._fill(0.05)
            if len(self._rx) == before:
                return "", b""

    def _parse(self) -> tuple[str, bytes, int]:
        """(kind, body, bytes consumed); kind "" with consumed > 0 drops garbage or a bad frame."""
        rx = self._rx
        start = rx.find(b"\x00\xff")
        if start < 0:
            return "", b"", max(0, len(rx) - 1)
        p = start + 2
        if len(rx) < p + 2:
            return "", b"", start
        length, lcs = rx[p], rx[p + 1]
        if length == 0x00 and lcs == 0xFF:
            self.log.append(("host", bytes(ACK)))
            return "ack", b"", p + 2
        if length == 0xFF and lcs == 0x00:
            self.log.append(("host", bytes(NACK)))
            return "nack", b"", p + 2
        if length == 0xFF and lcs == 0xFF:
            if len(rx) < p + 5:
                return "", b"", start
            hi, lo, xlcs = rx[p + 2], rx[p + 3], rx[p + 4]
            if (hi + lo + xlcs) & 0xFF:
                self.errors.append("bad extended LCS")
                return "", b"", p
            length, p = (hi << 8) | lo, p + 5
        else:
            if (length + lcs) & 0xFF:
                self.errors.append(f"bad LCS: LEN 0x{length:02x} LCS 0x{lcs:02x}")
                return "", b"", p
            p += 2
        if len(rx) < p + length + 1:
            return "", b"", start
        body = bytes(rx[p : p + length])
        dcs = rx[p + length]
        end = p + length + 1
        if len(rx) > end and rx[end] == 0x00:
            end += 1  # postamble
        if (sum(body) + dcs) & 0xFF:
            self.errors.append(f"bad DCS in frame {bytes(rx[start:end]).hex()}")
            return "", b"", end
        self.log.append(("host", bytes(rx[max(0, start - 1) : end])))
        if self.ignore_frames:
            self.ignore_frames -= 1
            self.errors.append(f"ignored frame {body.hex()} on purpose")
            return "", b"", end
        return "cmd", body, end

    def _send(self, data: bytes) -> None:
        self.log.append(("pn532", bytes(data)))
        try:
            os.write(self._master, data)
        except OSError as e:
            self.errors.append(f"write failed: {e}")

    def _respond(self, code: int, data: bytes = b"") -> None:
        out = frame(bytes((_TFI_CHIP, code + 1)) + data)
        self._last_response = out
        if self.corrupt_next_response:
            self.corrupt_next_response = False
            bad = bytearray(out)
            bad[-2] ^= 0xFF
            out = bytes(bad)
        self._send(out)

    def _syntax_error(self) -> None:
        self._last_response = ERROR_FRAME
        self._send(ERROR_FRAME)

    def _command(self, body: bytes) -> None:
        if len(body) < 2 or body[0] != _TFI_HOST:
            self._send(ACK)
            self._syntax_error()
            return
        code, params = body[1], body[2:]
        self.commands_seen.append(code)
        self._send(ACK)
        handler = self._handlers.get(code)
        if handler is None:
            self._syntax_error()
            return
        try:
            handler(code, params)
        except IndexError:
            self._syntax_error()

    def _host_interrupts(self) -> bool:
        """True if the host sent anything (an ACK to abort, or a new command) while we wait."""
        if b"\x00\xff" not in self._rx:
            self._fill(_POLL_S)
        return b"\x00\xff" in self._rx or self._stop.is_set()

    # -- miscellaneous commands ------------------------------------------------------------------

    def _diagnose(self, code: int, p: bytes) -> None:
        if p[0] == 0x00:  # communication line test: echo
            self._respond(code, p)
        elif p[0] in (0x01, 0x02):  # ROM / RAM test: OK
            self._respond(code, b"\x00")
        else:
            self._syntax_error()

    def _get_firmware_version(self, code: int, p: bytes) -> None:
        self._respond(code, FIRMWARE_VERSION)

    def _get_general_status(self, code: int, p: bytes) -> None:
        out = bytearray((0x00, 0x01 if self.rf_on else 0x00, len(self.targets)))
        for i, _ in enumerate(self.targets):
            out += bytes((i + 1, 0x00, 0x00, 0x00))
        out.append(0x01)  # SAM status
        self._respond(code, bytes(out))

    def _read_register(self, code: int, p: bytes) -> None:
        if len(p) % 2 or not p:
            raise IndexError
        out = bytes(self.registers.get((p[i] << 8) | p[i + 1], 0) for i in range(0, len(p), 2))
        self._respond(code, out)

    def _write_register(self, code: int, p: bytes) -> None:
        if len(p) % 3 or not p:
            raise IndexError
        for i in range(0, len(p), 3):
            self.registers[(p[i] << 8) | p[i + 1]] = p[i + 2]
        self._respond(code)

    def _set_serial_baud_rate(self, code: int, p: bytes) -> None:
        if p[0] > 8:
            raise IndexError
        self._respond(code)  # the host ACKs; a pty has no baud rate to change

    def _set_parameters(self, code: int, p: bytes) -> None:
        self.registers[-1] = p[0]
        self._respond(code)

    def _sam_configuration(self, code: int, p: bytes) -> None:
        if not 1 <= p[0] <= 4:
            raise IndexError
        self.sam_configured = True
        self._respond(code)

    def _power_down(self, code: int, p: bytes) -> None:
        p[0]  # noqa: B018 - WakeUpEnable is required
        self._release_all()
        self._set_rf(False)
        self.asleep = True  # set before answering, so whoever sees the answer sees it asleep
        self._respond(code, b"\x00")

    def _rf_configuration(self, code: int, p: bytes) -> None:
        item = p[0]
        if item == 0x01:
            self._set_rf(bool(p[1] & 0x01))
        elif item == 0x05:
            self.max_retries_passive = p[3]
        elif item not in (0x02, 0x04, 0x0A, 0x0B, 0x0C, 0x0D):
            raise IndexError
        self._respond(code)

    def _set_rf(self, on: bool) -> None:
        if self.rf_on and not on:
            for card in self.field.cards:
                card.reset()  # no field, no power: the card forgets auth and HALT
            self.targets = []
        self.rf_on = on

    # -- initiator commands ----------------------------------------------------------------------

    def _in_list_passive_target(self, code: int, p: bytes) -> None:
        max_tg, brty, init_data = p[0], p[1], p[2:]
        if max_tg not in (1, 2):
            raise IndexError
        self._release_all()
        self._set_rf(True)
        tries = 0
        while True:
            cards = self.field.responding(wupa=True) if brty == 0 else []
            if init_data:
                uid = bytes(b for i, b in enumerate(init_data) if not (b == 0x88 and i in (0, 4)))
                cards = [c for c in cards if c.uid == uid]
            if cards:
                break
            tries += 1
            if self.max_retries_passive != 0xFF and tries > self.max_retries_passive:
                self._respond(code, b"\x00")
                return
            if self._host_interrupts():
                self.errors.append("InListPassiveTarget aborted by the host")
                return
        out = bytearray((min(max_tg, len(cards)),))
        for tg, card in enumerate(cards[:max_tg], start=1):
            card.select()
            self.targets.append(card)
            out += bytes((tg, card.atqa[1], card.atqa[0], card.sak, len(card.uid))) + card.uid
        self._respond(code, bytes(out))

    def _target(self, tg: int) -> MifareClassic1K | None:
        if 1 <= tg <= len(self.targets):
            return self.targets[tg - 1]
        return None

    def _in_data_exchange(self, code: int, p: bytes) -> None:
        card = self._target(p[0] & 0x3F)
        cmd = p[1:]
        if card is None:
            self._respond(code, bytes((STATUS_BAD_CONTEXT,)))
            return
        try:
            data = self._mifare(card, cmd)
        except AuthError:
            status = STATUS_MIFARE
        except (AccessError, ValueFormatError):
            status = STATUS_MIFARE
        except CardRemoved:
            status = STATUS_TIMEOUT
        except CardError:
            status = STATUS_TIMEOUT
        except ValueError:
            status = STATUS_INVALID_PARAM
        else:
            self._respond(code, bytes((STATUS_OK,)) + data)
            return
        self._respond(code, bytes((status,)))

    def _mifare(self, card: MifareClassic1K, cmd: bytes) -> bytes:
        """Run one MIFARE Classic command on the card; returns the data the card sends back."""
        if len(cmd) < 2:
            raise ValueError(f"MIFARE command too short: {cmd.hex()}")
        op, block = cmd[0], cmd[1]
        if op in (0x60, 0x61):
            if len(cmd) < 12:
                raise ValueError(f"auth needs key (6) and UID (4): {cmd.hex()}")
            card.authenticate(block, op, cmd[2:8], uid=cmd[8:12])
            return b""
        if op == 0x30:
            return card.read(block)
        if op == 0xA0:
            if len(cmd) != 18:
                raise ValueError(f"write needs 16 data bytes, got {len(cmd) - 2}")
            card.write(block, cmd[2:18])
            return b""
        if op in (0xC0, 0xC1):
            if len(cmd) != 6:
                raise ValueError(f"value operation needs a 4-byte operand: {cmd.hex()}")
            amount = int.from_bytes(cmd[2:6], "little")
            (card.decrement if op == 0xC0 else card.increment)(block, amount)
            return b""
        if op == 0xC2:
            card.restore(block)
            return b""
        if op == 0xB0:
            card.transfer(block)
            return b""
        raise CardError(f"unknown MIFARE command 0x{op:02x}: no answer")

    def _release(self, tg: int) -> int:
        if tg == 0:
            self._release_all()
            return STATUS_OK
        card = self._target(tg)
        if card is None:
            return STATUS_BAD_CONTEXT
        self._halt(card)
        self.targets[tg - 1:tg] = []
        return STATUS_OK

    def _release_all(self) -> None:
        for card in self.targets:
            self._halt(card)
        self.targets = []

    def _halt(self, card: MifareClassic1K) -> None:
        try:
            card.halt()
        except CardError:
            pass

    def _in_release(self, code: int, p: bytes) -> None:
        self._respond(code, bytes((self._release(p[0]),)))

    def _in_deselect(self, code: int, p: bytes) -> None:
        tg = p[0]
        cards = self.targets if tg == 0 else [c for c in (self._target(tg),) if c is not None]
        for card in cards:
            self._halt(card)
        self._respond(code, bytes((STATUS_OK if cards or tg == 0 else STATUS_BAD_CONTEXT,)))

    def _in_select(self, code: int, p: bytes) -> None:
        card = self._target(p[0])
        if card is None:
            self._respond(code, bytes((STATUS_BAD_CONTEXT,)))
        elif not card.answers_request(wupa=True):
            self._respond(code, bytes((STATUS_TIMEOUT,)))
        else:
            card.select()
            self._respond(code, bytes((STATUS_OK,)))
