"""Register-level model of the NXP MFRC522 reader IC, fed by the real SPI byte stream.

The firmware driver (``firmware/drivers/mfrc522.py``) talks to this model through
:mod:`terminal_sim.spi_bridge` exactly as it talks to the chip: SPI address bytes
(datasheet 8.1.2), register reads and writes, the 64-byte FIFO, commands written to
CommandReg. Frames the model transmits go to the cards through :class:`~terminal_sim.mfrc522_rf.Air`.

Usage::

    field = Field(); field.place(MifareClassic1K(bytes.fromhex("04a1b2c3")))
    chip = MFRC522Emulator(field)
    chip.spi_select(); chip.spi_exchange(bytes((0x80 | (0x37 << 1), 0))); chip.spi_deselect()
    # -> b"\\x00\\x92": VersionReg, chip version 2.0

Modelled (datasheet section numbers of MFRC522 rev. 3.9):

===========================  =================================================================
SPI (8.1.2)                  address byte ``(addr << 1) & 0x7E``, MSB 1 = read; read streams
                             (each MOSI byte the next address, 0x00 ends), write streams (all
                             data bytes to one register, e.g. the FIFO)
registers (9.3)              reset values, read-only/write-only bits, Set1/Set2 IRQ registers
FIFO (8.3)                   64 bytes, FIFOLevelReg, FlushBuffer, BufferOvfl, Hi/LoAlert
commands (10.3)              Idle, Mem, GenerateRandomID, CalcCRC, Transmit, NoCmdChange,
                             Receive, Transceive (StartSend), MFAuthent, SoftReset
CRC coprocessor (10.3.1.4)   real CRC_A with the ModeReg CRCPreset (0000/6363/A671/FFFF)
receiver                     RxAlign, RxLastBits, CollReg (CollPos incl. RxAlign, 0 = bit 32,
                             ValuesAfterColl), ErrorReg CollErr/ProtocolErr/BufferOvfl
timer (8.5)                  TAuto: silence after a transmission sets TimerIRq at once (the
                             emulator does not wait the programmed period in real time);
                             TStartNow likewise expires at once
antenna                      TxControlReg Tx1RFEn/Tx2RFEn: with both off no card answers and
                             the cards lose power
MFAuthent (10.3.1.9)         12 FIFO bytes (command, block, key, 4 UID bytes), sets
                             Status2Reg MFCrypto1On; silence (TimerIRq) on a wrong key
===========================  =================================================================

Not modelled: Crypto1 itself (emulator and card are both simulated, frames travel in clear and
MFCrypto1On only reflects the authentication state — see :mod:`terminal_sim.mfrc522_rf`),
parity errors (the air never corrupts bits), hardware CRC during transceive (TxModeReg
TxCRCEn / RxModeReg RxCRCEn) and MSBFirst: setting them is recorded in :attr:`MFRC522Emulator.notes`.
Protocol slips by the host (a read stream not ended by 0x00, bytes with CS high, FIFO reads
when empty) are recorded in :attr:`MFRC522Emulator.violations` for tests to assert on.
"""

from __future__ import annotations

import os
import threading

from terminal_sim.mfrc522_rf import Air, crc_a, from_bits
from terminal_sim.mifare_card import Field

# Register addresses (datasheet 9.2 "Register overview") used by the model.
COMMAND, COM_IEN, DIV_IEN, COM_IRQ, DIV_IRQ, ERROR = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
STATUS1, STATUS2, FIFO_DATA, FIFO_LEVEL, WATER_LEVEL = 0x07, 0x08, 0x09, 0x0A, 0x0B
CONTROL, BIT_FRAMING, COLL, MODE, TX_MODE, RX_MODE, TX_CONTROL = 0x0C, 0x0D, 0x0E, 0x11, 0x12, 0x13, 0x14
CRC_RESULT_H, CRC_RESULT_L, T_MODE, T_PRESCALER, T_RELOAD_H, T_RELOAD_L = 0x21, 0x22, 0x2A, 0x2B, 0x2C, 0x2D
T_COUNTER_H, T_COUNTER_L, VERSION = 0x2E, 0x2F, 0x37

# Commands (10.3, table 149).
CMD_IDLE, CMD_MEM, CMD_RANDOM_ID, CMD_CALC_CRC, CMD_TRANSMIT = 0x0, 0x1, 0x2, 0x3, 0x4
CMD_NO_CMD_CHANGE, CMD_RECEIVE, CMD_TRANSCEIVE, CMD_MF_AUTHENT, CMD_SOFT_RESET = 0x7, 0x8, 0xC, 0xE, 0xF

