"""Pending loads on flash: online top-ups and balances moved from replaced cards, waiting for
their card to be tapped.

The server's ``loads`` message carries 16-byte entries (``protocol.messages.pack_load``: UID
key, kind, per-card load sequence, amount). They are kept in one file sorted by (UID key,
sequence) and found by bisection straight from the file, 16 bytes at a time, so RAM does not
grow with the list (no dict of UIDs). A new list replaces the old one atomically (write a new
file, rename it over the old one). The card's load register makes each load apply once: a
load applies only when its sequence is the card's last one plus one, so an entry already
applied is simply skipped until the server drops it from the list.

Usage::

    from firmware import pending_loads
    store = pending_loads.PendingLoads("/flash")
    store.replace(blob)                        # from the server's loads message
    if store.find(uid_mv, uid_len, last_seq):  # the card's next load, if any
        seq, amount, kind = store.seq, store.amount, store.kind
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

import os
import struct

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

ENTRY_SIZE = const(16)
_KEY = const(7)
FILE_NAME = "loads.bin"


class LoadsError(ValueError):
    """A loads list that is not whole 16-byte entries."""


def _entry_order(entry):
    # UID key, then the load sequence big-endian so byte order is numeric order.
    return bytes(entry[:_KEY]) + struct.pack(">I", struct.unpack_from("<I", entry, 8)[0])


class PendingLoads:
    """The sorted pending-load file under ``root``; one lookup at a time."""

    def __init__(self, root):
        self._path = root + "/" + FILE_NAME
        self._entry = bytearray(ENTRY_SIZE)
        self._key = bytearray(_KEY)
        self.seq = 0
        self.amount = 0
        self.kind = 0
        self.count = self._size() // ENTRY_SIZE

    def _size(self):
        try:
            return os.stat(self._path)[6]
        except OSError:
            return 0

    def replace(self, blob):
        """Store the server's list (entries in any order) in place of the old one.

        :raises LoadsError: ``blob`` is not whole 16-byte entries; the old list stays.
        """
        n = len(blob)
        if n % ENTRY_SIZE:
            raise LoadsError("loads list of %d bytes is not whole %d-byte entries" % (n, ENTRY_SIZE))
        entries = [bytes(blob[i:i + ENTRY_SIZE]) for i in range(0, n, ENTRY_SIZE)]
        entries.sort(key=_entry_order)
        tmp = self._path + ".new"
        with open(tmp, "wb") as f:
            for e in entries:
                f.write(e)
        os.rename(tmp, self._path)
        self.count = len(entries)

    def _set_key(self, uid_mv, uid_len):
        key = self._key
        if uid_len == 4:
            key[0] = key[1] = key[2] = 0
            for i in range(4):
                key[3 + i] = uid_mv[i]
        else:
            for i in range(7):
                key[i] = uid_mv[i]

    def _cmp_key(self):
        e = self._entry
        k = self._key
        for i in range(_KEY):
            if e[i] != k[i]:
                return -1 if e[i] < k[i] else 1
        return 0

    def _seek_card(self, f):
        """Index of the card's first entry in the open list ``f`` (key set), with the entry in
        ``_entry``; -1 if the list holds none for the card."""
        e = self._entry
        lo = 0
        hi = self.count
        while lo < hi:  # first entry whose key is >= the card's
            mid = (lo + hi) // 2
            f.seek(mid * ENTRY_SIZE)
            f.readinto(e)
            if self._cmp_key() < 0:
                lo = mid + 1
            else:
                hi = mid
        if lo == self.count:
            return -1
        f.seek(lo * ENTRY_SIZE)
        f.readinto(e)
        return lo if self._cmp_key() == 0 else -1

    @micropython.native
    def _open(self, uid_mv, uid_len):
        if self.count == 0:
            return None
        self._set_key(uid_mv, uid_len)
        try:
            return open(self._path, "rb")
        except OSError:
            return None

    @micropython.native
    def waiting(self, uid_mv, uid_len):
        """True if the list holds a load for this card (whatever its sequence): asking the
        card for its last applied load costs a card command, so ask only then."""
        f = self._open(uid_mv, uid_len)
        if f is None:
            return False
        try:
            return self._seek_card(f) >= 0
        finally:
            f.close()

    def find(self, uid_mv, uid_len, last_seq):
        """Look up the load with sequence ``last_seq + 1`` for this card.

        :returns: True and sets ``seq``, ``amount``, ``kind``; False when there is none.
        """
        f = self._open(uid_mv, uid_len)
        if f is None:
            return False
        want = last_seq + 1
        e = self._entry
        try:
            i = self._seek_card(f)
            if i < 0:
                return False
            while True:  # the card's entries, in sequence order
                kind, seq, amount = struct.unpack_from("<BIi", e, _KEY)
                if seq == want:
                    self.seq = seq
                    self.amount = amount
                    self.kind = kind
                    return True
                if seq > want:
                    return False
                i += 1
                if i == self.count:
                    return False
                f.seek(i * ENTRY_SIZE)
                f.readinto(e)
                if self._cmp_key() != 0:
                    return False
        finally:
            f.close()
