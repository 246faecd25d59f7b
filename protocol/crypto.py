"""HMAC-SHA256, constant-time compare and key diversification, on MicroPython and CPython.

MicroPython has ``hashlib.sha256`` but no ``hmac``, so HMAC is built per RFC 2104 here; on
CPython the stdlib's C implementation gives the same bytes faster. Every derived key is an
HMAC of a fixed label, the object's identity and the master key, so one master yields
independent keys per card, sector and terminal (sector keys five to an HMAC: a tap needs
sectors 1-4 of a card, one HMAC). On MicroPython the hot path allocates little: pads and
derivation messages live in buffers made once (a tap derives three keys of a new card and
checks or makes four MACs).

Usage::

    from protocol import crypto
    mac = crypto.hmac_sha256(key, b"message")
    ka = crypto.card_sector_key(card_master, uid, 2, crypto.KEY_A)   # 6-byte MIFARE key
    pk = crypto.purse_mac_key(card_master, uid)                      # 16 bytes
    tk = crypto.terminal_key(terminal_master, 1001)                  # 32 bytes
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity
    from protocol.compat import ptr8  # CPython reads viper annotations

import hashlib
import struct

from protocol.errors import CryptoError

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

try:  # CPython: the C HMAC; MicroPython has no hmac module.
    import hmac as _hmac

    _HAVE_HMAC = True
except ImportError:
    _HAVE_HMAC = False

KEY_A = const(0x60)  # MIFARE AUTH A command code, also names key A
KEY_B = const(0x61)

_BLOCK = const(64)  # SHA-256 block size (RFC 2104 "B")
_IPAD = const(0x36)
_OPAD = const(0x5C)

_LABEL_SECTOR = b"campuscard/sector-keys/v2"
_GROUP = const(5)  # sector keys per derivation: 5 x 6 bytes of one HMAC
_LABEL_PURSE = b"campuscard/purse-mac/v1"
_LABEL_ISSUER = b"campuscard/issuer-mac/v1"
_LABEL_PIN = b"campuscard/pin-check/v1"
_LABEL_TERMINAL = b"campuscard/terminal-key/v1"

# The padded key blocks of the last few keys, [key, ipad, opad] each: a terminal MACs with the
# same keys again and again (its own key for records; during a tap, the two master keys and
# the card's issuer and purse keys), and padding a key costs more than the two hashes of a
# short message. The pad buffers are allocated once and rewritten in place when an entry is
# replaced: a caller uses them before its next HMAC (HmacSha256 keeps a copy).
_PAD_KEYS = const(8)
_pad_cache = [None] * (3 * _PAD_KEYS)  # type: list[bytes | bytearray | None]
for _i in range(0, 3 * _PAD_KEYS, 3):
    _pad_cache[_i + 1] = bytearray(_BLOCK)
    _pad_cache[_i + 2] = bytearray(_BLOCK)
_pad_next = [0]  # the entry to replace next
# A key derivation's message (label, sector, UID), built in place on MicroPython.
_MSG = bytearray(48)
# The last group of sector keys derived on MicroPython: a tap needs sectors 1-4 of one card,
# all in group 0, so one HMAC gives them all. [master, uid bytes, key type, group, 30 bytes].
_group = [None, None, 0, -1, None]  # type: list


@micropython.viper
def _xor_into(dst: ptr8, key: ptr8, n: int, pad: int):
    """dst[0:64] = the ``n``-byte key, zero-padded to 64 bytes, XOR ``pad``."""
    i = 0
    while i < n:
        dst[i] = key[i] ^ pad
        i += 1
    while i < 64:
        dst[i] = pad
        i += 1


@micropython.viper
def _put(dst: ptr8, at: int, src: ptr8, n: int) -> int:
    """dst[at:at + n] = src[:n]; returns at + n."""
    i = 0
    while i < n:
        dst[at + i] = src[i]
        i += 1
    return at + n


@micropython.native
def _pads(key):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    c = _pad_cache
    for i in range(0, 3 * _PAD_KEYS, 3):
        if c[i] == key:
            return c[i + 1], c[i + 2]
    i = _pad_next[0]
    _pad_next[0] = (i + 3) % (3 * _PAD_KEYS)
    c[i] = None  # an entry is complete only once its key is set
    _xor_into(c[i + 1], key, len(key), _IPAD)
    _xor_into(c[i + 2], key, len(key), _OPAD)
    c[i] = bytes(key)
    return c[i + 1], c[i + 2]


@micropython.native
def hmac_sha256_py(key, msg, msg2=None):
    """HMAC-SHA256 per RFC 2104 on ``hashlib.sha256`` alone (the MicroPython path), of ``msg``
    followed by ``msg2`` if given (no concatenation)."""
    ipad, opad = _pads(key)
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    if msg2 is not None:
        inner.update(msg2)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


@micropython.native
def hmac_sha256(key, msg):
    """HMAC-SHA256 of ``msg`` under ``key`` (bytes-like); 32 bytes."""
    if _HAVE_HMAC:
        return _hmac.digest(bytes(key), bytes(msg), "sha256")
    return hmac_sha256_py(key, msg)


@micropython.native
def hmac_sha256_2(key, msg, msg2):
    """HMAC-SHA256 of ``msg`` followed by ``msg2`` (e.g. a UID and a block), without joining them."""
    if _HAVE_HMAC:
        return _hmac.digest(bytes(key), bytes(msg) + bytes(msg2), "sha256")
    return hmac_sha256_py(key, msg, msg2)


class HmacSha256:
    """Incremental HMAC-SHA256 (RFC 2104) for messages streamed in pieces."""

    def __init__(self, key):
        ipad, opad = _pads(key)
        self._outer_key = bytes(opad)  # the cache entry may be rewritten before digest()
        self._inner = hashlib.sha256(ipad)

    @micropython.native
    def update(self, data):
        self._inner.update(data)

    @micropython.native
    def digest(self):
        outer = hashlib.sha256(self._outer_key)
        outer.update(self._inner.digest())
        return outer.digest()


@micropython.native
def compare_digest(a, b):
    """True if ``a`` equals ``b``, in time that depends on the length only."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def _uid_part(uid):
    n = len(uid)
    if n != 4 and n != 7:
        raise CryptoError("card UID must be 4 or 7 bytes, got %d" % n)
    return bytes([n]) + bytes(uid)


