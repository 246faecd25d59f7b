"""The terminal's blacklist of lost and frozen cards, on flash, with its freshness.

A :class:`firmware.uidstore.UidStore` holds the list (searched in place, RAM independent of
its size); this module adds what the POS application needs: a lookup straight from the UID
buffer the reader filled, applying the server's "blacklist" messages (full list or delta),
the time of the last successful update (persisted, for the freshness rule) and compaction
in idle time.

Usage::

    from firmware.blacklist import Blacklist
    bl = Blacklist("/flash/blacklist")
    if bl.is_blacklisted(uid_mv, uid_len):
        refuse()
    try:
        bl.apply(msg_fields, now)        # fields of a "blacklist" message
    except VersionMismatch:
        ask_server(since=0)              # a delta we cannot apply: get the full list
    if bl.age_s(now) > max_age:
        warn()
    bl.compact_if_idle()                 # when no card is being served
    w = bl.begin_full(version)           # a full list streamed in pieces
    w.write_chunk(piece); ...; w.commit(); bl.mark_updated(now)
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

import os

from firmware.flashfs import read_tagged, write_tagged
from firmware.uidstore import UidStore, UidStoreError, VersionMismatch
from protocol import uidlist

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_EEXIST = const(17)
_META_MAGIC = b"BLUA"

__all__ = ("Blacklist", "UidStoreError", "VersionMismatch")


class Blacklist:
    """Blacklist in ``root_dir`` (created if missing).

    :param compact_threshold: ``compact_if_idle`` merges the overlay above this many entries
    """

    def __init__(self, root_dir, compact_threshold=256):
        try:
            os.mkdir(root_dir)
        except OSError as e:
            if e.args[0] != _EEXIST:
                raise e
        self._root = root_dir.rstrip("/")
        self._store = UidStore(self._root + "/blacklist")
        self._key = bytearray(7)
        self._threshold = compact_threshold
        self.updated_at = self._read_meta()

    @property
    def version(self):
        return self._store.version

    def count(self):
        return self._store.count()

    @micropython.native
    def is_blacklisted(self, uid_mv, uid_len):
        """True if the card whose UID is the first ``uid_len`` (4 or 7) bytes of ``uid_mv``
        is on the list. Allocates nothing."""
        return self._store.contains(uidlist.uid_key_into(self._key, uid_mv, uid_len))

    def apply(self, fields, now):
        """Apply the fields of a "blacklist" message (``version``, ``full``, ``since``,
        ``added``, ``removed``) and record ``now`` as the time of the last update.

        The list is written first and the time second, so a power cut between them makes the
        list look older than it is, never fresher.

        :raises VersionMismatch: a delta from another version: ask for the full list
        :raises UidStoreError: a malformed list (the old one stays in force)
        """
        if fields["full"]:
            self._store.replace_full(fields["version"], fields["added"])
        else:
            self._store.apply_delta(fields["since"], fields["version"], fields["added"],
                                    fields["removed"])
        self.mark_updated(now)

    def begin_full(self, version):
        """Stream a full list too big for one message (``UidStore.begin_full``); after the
        writer's ``commit()`` call ``mark_updated(now)``."""
        return self._store.begin_full(version)

    def mark_updated(self, now):
        """Persist ``now`` as the time of the last complete update from the server."""
        write_tagged(self._root + "/updated", _META_MAGIC, now)
        self.updated_at = now

    def age_s(self, now):
        """Seconds since the last successful update (``now`` itself if there never was one)."""
        return now - self.updated_at

    def compact_if_idle(self):
        """Merge the overlay into the base if it holds more than the threshold; True if so."""
        if self._store.overlay_size() > self._threshold:
            self._store.compact()
            return True
        return False

    def compact(self):
        self._store.compact()

    def _read_meta(self):
        return read_tagged(self._root + "/updated", _META_MAGIC)
