"""The MIFARE Classic 1K card map: which sector and block holds what, and every block codec.

========  =======  =====================================================  =============
Sector    Block    Content                                                Access (A/B)
========  =======  =====================================================  =============
0         0        manufacturer block (UID)                               read-only
1         4        identity: version, card type, card number, validity    read AB, write B
1         5        holder id (ASCII, NUL padded)                          read AB, write B
1         6        issuer MAC over UID + blocks 4-5 (16 bytes)            read AB, write B
2         8        balance, signed cents, MIFARE value block              dec AB, inc B
2         9        backup of the balance, value block                     dec AB, inc B
2         10       load register: last pending-load sequence applied+MAC  read AB, write B
3         12-14    purse state, slot 0 (48 bytes with MAC)                read/write AB
4         16-18    purse state, slot 1 (48 bytes with MAC)                read/write AB
5         20/21    sub-purse (hot water / subsidy) value + backup         dec AB, inc B
5         22       sub-purse state (reserved)                             read AB, write B
1-5       trailer  diversified keys A/B; access bits writable with B      keys never read
========  =======  =====================================================  =============

The purse state is kept twice (slots 0 and 1, in different sectors); a terminal writes the
new state into the slot that does not hold the newest valid one, so a torn write leaves the
previous state readable. The valid slot with the highest counter is current. Value blocks
are decremented with key A; increments need key B, which a POS uses only to apply a load the
server signed. See docs/card-layout.md for the byte layout of every block.

Usage::

    from protocol import card_layout as cl
    blk = cl.encode_value_block(1250, cl.BLOCK_BALANCE)
    value, addr = cl.decode_value_block(blk)
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

import struct

from protocol import crypto
from protocol.errors import CardFormatError

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

BLOCK_SIZE = const(16)
VALIDITY_MAX = 0xFFFFFFFF  # validity dates are 32-bit UTC seconds in the identity block

SECTOR_IDENTITY = const(1)
SECTOR_PURSE = const(2)
SECTOR_STATE0 = const(3)
SECTOR_STATE1 = const(4)
SECTOR_SUBPURSE = const(5)
PERSONALISED_SECTORS = (1, 2, 3, 4, 5)

BLOCK_IDENTITY = const(4)
BLOCK_HOLDER = const(5)
BLOCK_ISSUER_MAC = const(6)
BLOCK_BALANCE = const(8)
BLOCK_BACKUP = const(9)
BLOCK_LOADS = const(10)
STATE_SLOTS = ((12, 13, 14), (16, 17, 18))
BLOCK_SUB_BALANCE = const(20)
BLOCK_SUB_BACKUP = const(21)
BLOCK_SUB_STATE = const(22)

LAYOUT_VERSION = const(1)

CARD_STAFF = const(1)
CARD_STUDENT = const(2)
CARD_IDENTITY = const(3)
CARD_TEMPORARY = const(4)
CARD_TYPE_NAMES = ("", "staff", "student", "identity", "temporary")

# Purse state flags (high nibble of byte 0; the low nibble counts wrong PINs).
FLAG_INITIAL_PIN = const(0x10)
FLAG_PIN_LOCKED = const(0x20)

STATE_SIZE = const(48)
_STATE_MAC = const(40)
_STATE_FMT = "<BIiHIBIIIIII"  # 40 bytes before the 8-byte MAC
_GEN_BYTE = const(15)  # meal period | gen << 4, the sixth field of _STATE_FMT

# Access conditions C1C2C3 as a 3-bit number (MF1S50yyX datasheet, 8.7.2/8.7.3 tables).
ACC_DATA_TRANSPORT = const(0b000)  # read/write/inc/dec with A or B
ACC_DATA_WRITE_B = const(0b100)  # read A|B, write B only
ACC_DATA_VALUE = const(0b110)  # read A|B, write B, increment B, decrement/transfer/restore A|B
ACC_TRAILER_TRANSPORT = const(0b001)
ACC_TRAILER_KEYB = const(0b011)  # keys and access bits written with key B; keys never readable

_SECTOR_ACCESS = {
    SECTOR_IDENTITY: (ACC_DATA_WRITE_B, ACC_DATA_WRITE_B, ACC_DATA_WRITE_B, ACC_TRAILER_KEYB),
    SECTOR_PURSE: (ACC_DATA_VALUE, ACC_DATA_VALUE, ACC_DATA_WRITE_B, ACC_TRAILER_KEYB),
    SECTOR_STATE0: (ACC_DATA_TRANSPORT, ACC_DATA_TRANSPORT, ACC_DATA_TRANSPORT, ACC_TRAILER_KEYB),
    SECTOR_STATE1: (ACC_DATA_TRANSPORT, ACC_DATA_TRANSPORT, ACC_DATA_TRANSPORT, ACC_TRAILER_KEYB),
    SECTOR_SUBPURSE: (ACC_DATA_VALUE, ACC_DATA_VALUE, ACC_DATA_WRITE_B, ACC_TRAILER_KEYB),
}


def sector_of(block):
    return block // 4


def trailer_block(sector):
    return sector * 4 + 3


@micropython.native
def _check_len(data, n, what):
    if len(data) != n:
        raise CardFormatError("%s must be %d bytes, got %d" % (what, n, len(data)))


# --- value blocks -----------------------------------------------------------------------


@micropython.native
def encode_value_block_into(buf, value, addr):
    """Write the NXP value block (value, ~value, value, addr, ~addr, addr, ~addr) into ``buf``."""
    if not -0x80000000 <= value <= 0x7FFFFFFF:
        raise CardFormatError("value %d does not fit a signed 32-bit value block" % value)
    if not 0 <= addr <= 0xFF:
        raise CardFormatError("value block address must be 0..255, got %d" % addr)
    struct.pack_into("<iiiBBBB", buf, 0, value, ~value, value, addr, addr ^ 0xFF, addr, addr ^ 0xFF)


@micropython.native
def encode_value_block(value, addr):
    buf = bytearray(16)
    encode_value_block_into(buf, value, addr)
    return bytes(buf)


@micropython.native
def decode_value_block(block):
    """Return ``(value, addr)`` of a value block; ``CardFormatError`` if any copy disagrees."""
    _check_len(block, 16, "value block")
    v, nv, v2, a, na, a2, na2 = struct.unpack_from("<iiiBBBB", block, 0)
    if v != v2 or nv != ~v:
        raise CardFormatError("not a value block: value copies disagree (%d, ~%d, %d)" % (v, ~nv, v2))
    if a != a2 or na != a ^ 0xFF or na2 != a ^ 0xFF:
        raise CardFormatError("not a value block: address copies disagree (0x%02x)" % a)
    return v, a


# --- sector trailers --------------------------------------------------------------------


def encode_access_bits(c0, c1, c2, c3):
    """Bytes 6-8 of a trailer for the access conditions of blocks 0-2 and the trailer."""
    conds = (c0, c1, c2, c3)
    b6 = b7 = b8 = 0
    for i in range(4):
        k1 = (conds[i] >> 2) & 1
        k2 = (conds[i] >> 1) & 1
        k3 = conds[i] & 1
        b6 |= ((k2 ^ 1) << (4 + i)) | ((k1 ^ 1) << i)
        b7 |= (k1 << (4 + i)) | ((k3 ^ 1) << i)
        b8 |= (k3 << (4 + i)) | (k2 << i)
    return bytes((b6, b7, b8))


def decode_access_bits(bits):
    """The four conditions (blocks 0-2, trailer) of trailer bytes 6-8, checked for consistency."""
    _check_len(bits, 3, "access bits")
    b6, b7, b8 = bits[0], bits[1], bits[2]
    if (b6 & 0x0F) != ((b7 >> 4) ^ 0x0F) or (b6 >> 4) != ((b8 & 0x0F) ^ 0x0F) or (b7 & 0x0F) != (
        (b8 >> 4) ^ 0x0F
    ):
        raise CardFormatError("inconsistent access bits %02x%02x%02x" % (b6, b7, b8))
    out = []
    for i in range(4):
        k1 = (b7 >> (4 + i)) & 1
        k2 = (b8 >> i) & 1
        k3 = (b8 >> (4 + i)) & 1
        out.append((k1 << 2) | (k2 << 1) | k3)
    return tuple(out)


def encode_trailer(key_a, key_b, access, gpb=0x69):
    _check_len(key_a, 6, "key A")
    _check_len(key_b, 6, "key B")
    return bytes(key_a) + encode_access_bits(*access) + bytes([gpb]) + bytes(key_b)


def sector_trailer(card_master, uid, sector):
    """The personalised trailer of a card sector: diversified keys and the sector's access bits."""
    ka = crypto.card_sector_key(card_master, uid, sector, crypto.KEY_A)
    kb = crypto.card_sector_key(card_master, uid, sector, crypto.KEY_B)
    return encode_trailer(ka, kb, _SECTOR_ACCESS[sector])