# ComIrqReg / DivIrqReg / ErrorReg / Status bits (9.3.1).
TX_IRQ, RX_IRQ, IDLE_IRQ, HI_ALERT_IRQ, LO_ALERT_IRQ, ERR_IRQ, TIMER_IRQ = 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
CRC_IRQ = 0x04
WR_ERR, BUFFER_OVFL, COLL_ERR, CRC_ERR, PARITY_ERR, PROTOCOL_ERR = 0x80, 0x10, 0x08, 0x04, 0x02, 0x01
MF_CRYPTO1_ON = 0x08
FIFO_SIZE = 64

# Reset values (9.3, one table per register); registers not listed reset to 0x00.
_RESET = {
    COMMAND: 0x20, COM_IEN: 0x80, COM_IRQ: 0x14, WATER_LEVEL: 0x08, CONTROL: 0x10, COLL: 0xA0,
    MODE: 0x3F, TX_CONTROL: 0x80, 0x16: 0x10, 0x17: 0x84, 0x18: 0x84, 0x19: 0x4D, 0x1C: 0x62,
    0x1F: 0xEB, CRC_RESULT_H: 0xFF, CRC_RESULT_L: 0xFF, 0x24: 0x26, 0x26: 0x48, 0x27: 0x88,
    0x28: 0x20, 0x29: 0x20, 0x33: 0x80, 0x36: 0x40,
}  # fmt: skip
_READ_ONLY = {ERROR, STATUS1, CRC_RESULT_H, CRC_RESULT_L, T_COUNTER_H, T_COUNTER_L, VERSION}
_CRC_PRESETS = (0x0000, 0x6363, 0xA671, 0xFFFF)


