"""HMAC-SHA256, constant-time compare and key diversification, on MicroPython and CPython.

MicroPython has ``hashlib.sha256`` but no ``hmac``, so HMAC is built per RFC 2104 here; on
CPython the stdlib's C implementation gives the same bytes faster. Every derived key is an
HMAC of a fixed label, the object's identity and the master key, so one master yields
independent keys per card, sector and terminal.

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
_IPAD = int.from_bytes(b"\x36" * 64, "big")
_OPAD = int.from_bytes(b"\x5c" * 64, "big")

_LABEL_SECTOR = b"campuscard/sector-key/v1"
_LABEL_PURSE = b"campuscard/purse-mac/v1"
_LABEL_ISSUER = b"campuscard/issuer-mac/v1"
_LABEL_PIN = b"campuscard/pin-check/v1"
_LABEL_TERMINAL = b"campuscard/terminal-key/v1"

# The padded key blocks of the last few keys, [key, ipad, opad] each: a terminal MACs with the
# same keys again and again (its own key for records; during a tap, the card's issuer and
# purse keys), and padding a key costs more than the two hashes of a short message.
_PAD_KEYS = const(8)
_pad_cache = [None] * (3 * _PAD_KEYS)  # type: list[bytes | None]
_pad_next = [0]  # the entry to replace next


@micropython.native
def _xor(key, pad):
    """The 64-byte key block XOR ``pad``, as one big-int operation (a byte loop costs ~10x)."""
    k = int.from_bytes(bytes(key) + bytes(_BLOCK - len(key)), "big")
    return (k ^ pad).to_bytes(_BLOCK, "big")


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
    c[i + 1] = _xor(key, _IPAD)
    c[i + 2] = _xor(key, _OPAD)
    c[i] = bytes(key)
    return c[i + 1], c[i + 2]


@micropython.native
def hmac_sha256_py(key, msg):
    """HMAC-SHA256 per RFC 2104 on ``hashlib.sha256`` alone (the MicroPython path)."""
    ipad, opad = _pads(key)
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


@micropython.native
def hmac_sha256(key, msg):
    """HMAC-SHA256 of ``msg`` under ``key`` (bytes-like); 32 bytes."""
    if _HAVE_HMAC:
        return _hmac.digest(bytes(key), bytes(msg), "sha256")
    return hmac_sha256_py(key, msg)


class HmacSha256:
    """Incremental HMAC-SHA256 (RFC 2104) for messages streamed in pieces."""

    def __init__(self, key):
        ipad, self._outer_key = _pads(key)
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


@micropython.native
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
def card_sector_key(master, uid, sector, key_type):
    """The 6-byte MIFARE key A or B (``KEY_A``/``KEY_B``) of one sector of one card."""
    if key_type != KEY_A and key_type != KEY_B:
        raise CryptoError("key type must be 0x60 (A) or 0x61 (B), got 0x%02x" % key_type)
    if not 0 <= sector < 16:
        raise CryptoError("sector must be 0..15, got %d" % sector)
    msg = _LABEL_SECTOR + bytes([key_type, sector]) + _uid_part(uid)
    return hmac_sha256(_master(master), msg)[:6]


@micropython.native
def purse_mac_key(master, uid):
    """The 16-byte key that MACs this card's purse state."""
    return hmac_sha256(_master(master), _LABEL_PURSE + _uid_part(uid))[:16]


@micropython.native
def issuer_mac_key(master, uid):
    """The 16-byte key of the card office's MAC over this card's identity sector."""
    return hmac_sha256(_master(master), _LABEL_ISSUER + _uid_part(uid))[:16]


@micropython.native
def pin_check_value(purse_key, uid, pin):
    """4-byte check value of a transaction PIN (digits as a str), kept on the card."""
    if not isinstance(pin, str) or not 4 <= len(pin) <= 6 or not pin.isdigit():
        raise CryptoError("PIN must be 4 to 6 digits")
    return hmac_sha256(purse_key, _LABEL_PIN + _uid_part(uid) + pin.encode())[:4]


@micropython.native
def terminal_key(master, terminal_id):
    """The 32-byte key a terminal signs records and sync messages with."""
    if not 0 < terminal_id <= 0xFFFFFFFF:
        raise CryptoError("terminal id must be 1..4294967295, got %d" % terminal_id)
    return hmac_sha256(_master(master), _LABEL_TERMINAL + struct.pack(">I", terminal_id))


@micropython.native
def sha256(data):
    """SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()
