"""A virtual MIFARE Classic 1K card with the real sector, key, access-bit and value-block rules.

The chip emulators (PN532, MFRC522) look cards up in a :class:`Field` and map their
commands onto the methods here, so the firmware drivers meet the same rules a real card
enforces (NXP MF1S50yyX datasheet, section 8.6 "Memory organization" and 8.7 "Access
conditions").

Usage::

    card = MifareClassic1K(bytes.fromhex("04a1b2c3"), name="alice")
    card.authenticate(4, KEY_A, b"\\xff" * 6)
    card.write(4, value_block(500, 4))
    card.decrement(4, 120)
    card.transfer(4)
    assert parse_value_block(card.read(4)) == (380, 4)

What is modelled, and the choices made where a real card leaves room:

* Authentication covers one sector. Any failed operation (NAK) drops it, as a real card
  switches its crypto off and returns to idle; the reader must authenticate again.
* A key B that the trailer's access bits make readable cannot serve as a key: the card
  accepts the authentication but refuses every access after it (datasheet 8.7.3 remark).
* An inconsistent access-bit trailer (inverted copy mismatch) blocks the whole sector.
* Writing a sector trailer changes only the parts the key may write (keys, access bits +
  GPB); a write that may change nothing is refused.
* Block 0 (manufacturer block) is read-only.
* ``pull_after(n)`` tears the card out of the field: the operation that hits the pull does
  not take effect (a torn write or transfer leaves the block's old content, the tearing case
  the product's journal must survive), raises :class:`CardRemoved`, and the card stays away
  until ``put_back()`` or ``Field.place()``.
"""

from __future__ import annotations

import json
from pathlib import Path

# Re-exported: emulators and tests import the card and its field from this one module.
from terminal_sim.field import Field as Field

KEY_A = 0x60
KEY_B = 0x61
BLOCKS = 64
BLOCK_SIZE = 16
DEFAULT_KEY = b"\xff" * 6
TRANSPORT_ACCESS = bytes.fromhex("ff0780")  # data blocks 000, trailer 001
DEFAULT_GPB = 0x69
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1

# Data-block permissions per (C1, C2, C3): datasheet table "Access conditions for data blocks".
# Each entry: (read, write, increment, decrement/transfer/restore); "" never, "A", "B", "AB".
_DATA_RULES: dict[tuple[int, int, int], tuple[str, str, str, str]] = {
    (0, 0, 0): ("AB", "AB", "AB", "AB"),
    (0, 1, 0): ("AB", "", "", ""),
    (1, 0, 0): ("AB", "B", "", ""),
    (1, 1, 0): ("AB", "B", "B", "AB"),
    (0, 0, 1): ("AB", "", "", "AB"),
    (0, 1, 1): ("B", "B", "", ""),
    (1, 0, 1): ("B", "", "", ""),
    (1, 1, 1): ("", "", "", ""),
}
# Trailer permissions per (C1, C2, C3): datasheet table "Access conditions for the sector trailer".
# Each entry: (key A write, access bits read, access bits write, key B read, key B write).
# Key A is never readable.
_TRAILER_RULES: dict[tuple[int, int, int], tuple[str, str, str, str, str]] = {
    (0, 0, 0): ("A", "A", "", "A", "A"),
    (0, 1, 0): ("", "A", "", "A", ""),
    (1, 0, 0): ("B", "AB", "", "", "B"),
    (1, 1, 0): ("", "AB", "", "", ""),
    (0, 0, 1): ("A", "A", "A", "A", "A"),
    (0, 1, 1): ("B", "AB", "B", "", "B"),
    (1, 0, 1): ("", "AB", "B", "", ""),
    (1, 1, 1): ("", "AB", "", "", ""),
}


class CardError(Exception):
    """The card refused or could not complete an operation (a NAK or silence on the air)."""


class AuthError(CardError):
    """Authentication failed: wrong key, wrong UID, or a blocked sector."""