class MFRC522Emulator:
    """One MFRC522: its register file, FIFO and command engine, with the cards of ``field`` on air."""

    def __init__(self, field: Field, version: int = 0x92) -> None:
        self.air = Air(field)
        self.version = version
        self.lock = threading.RLock()  # the bridge thread and test code share the model
        self.notes: list[str] = []
        self.violations: list[str] = []
        self.spi_transactions = 0
        self._internal = bytearray(25)  # the Mem command's buffer survives SoftReset (10.3.1.2)
        self._selected = False
        self._spi_mode: str | None = None
        self._spi_addr = 0
        self._reset()

    # -- reset ------------------------------------------------------------------------------

    def _reset(self) -> None:
        self.regs = bytearray(64)
        for addr, value in _RESET.items():
            self.regs[addr] = value
        self.regs[VERSION] = self.version
        self.fifo = bytearray()
        self._crc: int | None = None  # running CRC while CalcCRC is active
        self.air.power_off()

    @property
    def command(self) -> int:
        return self.regs[COMMAND] & 0x0F

    @property
    def antenna_on(self) -> bool:
        return bool(self.regs[TX_CONTROL] & 0x03)

    # -- SPI byte stream (8.1.2) --------------------------------------------------------------

    def spi_select(self) -> None:
        """NSS low: the next byte is an address byte."""
        with self.lock:
            self._selected = True
            self._spi_mode = None
            self.spi_transactions += 1

    def spi_deselect(self) -> None:
        """NSS high: ends the read or write stream."""
        with self.lock:
            if self._spi_mode == "read":
                self.violations.append(f"read stream at 0x{self._spi_addr:02x} not ended by a 0x00 byte")
            self._selected = False
            self._spi_mode = None

    def spi_exchange(self, mosi: bytes) -> bytes:
        """Clock ``mosi`` in; return the MISO bytes clocked out at the same time."""
        with self.lock:
            if not self._selected:
                self.violations.append(f"{len(mosi)} SPI bytes clocked with NSS high")
                return bytes(len(mosi))
            return bytes(self._spi_byte(b) for b in mosi)

    def _spi_byte(self, b: int) -> int:
        if self._spi_mode is None:
            if b & 0x01:
                self.violations.append(f"address byte 0x{b:02x} has its LSB set (must be 0)")
            self._spi_addr = (b >> 1) & 0x3F
            self._spi_mode = "read" if b & 0x80 else "write"
            return 0x00
        if self._spi_mode == "write":
            self.write_register(self._spi_addr, b)
            return 0x00
        if self._spi_mode == "done":
            self.violations.append(f"byte 0x{b:02x} after the read stream ended")
            return 0x00
        miso = self.read_register(self._spi_addr)
        if b & 0x80:
            self._spi_addr = (b >> 1) & 0x3F
        else:
            self._spi_mode = "done"
            if b:
                self.violations.append(f"read stream ended by 0x{b:02x}, expected 0x00")
        return miso

    # -- registers (9.3) ----------------------------------------------------------------------

    def read_register(self, addr: int) -> int:
        with self.lock:
            if addr == FIFO_DATA:
                if not self.fifo:
                    self.violations.append("FIFODataReg read with the FIFO empty")
                    return 0x00
                return self.fifo.pop(0)
            if addr == FIFO_LEVEL:
                return len(self.fifo)
            if addr == STATUS1:
                return self._status1()
            if addr == COM_IRQ:
                self._update_err_irq()
            return self.regs[addr]

    def _status1(self) -> int:
        water = self.regs[WATER_LEVEL] & 0x3F
        value = 0x20 if self._crc is None or self.regs[DIV_IRQ] & CRC_IRQ else 0x00  # CRCReady
        if self.regs[COM_IRQ] & self.regs[COM_IEN] & 0x7F:
            value |= 0x10  # IRq
        if FIFO_SIZE - len(self.fifo) <= water:
            value |= 0x02  # HiAlert
        if len(self.fifo) <= water:
            value |= 0x01  # LoAlert
        return value

    def _update_err_irq(self) -> None:
        if self.regs[ERROR] & (BUFFER_OVFL | COLL_ERR | CRC_ERR | PARITY_ERR | PROTOCOL_ERR | WR_ERR):
            self.regs[COM_IRQ] |= ERR_IRQ

    def write_register(self, addr: int, value: int) -> None:
        with self.lock:
            value &= 0xFF
            if addr in _READ_ONLY:
                self.violations.append(f"write 0x{value:02x} to read-only register 0x{addr:02x}")
            elif addr == COMMAND:
                self._write_command(value)
            elif addr in (COM_IRQ, DIV_IRQ):
                mask = value & 0x7F
                self.regs[addr] = (self.regs[addr] | mask) if value & 0x80 else (self.regs[addr] & ~mask)
            elif addr == STATUS2:
                keep = self.regs[STATUS2] & (0x07 | (value & MF_CRYPTO1_ON))  # MFCrypto1On: clear only
                self.regs[STATUS2] = (value & 0xC0) | keep
            elif addr == FIFO_DATA:
                self._fifo_push(value)
            elif addr == FIFO_LEVEL:
                if value & 0x80:
                    self.fifo.clear()
                    self.regs[ERROR] &= ~BUFFER_OVFL & 0xFF
            elif addr == CONTROL:
                if value & 0x40 and not value & 0x80:
                    self.regs[COM_IRQ] |= TIMER_IRQ  # TStartNow: the timer runs out at once
            elif addr == COLL:
                self.regs[COLL] = (self.regs[COLL] & 0x7F) | (value & 0x80)
            else:
                self.regs[addr] = value
                if addr == BIT_FRAMING and value & 0x80 and self.command == CMD_TRANSCEIVE:
                    self._transceive()
                elif addr == TX_CONTROL and not value & 0x03:
                    self.air.power_off()
                elif addr in (TX_MODE, RX_MODE) and value & 0x80:
                    which = "Tx" if addr == TX_MODE else "Rx"
                    self.notes.append(f"CRC in hardware ({which}CRCEn) is not modelled")
                elif addr == MODE and value & 0x80:
                    self.notes.append("ModeReg MSBFirst is not modelled")

    def _fifo_push(self, value: int) -> None:
        if self.command == CMD_MF_AUTHENT:
            self.regs[ERROR] |= WR_ERR
        if self._crc is not None:
            self._crc_feed(bytes((value,)))
            return
        if len(self.fifo) >= FIFO_SIZE:
            self.regs[ERROR] |= BUFFER_OVFL
            return
        self.fifo.append(value)

    # -- commands (10.3) ---------------------------------------------------------------------

    def _write_command(self, value: int) -> None:
        cmd = value & 0x0F
        if cmd == CMD_NO_CMD_CHANGE:
            self.regs[COMMAND] = (value & 0x30) | self.command
            return
        self.regs[COMMAND] = (value & 0x30) | cmd
        self._crc = None
        if cmd == CMD_IDLE or cmd == CMD_RECEIVE:
            return  # Receive: nothing arrives unless a card was asked something
        if cmd == CMD_SOFT_RESET:
            self._reset()
            self.regs[COMMAND] = 0x20  # RcvOff set, PowerDown already clear: wake-up is instant here
            return
        if cmd == CMD_CALC_CRC:
            self._crc = _CRC_PRESETS[self.regs[MODE] & 0x03]
            self.regs[DIV_IRQ] &= ~CRC_IRQ & 0xFF
            data, self.fifo = bytes(self.fifo), bytearray()
            self._crc_feed(data)
            return
        if cmd == CMD_TRANSCEIVE:
            if self.regs[BIT_FRAMING] & 0x80:
                self._transceive()
            return
        if cmd == CMD_MEM:
            if self.fifo:
                self._internal[:] = (bytes(self.fifo[:25]) + bytes(25))[:25]
                del self.fifo[:25]
            else:
                self.fifo.extend(self._internal)
        elif cmd == CMD_RANDOM_ID:
            self._internal[:10] = os.urandom(10)
        elif cmd == CMD_TRANSMIT:
            data, self.fifo = bytes(self.fifo), bytearray()
            if self.antenna_on:
                self.air.exchange(data, self.regs[BIT_FRAMING] & 0x07, self._crypto_on())
            self.regs[COM_IRQ] |= TX_IRQ
        elif cmd == CMD_MF_AUTHENT:
            self._mf_authent()
            return
        # Mem, GenerateRandomID, Transmit and unknown codes end by themselves.
        self._finish()

    def _finish(self) -> None:
        self.regs[COMMAND] &= 0xF0
        self.regs[COM_IRQ] |= IDLE_IRQ

    def _crc_feed(self, data: bytes) -> None:
        assert self._crc is not None
        self._crc = crc_a(data, self._crc)
        self.regs[CRC_RESULT_H] = self._crc >> 8
        self.regs[CRC_RESULT_L] = self._crc & 0xFF
        self.regs[DIV_IRQ] |= CRC_IRQ

    def _crypto_on(self) -> bool:
        return bool(self.regs[STATUS2] & MF_CRYPTO1_ON)

    def _timer_expires(self) -> None:
        if self.regs[T_MODE] & 0x80:  # TAuto: started at the end of transmission
            self.regs[COM_IRQ] |= TIMER_IRQ

    def _transceive(self) -> None:
        framing = self.regs[BIT_FRAMING]
        data, self.fifo = bytes(self.fifo), bytearray()
        self.regs[ERROR] &= ~(COLL_ERR | CRC_ERR | PARITY_ERR | PROTOCOL_ERR) & 0xFF
        self.regs[COLL] = (self.regs[COLL] & 0x80) | 0x20  # CollPosNotValid until a collision
        self.regs[COM_IRQ] |= TX_IRQ
        reply = self.air.exchange(data, framing & 0x07, self._crypto_on()) if self.antenna_on else None
        if reply is None:
            self._timer_expires()
            return
        self._receive(reply.bits, reply.collision, (framing >> 4) & 0x07)

    def _receive(self, bits: list[int], collision: int | None, rx_align: int) -> None:
        if collision is not None:
            if not self.regs[COLL] & 0x80:  # ValuesAfterColl = 0: bits after the collision cleared
                bits = bits[: collision + 1] + [0] * (len(bits) - collision - 1)
            pos = rx_align + collision + 1  # CollPos counts RxAlign in, 1-based; 32 reads as 0
            self.regs[COLL] = (self.regs[COLL] & 0x80) | ((pos & 0x1F) if pos <= 32 else 0x20)
            self.regs[ERROR] |= COLL_ERR
        stored = from_bits([0] * rx_align + bits)
        for b in stored:
            self._fifo_push(b)
        self.regs[CONTROL] = (self.regs[CONTROL] & 0xF8) | ((rx_align + len(bits)) % 8)
        self.regs[COM_IRQ] |= RX_IRQ
        self._update_err_irq()

    def _mf_authent(self) -> None:
        data, self.fifo = bytes(self.fifo), bytearray()
        self.regs[ERROR] &= ~(COLL_ERR | CRC_ERR | PARITY_ERR | PROTOCOL_ERR) & 0xFF
        if len(data) != 12:
            self.regs[ERROR] |= PROTOCOL_ERR
            self._update_err_irq()
            self._finish()
            return
        ok = self.antenna_on and self.air.authenticate(data[0], data[1], data[2:8], data[8:12], self._crypto_on())
        self.regs[COM_IRQ] |= TX_IRQ
        if not ok:
            self.regs[STATUS2] &= ~MF_CRYPTO1_ON & 0xFF
            self._timer_expires()  # the card stops answering; the command stays active
            return
        self.regs[STATUS2] |= MF_CRYPTO1_ON
        self._finish()