def sector_access(sector):
    return _SECTOR_ACCESS[sector]


# --- identity sector --------------------------------------------------------------------


class Identity:
    """The identity sector's content."""

    def __init__(self, card_no, holder_id, card_type, valid_from, valid_until, version=LAYOUT_VERSION):
        self.card_no = card_no
        self.holder_id = holder_id
        self.card_type = card_type
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.version = version

    def type_name(self):
        t = self.card_type
        return CARD_TYPE_NAMES[t] if 0 < t < len(CARD_TYPE_NAMES) else "unknown"

    def __eq__(self, other):
        return isinstance(other, Identity) and self.fields() == other.fields()

    def fields(self):
        return (self.card_no, self.holder_id, self.card_type, self.valid_from, self.valid_until, self.version)

    def __repr__(self):
        return "Identity(%d, %r, %s, %d..%d)" % (
            self.card_no, self.holder_id, self.type_name(), self.valid_from, self.valid_until)


@micropython.native
def _identity_mac(issuer_key, uid, blocks32):
    return crypto.hmac_sha256_2(issuer_key, uid, blocks32)[:16]


def encode_identity(ident, issuer_key, uid):
    """Blocks 4, 5 and 6 (48 bytes): identity, holder id and the issuer MAC bound to the UID."""
    if not CARD_STAFF <= ident.card_type <= CARD_TEMPORARY:
        raise CardFormatError("unknown card type %d" % ident.card_type)
    holder = ident.holder_id.encode()
    if len(holder) > 16:
        raise CardFormatError("holder id must be at most 16 bytes, got %d" % len(holder))
    if ident.valid_until <= ident.valid_from:
        raise CardFormatError("validity ends before it starts")
    buf = bytearray(48)
    struct.pack_into("<BBHIII", buf, 0, ident.version, ident.card_type, 0, ident.card_no,
                     ident.valid_from, ident.valid_until)
    buf[16:16 + len(holder)] = holder
    buf[32:48] = _identity_mac(issuer_key, uid, memoryview(buf)[:32])
    return bytes(buf)


