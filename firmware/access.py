"""A door's two access lists on flash, the decision "may this card enter now?", and their sync.

The server computes two UID lists per door group:

========  ===========  ==================================================================
list      name         cards
========  ===========  ==================================================================
0         ``allow``    allowed outside the curfew window (residents, building grants)
1         ``anytime``  allowed also during the curfew (staff, dorm managers, individual
                       anytime grants)
========  ===========  ==================================================================

During the curfew window (params ``door_curfew_start`` .. ``door_curfew_end``, local
minutes, end exclusive, equal = no curfew, start > end wraps midnight) a card must be in list
1; otherwise in list 0 or 1. Temporary cards reach a list only through an individual grant
(the server sees to it) and expired grants leave by a delta, so the door checks membership
only. Each list is a :class:`firmware.uidstore.UidStore`: sorted 7-byte UID keys searched by
bisection on flash (RAM does not grow with the list: 20,000 cards a door), replaced
atomically (a power cut leaves the old or the new list, never a mix).

Decision codes (``aux`` of DOOR_GRANTED / DOOR_DENIED records; ``firmware.door`` adds the
card checks made before the lists are asked):

===  ======================  ==================================================
0    ``GRANTED``             the lock opens
1    ``DENY_NOT_LISTED``     in neither list of this door
2    ``DENY_CURFEW``         in list 0 only, tapped during the curfew window
3    ``DENY_BLACKLISTED``    on the blacklist (lost, frozen, replaced card)
4    ``DENY_EXPIRED``        validity period over
5    ``DENY_NOT_YET_VALID``  validity period not begun
6    ``DENY_IDENTITY_MAC``   identity sector fails the issuer MAC: cloned/altered
7    ``DENY_NOT_CAMPUS``     sector 1 refuses the campus key: not a card of ours
===  ======================  ==================================================

``version()`` is the sum of the two lists' versions (the heartbeat's ``access_version``): it
grows with every change the door takes, so the server sees a door that is behind.

Sync (``sync_step``, one request per call, from ``firmware.sync``): for list 0 then list 1,
``access_req {since: version held, hash: 16-byte hash of the list held, list, offset}``.
The answer ``access {version, hash, full, added, removed, list, since, offset, total}`` is

* a delta (``full`` false): ``apply_delta(since, version, added, removed)``; a delta from
  another version than the one held, or a list whose hash differs from the answer's
  ``hash`` after applying it, makes the door ask again with ``since`` 0 for the whole list;
* a full list (``full`` true), in pages: ``added`` holds entries ``offset`` .. of ``total``;
  the pages stream into a new file (``begin_full`` / ``write_chunk`` / ``commit(hash)``) that
  replaces the list only when the last page is in and the hash matches.

A list's hash is the first 16 bytes of SHA-256 of its packed ascending 7-byte keys
(``protocol.uidlist``), the same as the server computes (an empty list: SHA-256 of no bytes);
an answer with an empty ``hash`` is not checked.

Usage::

    acl = AccessLists("/flash/access", params)
    reason = acl.allowed(uid_mv, uid_len, limits.local_minute(now, params.tz_offset_s))
    if reason == GRANTED:
        relay.pulse(params.door_pulse_ms)
    sync = Sync(..., access=acl)         # the sync client calls acl.sync_step(sync)
"""

import os
import sys

from firmware.uidstore import UidStore, UidStoreError, VersionMismatch
from protocol import uidlist

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

GRANTED = const(0)
DENY_NOT_LISTED = const(1)
DENY_CURFEW = const(2)
DENY_BLACKLISTED = const(3)
DENY_EXPIRED = const(4)
DENY_NOT_YET_VALID = const(5)
DENY_IDENTITY_MAC = const(6)
DENY_NOT_CAMPUS = const(7)

LIST_ALLOW = const(0)
LIST_ANYTIME = const(1)
LIST_NAMES = ("allow", "anytime")

