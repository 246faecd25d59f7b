"""The RF side of the MFRC522 emulator: ISO/IEC 14443-3 type A frames to the virtual cards.

The chip model (:mod:`terminal_sim.mfrc522_emulator`) hands every transmitted frame here as
bits; the cards in the :class:`~terminal_sim.mifare_card.Field` answer as real MIFARE Classic
cards do, and the answers of all cards are superposed bit by bit, so two cards answering
different bits give a collision at the first differing bit.

Usage::

    air = Air(field)
    reply = air.exchange(b"\\x26", 7, crypto_on=False)    # REQA
    reply.bits, reply.collision                          # ATQA bits, None or first colliding bit

Modelled per card (ISO/IEC 14443-3 section 6 state machine, MF1S50yyX datasheet section 9):

* IDLE/HALT -> READY on REQA (idle only) or WUPA; READY -> cascade levels (ANTICOLLISION with
  NVB 0x20..0x67 answers the unknown bits; SELECT with NVB 0x70 and a valid CRC_A answers SAK,
  0x04 while the UID is incomplete) -> ACTIVE; ACTIVE -> HALT on HLTA; any unexpected or
  corrupted frame drops the card to IDLE.
* MIFARE commands (READ, WRITE, INCREMENT/DECREMENT/RESTORE, TRANSFER) with CRC_A checked:
  a wrong CRC is answered with NAK 0x5, a refused operation with NAK 0x4 (and the card drops
  to IDLE, losing its authentication), the value operations' second step is answered by
  silence (passive ACK), a card pulled from the field is silent.
* Crypto1 is not computed: frames travel in clear. Instead the crypto *state* must agree, as
  it would for a real cipher: a standard frame sent with the reader's Crypto1 on to a card
  that is not authenticated (or the reverse) is garbage to the card, which stays silent and
  drops to IDLE. Short frames (REQA/WUPA) are never enciphered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from terminal_sim.mifare_card import CardError, CardRemoved, Field, MifareClassic1K, sector_of

REQA = 0x26
WUPA = 0x52
SEL_CL = (0x93, 0x95, 0x97)
CASCADE_TAG = 0x88
HLTA = 0x50
AUTH_A, AUTH_B = 0x60, 0x61
READ, WRITE, TRANSFER = 0x30, 0xA0, 0xB0
DECREMENT, INCREMENT, RESTORE = 0xC0, 0xC1, 0xC2
ACK = 0xA
NAK_INVALID = 0x4  # invalid operation, transfer buffer invalid (MF1S50yyX table "ACK and NAK")
NAK_CRC = 0x5  # parity or CRC error, transfer buffer invalid

_READY, _ACTIVE = "ready", "active"
_VALUE_OPS = {DECREMENT: "decrement", INCREMENT: "increment", RESTORE: "restore"}


def crc_a(data: bytes, preset: int = 0x6363) -> int:
    """ISO/IEC 14443-3 Annex B CRC_A (the MFRC522 coprocessor's function); low byte is sent first."""
    crc = preset
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return crc & 0xFFFF


def with_crc(data: bytes) -> bytes:
    c = crc_a(data)
    return bytes(data) + bytes((c & 0xFF, c >> 8))


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 3 and with_crc(frame[:-2]) == bytes(frame)


def to_bits(data: bytes, nbits: int | None = None) -> list[int]:
    """Bits in air order: each byte least significant bit first."""
    bits = [(b >> i) & 1 for b in data for i in range(8)]
    return bits if nbits is None else bits[:nbits]


def from_bits(bits: list[int]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        out[i // 8] |= bit << (i % 8)
    return bytes(out)


@dataclass
class Reply:
    """What the reader's receiver hears: superposed bits and the first colliding bit index (0-based)."""

    bits: list[int]
    collision: int | None = None


@dataclass
class _Picc:
    state: str = _READY
    level: int = 0  # cascade level being resolved (0 = CL1)
    pending: tuple[int, int] | None = None  # (command, block) awaiting its second step


def cascade_levels(uid: bytes) -> list[bytes]:
    """The 4 UID bytes of each cascade level (CT 0x88 prefixed where another level follows)."""
    if len(uid) == 4:
        return [uid]
    return [bytes((CASCADE_TAG,)) + uid[:3], uid[3:7]]


def _bcc(four: bytes) -> int:
    return four[0] ^ four[1] ^ four[2] ^ four[3]


def _nibble(code: int) -> list[int]:
    return to_bits(bytes((code,)), 4)


class Air:
    """Frames from the reader to the cards in one field, and the superposed answers back."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self._piccs: dict[int, _Picc] = {}
        self.frames: list[tuple[bytes, int]] = []  # every frame sent, for tests: (bytes, last bits)

    def power_off(self) -> None:
        """Antenna off: every card loses power and comes back IDLE (not halted) with the field."""
        self._piccs.clear()
        for card in self.field.cards:
            card.halted = False

    def _present(self) -> list[MifareClassic1K]:
        return [c for c in self.field.cards if c.present]

    def _drop(self, card: MifareClassic1K) -> None:
        self._piccs.pop(id(card), None)

    def _crypto(self, card: MifareClassic1K) -> bool:
        picc = self._piccs.get(id(card))
        return picc is not None and picc.state == _ACTIVE and card.authenticated_sector is not None

    def exchange(self, data: bytes, last_bits: int, crypto_on: bool) -> Reply | None:
        """Send one frame (``last_bits`` valid bits in its last byte, 0 = all 8); None is silence."""
        data = bytes(data)
        self.frames.append((data, last_bits))
        for card in self.field.cards:
            if not card.present:
                self._drop(card)
        answers: list[list[int]] = []
        if len(data) == 1 and last_bits == 7:
            answers = self._short_frame(data[0] & 0x7F)
        elif last_bits == 0 or data[:1] and data[0] in SEL_CL:
            for card in self._present():
                picc = self._piccs.get(id(card))
                if picc is None:
                    continue  # idle and halted cards ignore everything but REQA/WUPA
                if crypto_on != self._crypto(card):
                    self._drop(card)  # enciphered garbage to this card (or plain text it cannot use)
                    continue
                bits = self._standard_frame(card, picc, data, last_bits)
                if bits:
                    answers.append(bits)
        return superpose(answers)

    def _short_frame(self, code: int) -> list[list[int]]:
        if code not in (REQA, WUPA):
            return []
        answers = []
        for card in self._present():
            picc = self._piccs.get(id(card))
            if picc is not None:
                self._drop(card)  # REQA/WUPA in READY or ACTIVE is not expected: back to IDLE, silent
                continue
            if card.answers_request(wupa=code == WUPA):
                self._piccs[id(card)] = _Picc()
                answers.append(to_bits(card.atqa))
        return answers

    def _standard_frame(self, card: MifareClassic1K, picc: _Picc, data: bytes, last_bits: int) -> list[int]:
        if picc.state == _READY:
            return self._anticollision(card, picc, data, last_bits)
        try:
            return self._mifare(card, picc, data)
        except CardRemoved:
            self._drop(card)
            return []

    def _anticollision(self, card: MifareClassic1K, picc: _Picc, data: bytes, last_bits: int) -> list[int]:
        levels = cascade_levels(card.uid)
        if len(data) < 2 or data[0] != SEL_CL[picc.level] or picc.level >= len(levels):
            self._drop(card)
            return []
        cl = levels[picc.level] + bytes((_bcc(levels[picc.level]),))
        nvb = data[1]
        if nvb == 0x70:
            if len(data) != 9 or last_bits or not crc_ok(data) or data[2:7] != cl:
                self._drop(card)  # a SELECT for another card (or corrupted) deselects this one
                return []
            picc.level += 1
            if picc.level < len(levels):
                return to_bits(with_crc(bytes((0x04,))))  # SAK: cascade bit, UID not complete
            card.select()
            picc.state = _ACTIVE
            return to_bits(with_crc(bytes((card.sak,))))
        known = ((nvb >> 4) - 2) * 8 + (nvb & 0x0F)
        sent = len(data) * 8 - ((8 - last_bits) % 8)
        if not 0 <= known < 40 or sent != 16 + known:
            self._drop(card)
            return []
        mine = to_bits(cl)
        if to_bits(data[2:], known) != mine[:known]:
            return []  # does not match the known bits: stays READY, silent
        return mine[known:]

    def _mifare(self, card: MifareClassic1K, picc: _Picc, data: bytes) -> list[int]:
        if picc.pending is not None:
            (cmd, block), picc.pending = picc.pending, None
            return self._second_step(card, picc, cmd, block, data)
        if not crc_ok(data):
            return self._nak(card, NAK_CRC)
        cmd = data[0]
        if len(data) != 4:
            return self._nak(card, NAK_INVALID)
        block = data[1]
        if cmd == HLTA and block == 0:
            card.halt()
            self._drop(card)
            return []
        if cmd in (AUTH_A, AUTH_B):
            picc.pending = (cmd, block)  # a nonce goes out; only MFAuthent can finish the handshake
            return to_bits(os.urandom(4))
        try:
            if cmd == READ:
                return to_bits(with_crc(card.read(block)))
            if cmd == TRANSFER:
                card.transfer(block)
                return _nibble(ACK)
        except CardRemoved:
            raise
        except CardError:
            return self._nak(card, NAK_INVALID)
        if cmd == WRITE or cmd in _VALUE_OPS:
            # Step 1: the card checks the sector is authenticated; the full access rules apply
            # when the operation itself runs in step 2.
            if block > 63 or card.authenticated_sector != sector_of(block):
                return self._nak(card, NAK_INVALID)
            picc.pending = (cmd, block)
            return _nibble(ACK)
        return self._nak(card, NAK_INVALID)

    def _second_step(self, card: MifareClassic1K, picc: _Picc, cmd: int, block: int, data: bytes) -> list[int]:
        if cmd in (AUTH_A, AUTH_B):
            self._drop(card)  # the reader answered the nonce without Crypto1: not understood
            return []
        if not crc_ok(data):
            return self._nak(card, NAK_CRC)
        payload = data[:-2]
        try:
            if cmd == WRITE:
                if len(payload) != 16:
                    return self._nak(card, NAK_INVALID)
                card.write(block, payload)
                return _nibble(ACK)
            if len(payload) != 4:
                return self._nak(card, NAK_INVALID)
            operand = int.from_bytes(payload, "little", signed=True)
            if cmd == DECREMENT:
                card.decrement(block, operand)
            elif cmd == INCREMENT:
                card.increment(block, operand)
            else:
                card.restore(block)
        except CardRemoved:
            raise
        except CardError:
            return self._nak(card, NAK_INVALID)
        return []  # value operations: no answer is the acknowledgement (passive ACK)

    def _nak(self, card: MifareClassic1K, code: int) -> list[int]:
        self._drop(card)  # after a NAK the card is IDLE and unauthenticated
        return _nibble(code)

    def authenticate(self, key_type: int, block: int, key: bytes, uid4: bytes, crypto_on: bool) -> bool:
        """MFAuthent's three passes with the ACTIVE card; False is what the chip sees as silence."""
        for card in self._present():
            picc = self._piccs.get(id(card))
            if picc is None or picc.state != _ACTIVE or picc.pending is not None:
                continue
            if crypto_on != self._crypto(card) or key_type not in (AUTH_A, AUTH_B):
                self._drop(card)
                continue
            try:
                card.authenticate(block, key_type, key, uid=uid4)
            except CardError:
                self._drop(card)
                continue
            return True
        return False


def superpose(answers: list[list[int]]) -> Reply | None:
    """Bits of all answering cards as the receiver hears them; differing bits collide."""
    if not answers:
        return None
    length = max(len(a) for a in answers)
    bits: list[int] = []
    collision = None
    for i in range(length):
        values = {a[i] for a in answers if i < len(a)}
        if len(values) > 1 and collision is None:
            collision = i
        bits.append(max(values))
    return Reply(bits, collision)