class AccessError(CardError):
    """The access bits (or missing authentication) forbid the operation: the card NAKs."""


class ValueFormatError(CardError):
    """A value operation met a block that is not a valid value block, or overflowed."""


class CardRemoved(CardError):
    """The card left the field: nothing answers."""


def encode_access_bits(conditions: list[tuple[int, int, int]]) -> bytes:
    """Trailer bytes 6-8 for four (C1, C2, C3) triples: blocks 0, 1, 2 and the trailer."""
    if len(conditions) != 4:
        raise ValueError(f"need 4 access conditions (3 data blocks + trailer), got {len(conditions)}")
    c1 = c2 = c3 = 0
    for i, (b1, b2, b3) in enumerate(conditions):
        c1 |= (b1 & 1) << i
        c2 |= (b2 & 1) << i
        c3 |= (b3 & 1) << i
    return bytes((((~c2 & 0xF) << 4) | (~c1 & 0xF), (c1 << 4) | (~c3 & 0xF), (c3 << 4) | c2))


def decode_access_bits(raw: bytes | bytearray) -> list[tuple[int, int, int]] | None:
    """The four (C1, C2, C3) triples of trailer bytes 6-8, or None if the inverted copy disagrees."""
    b6, b7, b8 = raw[0], raw[1], raw[2]
    c1, c2, c3 = b7 >> 4, b8 & 0xF, b8 >> 4
    if (b6 & 0xF) != (~c1 & 0xF) or (b6 >> 4) != (~c2 & 0xF) or (b7 & 0xF) != (~c3 & 0xF):
        return None
    return [((c1 >> i) & 1, (c2 >> i) & 1, (c3 >> i) & 1) for i in range(4)]


def make_trailer(
    key_a: bytes = DEFAULT_KEY,
    access: bytes = TRANSPORT_ACCESS,
    key_b: bytes = DEFAULT_KEY,
    gpb: int = DEFAULT_GPB,
) -> bytes:
    """A 16-byte sector trailer: key A, access bits, general purpose byte, key B."""
    if len(key_a) != 6 or len(key_b) != 6 or len(access) != 3:
        raise ValueError("keys must be 6 bytes and access bits 3 bytes")
    return bytes(key_a) + bytes(access) + bytes((gpb,)) + bytes(key_b)


def value_block(value: int, addr: int) -> bytes:
    """A 16-byte value block: value, ~value, value (int32 little endian), addr, ~addr, addr, ~addr."""
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"value {value} does not fit a signed 32-bit value block")
    v = (value & 0xFFFFFFFF).to_bytes(4, "little")
    nv = (~value & 0xFFFFFFFF).to_bytes(4, "little")
    a = addr & 0xFF
    return v + nv + v + bytes((a, a ^ 0xFF, a, a ^ 0xFF))


def parse_value_block(data: bytes) -> tuple[int, int]:
    """(value, addr) of a value block; raises ValueFormatError if the redundant copies disagree."""
    v, nv, v2 = data[0:4], data[4:8], data[8:12]
    a = data[12:16]
    if v != v2 or bytes(x ^ 0xFF for x in v) != nv or a[0] != a[2] or a[1] != a[3] or a[0] ^ 0xFF != a[1]:
        raise ValueFormatError(f"not a value block: {bytes(data).hex()}")
    return int.from_bytes(v, "little", signed=True), a[0]


def sector_of(block: int) -> int:
    return block // 4


def trailer_of(block: int) -> int:
    return block | 3