_K = const(7)
_EEXIST = const(17)
_MAX_RESTARTS = const(3)  # a full list that changes under us more often than this: try next sync


def in_curfew(minute, start, end):
    """True if local ``minute`` (0..1439) falls in the curfew ``start`` .. ``end`` (exclusive).

    Equal bounds: no curfew. ``start > end`` wraps midnight: (1410, 360) is 23:30-06:00.
    """
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


class AccessSyncError(Exception):
    """An unusable ``access`` answer, when no ``firmware.sync`` client is loaded (tests)."""


def _fail(msg):
    # firmware.sync.SyncError, which the sync client catches: it is loaded whenever the sync
    # client calls sync_step. Importing it here would cost a test harness 30 KB of heap.
    mod = sys.modules.get("firmware.sync")
    raise (mod.SyncError if mod is not None else AccessSyncError)(msg)


class AccessLists:
    """The door's lists 0 and 1 in ``root_dir`` (created if missing).

    :param params: a ``firmware.params.Params`` (``door_curfew_start``/``_end``); None: no curfew
    """

    def __init__(self, root_dir, params=None):
        try:
            os.mkdir(root_dir)
        except OSError as e:
            if e.args[0] != _EEXIST:
                raise
        root = root_dir.rstrip("/")
        self._lists = (UidStore(root + "/" + LIST_NAMES[0]), UidStore(root + "/" + LIST_NAMES[1]))
        self._params = params
        self._key = bytearray(_K)
        self._hash = [None, None]  # list hashes, computed when first needed after a change
        # Sync state: list being synced, full list wanted, writer and next page of a full list.
        self._si = 0
        self._want_full = False
        self._writer = None
        self._wversion = 0
        self._offset = 0
        self._restarts = 0

    def close(self):
        """Close the list files (before unmounting the flash, or in tests)."""
        self._abort()
        for s in self._lists:
            s._close()

    # -- lookups ---------------------------------------------------------------------------

    def version(self):
        """The sum of both lists' versions (heartbeat ``access_version``)."""
        return self._lists[0].version + self._lists[1].version

    def list_version(self, i):
        return self._lists[i].version

    def count(self, i):
        return self._lists[i].count()

    def list_hash(self, i):
        """First 16 bytes of SHA-256 of list ``i`` in force (cached until it changes)."""
        h = self._hash[i]
        if h is None:
            h = self._hash[i] = self._lists[i].list_hash()
        return h

    def _key_of(self, uid_mv, uid_len):
        return uidlist.uid_key_into(self._key, uid_mv, uid_len)

    def listed(self, i, uid_mv, uid_len):
        """True if the card is in list ``i``. Allocates nothing."""
        return self._lists[i].contains(self._key_of(uid_mv, uid_len))

    def allowed(self, uid_mv, uid_len, local_minute):
        """``GRANTED`` (0) if the card may enter at ``local_minute`` of the local day, else
        ``DENY_NOT_LISTED`` or ``DENY_CURFEW``. Reads flash only; allocates nothing."""
        k = self._key_of(uid_mv, uid_len)
        if self._lists[LIST_ANYTIME].contains(k):
            return GRANTED
        if self._lists[LIST_ALLOW].contains(k):
            p = self._params
            if p is not None and in_curfew(local_minute, p.door_curfew_start, p.door_curfew_end):
                return DENY_CURFEW
            return GRANTED
        return DENY_NOT_LISTED

    # -- local changes (service lines, tests) ----------------------------------------------

    def change(self, i, key, add):
        """Add or remove one 7-byte UID key in list ``i`` as a local delta (version + 1)."""
        s = self._lists[i]
        v = s.version
        s.apply_delta(v, v + 1, key if add else b"", b"" if add else key)
        self._hash[i] = None

    def replace(self, i, version, blob, hash=None):
        """Replace list ``i`` by the packed ascending keys ``blob`` at ``version`` (atomic).

        :raises UidStoreError: unsorted keys or hash mismatch (the old list stays)
        """
        self._lists[i].replace_full(version, blob, hash)
        self._hash[i] = None

    def compact_if_idle(self, threshold=256):
        """Merge an overlay of more than ``threshold`` entries into its base; True if one was."""
        done = False
        for s in self._lists:
            if s.overlay_size() > threshold:
                s.compact()
                done = True
        return done

    # -- sync ------------------------------------------------------------------------------

    def sync_step(self, sync):
        """One ``access`` request of the sync cycle; True while more are needed.

        :raises SyncError: the server answered something unusable (the lists in force stay);
            ``AccessSyncError`` when ``firmware.sync`` is not loaded
        :raises HttpError: from ``sync.request``, the network failed (the lists stay)
        """
        try:
            more = self._step(sync)
        except Exception:
            self._abort()
            self._reset()
            raise
        if not more:
            self._reset()
            self.compact_if_idle()
        return more

    def _reset(self):
        self._si = 0
        self._want_full = False
        self._restarts = 0

    def _abort(self):
        w = self._writer
        self._writer = None
        self._offset = 0
        if w is not None:
            try:
                w.abort()
            except OSError:
                pass  # flash failing: the leftover .tmp file goes when the list is next opened

    def _next(self):
        self._want_full = False
        self._restarts = 0
        self._si += 1
        return self._si < len(self._lists)

    def _step(self, sync):
        i = self._si
        s = self._lists[i]
        full = self._want_full or self._writer is not None
        fields = {"since": 0 if full else s.version, "hash": b"" if full else self.list_hash(i),
                  "list": i, "offset": self._offset, "max": sync.page_keys}
        ans = sync.request("access", "access_req", fields, "access")
        if ans.get("list", i) != i:
            _fail("asked for access list %d, got list %r" % (i, ans.get("list")))
        if ans["full"]:
            return self._page(i, ans)
        if full:
            _fail("asked for access list %d in full, got a delta" % i)
        version = ans["version"]
        if version != s.version or ans["added"] or ans["removed"]:
            try:
                s.apply_delta(ans.get("since", -1), version, ans["added"], ans["removed"])
            except VersionMismatch:
                self._want_full = True  # a delta from another version: take the whole list
                return True
            except UidStoreError as e:
                _fail("bad access list %d delta: %s" % (i, e))
            self._hash[i] = None
        h = ans["hash"]
        if h and self.list_hash(i)[:len(h)] != h:
            self._want_full = True  # the lists diverged: take the whole list
            return True
        return self._next()

    def _page(self, i, ans):
        added = ans["added"]
        version = ans["version"]
        offset = ans.get("offset", 0)
        total = ans.get("total", len(added) // _K)
        h = ans["hash"]
        if (self._writer is None and not self._want_full and version == self._lists[i].version and h
                and self.list_hash(i)[:len(h)] == h):
            return self._next()  # the whole list, but it is the one held: nothing to write
        if self._writer is None:
            if offset != 0:
                _fail("access list %d page at %d without its start" % (i, offset))
            self._writer = self._lists[i].begin_full(version)
            self._wversion = version
            self._offset = 0
        elif version != self._wversion or offset != self._offset:
            self._abort()  # the list changed between pages: start again
            self._restarts += 1
            if self._restarts > _MAX_RESTARTS:
                _fail("access list %d keeps changing while it is sent" % i)
            self._want_full = True
            return True
        try:
            self._writer.write_chunk(added)
        except UidStoreError as e:
            _fail("bad access list %d page at %d: %s" % (i, offset, e))
        self._offset = offset + len(added) // _K
        if self._offset < total:
            if not added:
                _fail("empty access list %d page at %d of %d" % (i, offset, total))
            return True
        w = self._writer
        self._writer = None
        self._offset = 0
        try:
            w.commit(h or None)
        except UidStoreError as e:
            _fail("access list %d: %s" % (i, e))
        self._hash[i] = None
        return self._next()