@micropython.native
def decode_identity(data, issuer_key, uid):
    """Parse blocks 4-6; ``CardFormatError`` if the issuer MAC does not match this UID."""
    _check_len(data, 48, "identity sector")
    mv = memoryview(data)
    if not crypto.compare_digest(_identity_mac(issuer_key, uid, mv[:32]), mv[32:48]):
        raise CardFormatError("identity MAC does not match card %s" % _hex(uid))
    version, ctype, _, card_no, vfrom, vuntil = struct.unpack_from("<BBHIII", data, 0)
    if version != LAYOUT_VERSION:
        raise CardFormatError("card layout version %d, expected %d" % (version, LAYOUT_VERSION))
    holder = bytes(mv[16:32])
    end = holder.find(b"\x00")
    if end >= 0:
        holder = holder[:end]
    return Identity(card_no, holder.decode(), ctype, vfrom, vuntil, version)


# --- purse state --------------------------------------------------------------------------


class PurseState:
    """One purse state slot: counters, totals and PIN data, MAC'd with the card's purse key.

    ``counter`` counts money-moving transactions (purchases, loads); ``gen`` (4 bits, shared
    with the meal period byte) counts every state write and tells which slot is newer.

    ``txn_terminal``/``txn_seq`` name the transaction that wrote this state (terminal 0 means a
    server load, ``txn_seq`` then being the load sequence), so a torn transaction can be
    finished or rolled back, and attributed, by whichever terminal sees the card next.
    """

    def __init__(self):
        self.flags = FLAG_INITIAL_PIN
        self.pin_retries = 0
        self.counter = 0
        self.balance = 0
        self.day = 0
        self.day_total = 0
        self.meal_period = 0
        self.gen = 0
        self.meal_total = 0
        self.credit_used = 0
        self.offline_spend = 0
        self.pin_check = 0
        self.txn_terminal = 0
        self.txn_seq = 0

    @micropython.native
    def copy_from(self, other):
        for name in _STATE_FIELDS:
            setattr(self, name, getattr(other, name))

    def fields(self):
        return tuple(getattr(self, name) for name in _STATE_FIELDS)

    def __eq__(self, other):
        return isinstance(other, PurseState) and self.fields() == other.fields()

    def __repr__(self):
        return "PurseState(counter=%d, balance=%d, day=%d/%d, meal=%d/%d, credit=%d, offline=%d)" % (
            self.counter, self.balance, self.day, self.day_total, self.meal_period, self.meal_total,
            self.credit_used, self.offline_spend)


