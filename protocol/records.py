"""The 64-byte signed record a terminal logs for every event, hash-chained per terminal.

======  ====  ============================================================
Offset  Size  Field
======  ====  ============================================================
0       1     version (1)
1       1     type (PURCHASE, LOAD, PIN_CHANGE, PIN_LOCK, DOOR_GRANTED, ...)
2       1     flags (OFFLINE, UNAUTHORISED_OFFLINE, CREDIT_USED, PIN_VERIFIED, ...)
3       1     UID length (4 or 7)
4       4     terminal id
8       4     terminal sequence number (1, 2, 3, ... without gaps)
12      4     UTC time, seconds
16      7     card UID, zero padded
23      1     meal period (0 when none)
24      4     card transaction counter after the event
28      4     amount, signed cents (debit positive, load positive)
32      4     balance before, signed cents
36      4     balance after, signed cents
40      4     aux: load sequence, original terminal (repair) or door decision code
44      8     link: first 8 bytes of SHA-256 of the previous record (zeros for seq 1)
52      4     aux2: original sequence (repair), access-list version (door records)
56      8     MAC: HMAC-SHA256 with the terminal key over bytes 0-55, truncated
======  ====  ============================================================

All integers little-endian. Changing any byte makes ``verify`` fail.

Usage::

    from protocol import records
    buf = bytearray(records.RECORD_SIZE)
    records.encode_into(buf, records.PURCHASE, 0, 1001, 1, now, uid, 5, 1200, 5000, 3800)
    records.sign_into(buf, terminal_key, prev_link)
    rec = records.decode(buf)            # Record with named fields
    records.verify(buf, terminal_key)    # True or False
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

import struct

from protocol import crypto
from protocol.errors import RecordError

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

RECORD_SIZE = const(64)
VERSION = const(1)
LINK_SIZE = const(8)
MAC_SIZE = const(8)
_LINK_AT = const(44)
_MAC_AT = const(56)
_BODY_FMT = "<BBBBIII7sBIiiiI"  # bytes 0..43
_AUX2_FMT = "<I"

PURCHASE = const(1)
LOAD = const(2)
PIN_CHANGE = const(3)
PIN_LOCK = const(4)
DOOR_GRANTED = const(5)
DOOR_DENIED = const(6)
TEARING_REPAIR = const(7)
TYPE_NAMES = ("", "purchase", "load", "pin-change", "pin-lock", "door-granted", "door-denied",
              "tearing-repair")

FLAG_OFFLINE = const(0x01)
FLAG_UNAUTHORISED_OFFLINE = const(0x02)
FLAG_CREDIT_USED = const(0x04)
FLAG_PIN_VERIFIED = const(0x08)
FLAG_DOUBLE_TAP_CONFIRMED = const(0x10)
FLAG_ROLLED_BACK = const(0x20)  # a tearing repair that undid an uncommitted transaction

GENESIS_LINK = bytes(LINK_SIZE)


class Record:
    """A decoded record; attribute names follow the table in the module docstring."""

    def __init__(self, fields, link, mac):
        (self.version, self.type, self.flags, uid_len, self.terminal_id, self.seq, self.time, uid,
         self.meal_period, self.counter, self.amount, self.balance_before, self.balance_after,
         self.aux, self.aux2) = fields
        self.uid = uid[:uid_len]
        self.link = link
        self.mac = mac

    def type_name(self):
        return TYPE_NAMES[self.type] if 0 < self.type < len(TYPE_NAMES) else "unknown"

    def __repr__(self):
        return "Record(%s t%d#%d uid=%s ctr=%d amount=%d %d->%d)" % (
            self.type_name(), self.terminal_id, self.seq, crypto_hex(self.uid), self.counter,
            self.amount, self.balance_before, self.balance_after)


def crypto_hex(data):
    return "".join("%02X" % b for b in data)


@micropython.native
def encode_into(buf, rtype, flags, terminal_id, seq, ts, uid, counter, amount, before, after,
                aux=0, aux2=0, meal_period=0):
    """Fill bytes 0-55 of ``buf`` (link and MAC are set by ``sign_into``)."""
    n = len(uid)
    if n != 4 and n != 7:
        raise RecordError("card UID must be 4 or 7 bytes, got %d" % n)
    if not 0 < rtype < len(TYPE_NAMES):
        raise RecordError("unknown record type %d" % rtype)
    if ts < 946684800:  # 2000-01-01: a clock that never got set must not sign records
        raise RecordError("refusing to date a record %d: the clock is not set" % ts)
    struct.pack_into(_BODY_FMT, buf, 0, VERSION, rtype, flags, n, terminal_id, seq, ts, bytes(uid),
                     meal_period, counter, amount, before, after, aux)
    struct.pack_into(_AUX2_FMT, buf, 52, aux2)


@micropython.native
def sign_into(buf, key, prev_link):
    """Set the chain link to ``prev_link`` and the MAC under the terminal ``key``."""
    mv = memoryview(buf)
    mv[_LINK_AT:_LINK_AT + LINK_SIZE] = prev_link
    mv[_MAC_AT:RECORD_SIZE] = crypto.hmac_sha256(key, mv[:_MAC_AT])[:MAC_SIZE]


@micropython.native
def link_of(rec):
    """The link the next record carries: the first 8 bytes of SHA-256 of this record."""
    return crypto.sha256(rec)[:LINK_SIZE]


def verify(rec, key):
    """True if the record is 64 bytes, of a known version and its MAC matches ``key``."""
    if len(rec) != RECORD_SIZE or rec[0] != VERSION:
        return False
    mv = memoryview(rec)
    return crypto.compare_digest(crypto.hmac_sha256(key, mv[:_MAC_AT])[:MAC_SIZE], mv[_MAC_AT:RECORD_SIZE])


def check(rec, key):
    """Like ``verify`` but raise ``RecordError`` saying what is wrong."""
    if len(rec) != RECORD_SIZE:
        raise RecordError("record must be %d bytes, got %d" % (RECORD_SIZE, len(rec)))
    if rec[0] != VERSION:
        raise RecordError("record version %d, expected %d" % (rec[0], VERSION))
    if not verify(rec, key):
        raise RecordError("record MAC does not match the terminal key")


def decode(rec):
    """Parse a record (signature not checked); ``RecordError`` if malformed."""
    if len(rec) != RECORD_SIZE:
        raise RecordError("record must be %d bytes, got %d" % (RECORD_SIZE, len(rec)))
    fields = struct.unpack_from(_BODY_FMT, rec, 0) + struct.unpack_from(_AUX2_FMT, rec, 52)
    if fields[0] != VERSION:
        raise RecordError("record version %d, expected %d" % (fields[0], VERSION))
    if fields[3] != 4 and fields[3] != 7:
        raise RecordError("record UID length %d, expected 4 or 7" % fields[3])
    mv = memoryview(rec)
    return Record(fields, bytes(mv[_LINK_AT:_LINK_AT + LINK_SIZE]), bytes(mv[_MAC_AT:RECORD_SIZE]))


def seq_of(rec):
    """The terminal sequence number of an encoded record, without decoding the rest."""
    return struct.unpack_from("<I", rec, 8)[0]


def prev_link_of(rec):
    return bytes(memoryview(rec)[_LINK_AT:_LINK_AT + LINK_SIZE])


def build(key, prev_link, rtype, flags, terminal_id, seq, ts, uid, counter, amount, before, after,
          aux=0, aux2=0, meal_period=0):
    """Encode and sign a record in one call (host tools and tests); returns 64 bytes."""
    buf = bytearray(RECORD_SIZE)
    encode_into(buf, rtype, flags, terminal_id, seq, ts, uid, counter, amount, before, after, aux, aux2,
                meal_period)
    sign_into(buf, key, prev_link)
    return bytes(buf)