@micropython.native
def _master(master):
    if len(master) < 16:
        raise CryptoError("master key must be at least 16 bytes, got %d" % len(master))
    return master


@micropython.native
def _derive(master, label, b1, b2, uid):
    """HMAC(master, label [+ b1, b2] + len(uid) + uid): the message built in ``_MSG`` on
    MicroPython (a tap derives three keys of a new card), joined as bytes on CPython (threads)."""
    n = len(uid)
    if n != 4 and n != 7:
        raise CryptoError("card UID must be 4 or 7 bytes, got %d" % n)
    if _HAVE_HMAC:
        extra = bytes([b1, b2]) if b1 >= 0 else b""
        return hmac_sha256(_master(master), label + extra + bytes([n]) + bytes(uid))  # length checked above
    m = _MSG
    at = _put(m, 0, label, len(label))
    if b1 >= 0:
        m[at] = b1
        m[at + 1] = b2
        at += 2
    m[at] = n
    at = _put(m, at + 1, uid, n)
    return hmac_sha256_py(_master(master), memoryview(m)[:at])


@micropython.native
def card_sector_key(master, uid, sector, key_type):
    """The 6-byte MIFARE key A or B (``KEY_A``/``KEY_B``) of one sector of one card: bytes
    6 * (sector % 5) of the HMAC that derives the keys of sectors 5 * (sector // 5) onwards."""
    if key_type != KEY_A and key_type != KEY_B:
        raise CryptoError("key type must be 0x60 (A) or 0x61 (B), got 0x%02x" % key_type)
    if not 0 <= sector < 16:
        raise CryptoError("sector must be 0..15, got %d" % sector)
    group = sector // _GROUP
    at = 6 * (sector - group * _GROUP)
    if _HAVE_HMAC:  # CPython: no shared cache (server threads)
        return _derive(master, _LABEL_SECTOR, key_type, group, uid)[at:at + 6]
    g = _group
    if g[3] != group or g[2] != key_type or g[0] is not master or g[1] != uid:
        g[3] = -1  # complete only once every field is set
        g[4] = _derive(master, _LABEL_SECTOR, key_type, group, uid)
        g[0] = master
        g[1] = bytes(uid)
        g[2] = key_type
        g[3] = group
    return g[4][at:at + 6]


@micropython.native
def purse_mac_key(master, uid):
    """The 16-byte key that MACs this card's purse state."""
    return _derive(master, _LABEL_PURSE, -1, 0, uid)[:16]


@micropython.native
def issuer_mac_key(master, uid):
    """The 16-byte key of the card office's MAC over this card's identity sector."""
    return _derive(master, _LABEL_ISSUER, -1, 0, uid)[:16]


def pin_check_value(purse_key, uid, pin):
    """4-byte check value of a transaction PIN (digits as a str), kept on the card."""
    if not isinstance(pin, str) or not 4 <= len(pin) <= 6 or not pin.isdigit():
        raise CryptoError("PIN must be 4 to 6 digits")
    return hmac_sha256(purse_key, _LABEL_PIN + _uid_part(uid) + pin.encode())[:4]


def terminal_key(master, terminal_id):
    """The 32-byte key a terminal signs records and sync messages with."""
    if not 0 < terminal_id <= 0xFFFFFFFF:
        raise CryptoError("terminal id must be 1..4294967295, got %d" % terminal_id)
    return hmac_sha256(_master(master), _LABEL_TERMINAL + struct.pack(">I", terminal_id))


@micropython.native
def sha256(data):
    """SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()