_STATE_FIELDS = ("flags", "pin_retries", "counter", "balance", "day", "day_total", "meal_period",
                 "gen", "meal_total", "credit_used", "offline_spend", "pin_check", "txn_terminal", "txn_seq")


@micropython.native
def _state_mac(purse_key, uid, body):
    return crypto.hmac_sha256_2(purse_key, uid, body)[:8]


@micropython.native
def encode_state_into(buf, st, purse_key, uid):
    """Write the 48-byte slot (three blocks) for ``st`` into ``buf``, MAC bound to UID and counter."""
    if st.pin_retries > 15 or st.flags & 0x0F or st.meal_period > 15 or not 0 <= st.gen <= 15:
        raise CardFormatError("PIN retries, meal period and generation must be 0..15; flags the high nibble")
    struct.pack_into(_STATE_FMT, buf, 0, st.flags | st.pin_retries, st.counter, st.balance, st.day,
                     st.day_total, st.meal_period | (st.gen << 4), st.meal_total, st.credit_used, st.offline_spend,
                     st.pin_check, st.txn_terminal, st.txn_seq)
    mv = memoryview(buf)
    mv[_STATE_MAC:STATE_SIZE] = _state_mac(purse_key, uid, mv[:_STATE_MAC])


def encode_state(st, purse_key, uid):
    buf = bytearray(STATE_SIZE)
    encode_state_into(buf, st, purse_key, uid)
    return bytes(buf)


@micropython.native
def decode_state_into(st, data, purse_key, uid):
    """Fill ``st`` from a 48-byte slot; ``CardFormatError`` if its MAC fails (torn or forged)."""
    _check_len(data, STATE_SIZE, "purse state")
    mv = memoryview(data)
    if not crypto.compare_digest(_state_mac(purse_key, uid, mv[:_STATE_MAC]), mv[_STATE_MAC:STATE_SIZE]):
        raise CardFormatError("purse state MAC does not match card %s" % _hex(uid))
    (fr, st.counter, st.balance, st.day, st.day_total, mg, st.meal_total, st.credit_used,
     st.offline_spend, st.pin_check, st.txn_terminal, st.txn_seq) = struct.unpack_from(_STATE_FMT, data, 0)
    st.flags = fr & 0xF0
    st.pin_retries = fr & 0x0F
    st.meal_period = mg & 0x0F
    st.gen = mg >> 4
    return st


@micropython.native
def newer_slot(gen0, gen1):
    """Index (0 or 1) of the newer of two valid slots from their 4-bit write generations.

    Each state write goes to the other slot with generation + 1 (mod 16), so two valid slots
    always differ by exactly one step.
    """
    return 1 if (gen1 - gen0) & 0x0F == 1 else 0


@micropython.native
def next_gen(gen):
    return (gen + 1) & 0x0F


@micropython.native
def state_gen(data):
    """Write generation of a raw slot, read before its MAC is checked: which slot to verify first."""
    return data[_GEN_BYTE] >> 4


def decode_state(data, purse_key, uid):
    return decode_state_into(PurseState(), data, purse_key, uid)


def pin_check_int(purse_key, uid, pin):
    """The ``pin_check`` field of the purse state for ``pin``: its check value as an integer."""
    return struct.unpack("<I", crypto.pin_check_value(purse_key, uid, pin))[0]


# --- load register ----------------------------------------------------------------------


def encode_load_register(last_seq, purse_key, uid):
    """Block 10: the sequence number of the last server load applied to this card, MAC'd."""
    buf = bytearray(16)
    struct.pack_into("<I", buf, 0, last_seq)
    buf[8:16] = crypto.hmac_sha256(purse_key, b"L" + bytes(uid) + bytes(buf[:8]))[:8]
    return bytes(buf)


def decode_load_register(block, purse_key, uid):
    _check_len(block, 16, "load register")
    mv = memoryview(block)
    if not crypto.compare_digest(crypto.hmac_sha256(purse_key, b"L" + bytes(uid) + bytes(mv[:8]))[:8],
                                 mv[8:16]):
        raise CardFormatError("load register MAC does not match card %s" % _hex(uid))
    return struct.unpack_from("<I", block, 0)[0]


def _hex(data):
    return "".join("%02X" % b for b in data)


def uid_hex(uid):
    """Upper-case hex of a UID, as shown to users (``04A1B2C3``)."""
    return _hex(uid)
