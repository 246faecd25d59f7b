"""Fixed-width card UID keys and the packed sorted lists built from them.

A UID key is 7 bytes: a 7-byte UID as it is, a 4-byte UID left-padded with three zero bytes
(no 7-byte UID starts with 0x00: byte 0 is the manufacturer code). Blacklists, access lists
and blacklist deltas carry UID keys packed back to back in ascending order, so terminals
search them by bisection straight from flash.

Usage::

    from protocol import uidlist
    blob = uidlist.pack([b"\\x04\\xa1\\xb2\\xc3", seven_byte_uid])
    uidlist.contains(blob, uidlist.uid_key(b"\\x04\\xa1\\xb2\\xc3"))  # True
"""

from protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

KEY_SIZE = const(7)
PAD4 = b"\x00\x00\x00"  # a 4-byte UID's key is these bytes and the UID


def uid_key(uid):
    """The 7-byte sortable key of a 4- or 7-byte UID."""
    n = len(uid)
    if n == 4:
        return PAD4 + bytes(uid)
    if n == 7:
        if uid[0] == 0:
            raise ProtocolError("7-byte UID may not start with 0x00")
        return bytes(uid)
    raise ProtocolError("card UID must be 4 or 7 bytes, got %d" % n)


def uid_key_into(buf, uid_mv, uid_len):
    """Write the 7-byte key of the first ``uid_len`` bytes of ``uid_mv`` into ``buf`` without
    allocating (a terminal does this on every tap)."""
    if uid_len == 4:
        buf[0] = 0
        buf[1] = 0
        buf[2] = 0
        for i in range(4):
            buf[3 + i] = uid_mv[i]
    elif uid_len == 7:
        for i in range(7):
            buf[i] = uid_mv[i]
    else:
        raise ProtocolError("card UID must be 4 or 7 bytes, got %d" % uid_len)
    return buf


def uid_from_key(key):
    """Inverse of ``uid_key``."""
    if len(key) != KEY_SIZE:
        raise ProtocolError("UID key must be 7 bytes, got %d" % len(key))
    if key[0] == 0:
        return bytes(key[3:])
    return bytes(key)


def pack(uids):
    """Sorted, de-duplicated UID keys packed back to back."""
    keys = sorted(set(uid_key(u) for u in uids))
    return b"".join(keys)


def count(blob):
    if len(blob) % KEY_SIZE:
        raise ProtocolError("UID list length %d is not a multiple of 7" % len(blob))
    return len(blob) // KEY_SIZE


def check_sorted(blob):
    """``ProtocolError`` unless ``blob`` is strictly ascending 7-byte keys."""
    n = count(blob)
    mv = memoryview(blob)
    for i in range(1, n):
        if bytes(mv[(i - 1) * KEY_SIZE:i * KEY_SIZE]) >= bytes(mv[i * KEY_SIZE:(i + 1) * KEY_SIZE]):
            raise ProtocolError("UID list not strictly ascending at entry %d" % i)


def unpack(blob):
    """The UIDs of a packed list, in order."""
    n = count(blob)
    return [uid_from_key(blob[i * KEY_SIZE:(i + 1) * KEY_SIZE]) for i in range(n)]


def contains(blob, key):
    """Bisection search of a packed in-memory list."""
    lo, hi = 0, count(blob)
    mv = memoryview(blob)
    while lo < hi:
        mid = (lo + hi) // 2
        probe = bytes(mv[mid * KEY_SIZE:(mid + 1) * KEY_SIZE])
        if probe < key:
            lo = mid + 1
        elif probe > key:
            hi = mid
        else:
            return True
    return False