class MifareClassic1K:
    """One MIFARE Classic 1K card: 16 sectors x 4 blocks x 16 bytes, with its own auth state."""

    def __init__(self, uid: bytes, image: bytes | None = None, name: str = "") -> None:
        uid = bytes(uid)
        if len(uid) not in (4, 7):
            raise ValueError(f"UID must be 4 or 7 bytes, got {len(uid)} ({uid.hex()})")
        self.uid = uid
        self.name = name
        # ATQA as sent on the air, LSB first: 0x0004 single size UID, 0x0044 double size UID.
        self.atqa = b"\x04\x00" if len(uid) == 4 else b"\x44\x00"
        self.sak = 0x08
        if image is None:
            self._mem = bytearray(BLOCKS * BLOCK_SIZE)
            self._mem[0:16] = self._manufacturer_block()
            for s in range(16):
                self._mem[(s * 4 + 3) * 16 : (s * 4 + 4) * 16] = make_trailer()
        else:
            if len(image) != BLOCKS * BLOCK_SIZE:
                raise ValueError(f"card image must be {BLOCKS * BLOCK_SIZE} bytes, got {len(image)}")
            self._mem = bytearray(image)
        self.ops = 0
        self.halted = False
        self._present = True
        self._pull_in: int | None = None
        self._auth_sector: int | None = None
        self._auth_key: int | None = None
        self._buffer: tuple[int, int] | None = None  # transfer buffer: (value, addr byte)

    def _manufacturer_block(self) -> bytes:
        if len(self.uid) == 4:
            bcc = self.uid[0] ^ self.uid[1] ^ self.uid[2] ^ self.uid[3]
            head = self.uid + bytes((bcc, self.sak)) + self.atqa
        else:
            head = self.uid + bytes((self.sak,)) + self.atqa
        return (head + b"campuscard-sim!!")[:16]

    def __repr__(self) -> str:
        return f"<MifareClassic1K {self.uid.hex().upper()}{' ' + self.name if self.name else ''}>"

    # -- raw access for tests and tools (no auth, no rules) -----------------------------------

    def image(self) -> bytes:
        return bytes(self._mem)

    def block(self, n: int) -> bytes:
        return bytes(self._mem[n * 16 : n * 16 + 16])

    def set_block(self, n: int, data: bytes) -> None:
        """Raw write without any rule, for provisioning fixtures."""
        if len(data) != 16:
            raise ValueError(f"block data must be 16 bytes, got {len(data)}")
        self._mem[n * 16 : n * 16 + 16] = data

    # -- presence ----------------------------------------------------------------------------

    @property
    def present(self) -> bool:
        return self._present

    @property
    def auth_uid(self) -> bytes:
        """The 4 UID bytes that enter the authentication (the last 4 of a 7-byte UID)."""
        return self.uid[-4:]

    @property
    def authenticated_sector(self) -> int | None:
        return self._auth_sector

    def pull_after(self, n: int) -> None:
        """Leave the field after ``n`` more successful operations; the next one raises CardRemoved."""
        if n < 0:
            raise ValueError(f"pull_after needs n >= 0, got {n}")
        self._pull_in = n

    def put_back(self) -> None:
        """Return to the field, powered up afresh (idle, not authenticated)."""
        self._present = True
        self._pull_in = None
        self._reset_state()

    def reset(self) -> None:
        """The reader switched its field off and on: the card powers up idle (auth and HALT lost)."""
        self._reset_state()

    def leave_field(self) -> None:
        self._present = False
        self._pull_in = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.halted = False
        self._drop_auth()

    def _drop_auth(self) -> None:
        self._auth_sector = None
        self._auth_key = None
        self._buffer = None

    def answers_request(self, wupa: bool = True) -> bool:
        """Whether the card answers REQA (idle only) or WUPA (idle or halted)."""
        return self._present and (wupa or not self.halted)

    def select(self) -> None:
        """Anticollision + select done: the card is active, not authenticated."""
        if not self._present:
            raise CardRemoved(f"card {self.uid.hex()} is not in the field")
        self.halted = False
        self._drop_auth()

    def _begin(self) -> None:
        if not self._present:
            raise CardRemoved(f"card {self.uid.hex()} is not in the field")
        if self._pull_in == 0:
            self.leave_field()
            raise CardRemoved(f"card {self.uid.hex()} was pulled from the field")

    def _done(self) -> None:
        self.ops += 1
        if self._pull_in is not None:
            self._pull_in -= 1

    def _fail(self, exc: CardError) -> CardError:
        self._drop_auth()
        return exc

    # -- rules -------------------------------------------------------------------------------

    def _conditions(self, sector: int) -> list[tuple[int, int, int]] | None:
        t = (sector * 4 + 3) * 16
        return decode_access_bits(self._mem[t + 6 : t + 9])

    def _check_block(self, block: int) -> None:
        if not 0 <= block < BLOCKS:
            raise self._fail(AccessError(f"block {block} out of range 0..63"))

    def _key_letter(self, block: int) -> str:
        """'A' or 'B' for the key in force on block's sector; raises AccessError if none may act."""
        if self._auth_sector is None or self._auth_sector != sector_of(block):
            raise self._fail(AccessError(f"block {block}: sector {sector_of(block)} not authenticated"))
        cond = self._conditions(sector_of(block))
        if cond is None:
            raise self._fail(AccessError(f"sector {sector_of(block)} blocked: inconsistent access bits"))
        letter = "A" if self._auth_key == KEY_A else "B"
        if letter == "B" and _TRAILER_RULES[cond[3]][3]:
            msg = f"sector {sector_of(block)}: key B is readable, so it grants no access"
            raise self._fail(AccessError(msg))
        return letter

    def _allow(self, block: int, rule: int, what: str) -> None:
        letter = self._key_letter(block)
        cond = self._conditions(sector_of(block))
        assert cond is not None
        if block == 0 and what != "read":
            raise self._fail(AccessError("block 0 (manufacturer block) is read-only"))
        if letter not in _DATA_RULES[cond[block % 4]][rule]:
            bits = "%d%d%d" % cond[block % 4]  # noqa: UP031
            raise self._fail(AccessError(f"block {block}: key {letter} may not {what} (access bits {bits})"))

    def _data_block(self, block: int, what: str) -> None:
        self._check_block(block)
        if block % 4 == 3:
            raise self._fail(AccessError(f"block {block} is a sector trailer: cannot {what}"))

    # -- card commands -----------------------------------------------------------------------

    def authenticate(self, block: int, key_type: int, key: bytes, uid: bytes | None = None) -> None:
        """Three-pass authentication for block's sector; ``uid`` (4 bytes) if the reader sends one."""
        self._begin()
        self._check_block(block)
        if key_type not in (KEY_A, KEY_B):
            raise self._fail(AuthError(f"unknown key type 0x{key_type:02x} (expected 0x60 or 0x61)"))
        if uid is not None and bytes(uid) != self.auth_uid:
            raise self._fail(AuthError(f"UID {bytes(uid).hex()} does not match card {self.uid.hex()}"))
        sector = sector_of(block)
        if self._conditions(sector) is None:
            raise self._fail(AuthError(f"sector {sector} blocked: inconsistent access bits"))
        t = (sector * 4 + 3) * 16
        stored = self._mem[t : t + 6] if key_type == KEY_A else self._mem[t + 10 : t + 16]
        if bytes(key) != bytes(stored):
            letter = "A" if key_type == KEY_A else "B"
            raise self._fail(AuthError(f"sector {sector}: wrong key {letter}"))
        self._drop_auth()
        self._auth_sector = sector
        self._auth_key = key_type
        self._done()

    def read(self, block: int) -> bytes:
        self._begin()
        self._check_block(block)
        if block % 4 == 3:
            data = self._read_trailer(block)
        else:
            self._allow(block, 0, "read")
            data = self.block(block)
        self._done()
        return data

    def _read_trailer(self, block: int) -> bytes:
        letter = self._key_letter(block)
        cond = self._conditions(sector_of(block))
        assert cond is not None
        _, ab_read, _, kb_read, _ = _TRAILER_RULES[cond[3]]
        if letter not in ab_read:
            raise self._fail(AccessError(f"block {block}: key {letter} may not read the trailer"))
        raw = self.block(block)
        key_b = raw[10:16] if letter in kb_read else bytes(6)
        return bytes(6) + raw[6:10] + key_b

    def write(self, block: int, data: bytes) -> None:
        if len(data) != 16:
            raise ValueError(f"block data must be 16 bytes, got {len(data)}")
        self._begin()
        self._check_block(block)
        if block % 4 == 3:
            self._write_trailer(block, bytes(data))
        else:
            self._allow(block, 1, "write")
            self.set_block(block, data)
        self._done()

    def _write_trailer(self, block: int, data: bytes) -> None:
        letter = self._key_letter(block)
        cond = self._conditions(sector_of(block))
        assert cond is not None
        ka_w, _, ab_w, _, kb_w = _TRAILER_RULES[cond[3]]
        if letter not in ka_w + ab_w + kb_w:
            raise self._fail(AccessError(f"block {block}: key {letter} may not write the trailer"))
        new = bytearray(self.block(block))
        if letter in ka_w:
            new[0:6] = data[0:6]
        if letter in ab_w:
            new[6:10] = data[6:10]
        if letter in kb_w:
            new[10:16] = data[10:16]
        self.set_block(block, bytes(new))

    def _value_op(self, block: int, rule: int, what: str) -> tuple[int, int]:
        self._begin()
        self._data_block(block, what)
        self._allow(block, rule, what)
        try:
            return parse_value_block(self.block(block))
        except ValueFormatError as e:
            raise self._fail(ValueFormatError(f"block {block}: {e}")) from None

    def _load_buffer(self, value: int, addr: int) -> None:
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise self._fail(ValueFormatError(f"value overflow: {value} does not fit 32 bits"))
        self._buffer = (value, addr)
        self._done()

    def _check_amount(self, amount: int) -> None:
        if not 0 <= amount <= _INT32_MAX:
            raise self._fail(ValueFormatError(f"amount {amount} out of range 0..2**31-1"))

    def increment(self, block: int, amount: int) -> None:
        """Value of ``block`` plus ``amount`` into the transfer buffer (not yet written)."""
        value, addr = self._value_op(block, 2, "increment")
        self._check_amount(amount)
        self._load_buffer(value + amount, addr)

    def decrement(self, block: int, amount: int) -> None:
        """Value of ``block`` minus ``amount`` into the transfer buffer (not yet written)."""
        value, addr = self._value_op(block, 3, "decrement")
        self._check_amount(amount)
        self._load_buffer(value - amount, addr)

    def restore(self, block: int) -> None:
        """Value of ``block`` into the transfer buffer unchanged (to copy a value block)."""
        value, addr = self._value_op(block, 3, "restore")
        self._load_buffer(value, addr)

    def transfer(self, block: int) -> None:
        """Write the transfer buffer to ``block`` as a value block; the address byte is the source's."""
        self._begin()
        self._data_block(block, "transfer")
        self._allow(block, 3, "transfer")
        if self._buffer is None:
            raise self._fail(AccessError(f"block {block}: transfer with an empty transfer buffer"))
        value, addr = self._buffer
        self.set_block(block, value_block(value, addr))
        self._done()

    def halt(self) -> None:
        """HLTA: the card goes to HALT, forgets its authentication and answers only WUPA."""
        self._begin()
        self.halted = True
        self._drop_auth()

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        doc = {"uid": self.uid.hex(), "name": self.name, "image": self.image().hex()}
        Path(path).write_text(json.dumps(doc, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MifareClassic1K:
        doc = json.loads(Path(path).read_text())
        return cls(bytes.fromhex(doc["uid"]), bytes.fromhex(doc["image"]), doc.get("name", ""))
