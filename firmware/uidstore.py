"""A persistent, versioned, sorted set of 7-byte UID keys on flash, searched in place.

Used for the blacklist and for door access lists. RAM use does not depend on the list
size: nothing but a few small buffers is held, lookups bisect the files with seek + readinto.

Files, for ``UidStore("/flash/bl")``:

* ``bl.lst`` — the base: ascending 7-byte keys (``protocol.uidlist``) back to back, then a
  36-byte trailer ``<4sIIII16s``: magic ``UIDL``, format 1, list version, generation,
  key count, first 16 bytes of SHA-256 of the keys. The trailer sits at the end so a
  streamed full list is written append-only (littlefs would copy the whole file to patch
  a header in front).
* ``bl.ovl`` — the overlay: recent changes, ascending 8-byte entries (key, op 1 = add,
  0 = remove), then a 20-byte trailer ``<4sIIII``: magic ``UIDO``, the generation of the base
  it applies to, the list version it brings the base to, adds, removes. Entries are
  normalised against that base: an add is never a key the base holds, a remove always is.

Every change writes a new file under a ``.tmp`` name and renames it over the old one
(atomic on littlefs), so a power cut leaves the old or the new list in force:

* ``apply_delta`` rewrites only the small overlay;
* ``replace_full`` / ``begin_full`` and ``compact`` write a new base with a new generation;
  once it is renamed in, the old overlay names a generation that is gone and is ignored
  (and deleted), so a new base never mixes with the old overlay.

Usage::

    from firmware.uidstore import UidStore, VersionMismatch
    s = UidStore("/flash/bl")
    w = s.begin_full(12)                 # stream a big list: never all in RAM
    for chunk in chunks:
        w.write_chunk(chunk)
    w.commit()
    s.apply_delta(12, 13, added_blob, removed_blob)   # VersionMismatch: ask for a full list
    s.contains(uidlist.uid_key(uid))
    s.compact()                          # in idle time, when the overlay has grown
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

import hashlib
import os
import struct

from firmware.flashfs import close_file, remove_if_exists

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_K = const(7)  # protocol.uidlist.KEY_SIZE
_E = const(8)  # overlay entry: key + op
_OP_ADD = const(1)
_OP_REMOVE = const(0)
_BASE_FMT = "<4sIIII16s"
_BASE_TRAILER = const(36)
_BASE_MAGIC = b"UIDL"
_FORMAT = const(1)
_HASH_LEN = const(16)
_OVL_FMT = "<4sIIII"
_OVL_TRAILER = const(20)
_OVL_MAGIC = b"UIDO"
_COPY_KEYS = const(32)  # keys per read when copying base ranges


class UidStoreError(Exception):
    """A list or delta that cannot be applied as given."""


class VersionMismatch(UidStoreError):
    """A delta from another version than the one held: ask the server for the full list."""


def _check_blob(blob, what):
    if len(blob) % _K:
        raise UidStoreError("%s: length %d is not a multiple of %d" % (what, len(blob), _K))


class _NoFile:
    """Stands in for a file that is not open (no base or no overlay): nothing to read."""

    def seek(self, pos, whence=0):
        raise UidStoreError("internal: no list file is open")

    def readinto(self, buf):
        raise UidStoreError("internal: no list file is open")

    def close(self):
        pass


_NO_FILE = _NoFile()


class UidStore:
    """Sorted UID key set in ``path_base + ".lst"`` plus overlay ``path_base + ".ovl"``."""

    def __init__(self, path_base):
        self._base_path = path_base + ".lst"
        self._ovl_path = path_base + ".ovl"
        self._probe = bytearray(_K)
        self._op = bytearray(1)
        self._copy = bytearray(_COPY_KEYS * _K)
        self._bf = _NO_FILE
        self._of = _NO_FILE
        self._load()

    # -- lookups ------------------------------------------------------------------------

    @property
    def version(self):
        return self._version

    def count(self):
        """Number of keys in the list in force."""
        return self._bn + self._adds - self._removes

    def overlay_size(self):
        """Entries in the overlay (compact when this grows)."""
        return self._on

    @micropython.native
    def contains(self, key):
        """True if the 7-byte ``key`` is in the list: overlay first, then the base."""
        if self._on:
            i = self._find(self._of, _E, self._on, key)
            if i >= 0:
                f = self._of
                f.seek(i * _E + _K)
                f.readinto(self._op)
                return self._op[0] == _OP_ADD
        return self._bn > 0 and self._find(self._bf, _K, self._bn, key) >= 0

    @micropython.native
    def _lower(self, f, stride, n, key):
        """Index of the first entry >= ``key`` in a file of ``n`` sorted entries."""
        probe = self._probe
        lo = 0
        hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            f.seek(mid * stride)
            f.readinto(probe)
            if probe < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    @micropython.native
    def _find(self, f, stride, n, key):
        i = self._lower(f, stride, n, key)
        if i < n:
            f.seek(i * stride)
            f.readinto(self._probe)
            if self._probe == key:
                return i
        return -1

    # -- changes ------------------------------------------------------------------------

    def apply_delta(self, from_version, to_version, added, removed):
        """Apply a delta (packed ascending keys added and removed) by rewriting the overlay.

        :raises VersionMismatch: ``from_version`` is not the version held
        :raises UidStoreError: malformed, unsorted or contradictory delta (nothing changes)
        """
        if from_version != self._version:
            raise VersionMismatch("delta from version %d, but version %d is held: "
                                  "ask for the full list" % (from_version, self._version))
        if to_version < from_version:
            raise UidStoreError("delta goes back from version %d to %d" % (from_version, to_version))
        _check_blob(added, "added keys")
        _check_blob(removed, "removed keys")
        if to_version == from_version and not added and not removed:
            return
        tmp = self._ovl_path + ".tmp"
        out = open(tmp, "wb")
        try:
            adds, removes = self._merge_delta(out, added, removed)
            out.write(struct.pack(_OVL_FMT, _OVL_MAGIC, self._gen, to_version, adds, removes))
        except UidStoreError as e:
            close_file(out)
            remove_if_exists(tmp)
            raise e
        except Exception as e:
            close_file(out)
            raise e
        close_file(out)
        self._close()
        os.rename(tmp, self._ovl_path)
        self._load()

    def _merge_delta(self, out, added, removed):
        """Write old overlay entries merged with the delta, normalised against the base."""
        na, nr, no = len(added) // _K, len(removed) // _K, self._on
        ia = ir = io = 0
        prev = b""
        ent = bytearray(_E)
        adds = removes = 0
        ka = kr = ko = None
        while True:
            if ka is None and ia < na:
                ka = bytes(added[ia * _K:(ia + 1) * _K])
            if kr is None and ir < nr:
                kr = bytes(removed[ir * _K:(ir + 1) * _K])
            if ko is None and io < no:
                self._of.seek(io * _E)
                self._of.readinto(ent)
                ko = bytes(ent)
            key = None
            for k in (ka, kr, ko[:_K] if ko is not None else None):
                if k is not None and (key is None or k < key):
                    key = k
            if key is None:
                return adds, removes
            if key <= prev:
                raise UidStoreError("delta keys not strictly ascending at %s" % _hex(key))
            op = -1
            if ko is not None and ko[:_K] == key:
                op = ko[_K]
                ko = None
                io += 1
            if ka == key and kr == key:
                raise UidStoreError("delta both adds and removes %s" % _hex(key))
            if ka == key:
                op = _OP_ADD
                ka = None
                ia += 1
            elif kr == key:
                op = _OP_REMOVE
                kr = None
                ir += 1
            prev = key
            in_base = self._bn > 0 and self._find(self._bf, _K, self._bn, key) >= 0
            if op == _OP_ADD and not in_base:
                adds += 1
            elif op == _OP_REMOVE and in_base:
                removes += 1
            else:
                continue  # the base already says so
            ent[:_K] = key
            ent[_K] = op
            out.write(ent)

    def replace_full(self, version, blob, hash=None):
        """Replace the whole list by ``blob`` (packed ascending keys) at ``version``.

        :param hash: if given, the list's SHA-256 (or a prefix of it) the server announced
        :raises UidStoreError: malformed or unsorted list, or hash mismatch (nothing changes)
        """
        w = self.begin_full(version)
        try:
            w.write_chunk(blob)
        except Exception as e:
            w.abort()
            raise e
        w.commit(hash)

    def begin_full(self, version):
        """Start streaming a full list: returns a writer with ``write_chunk(data)``,
        ``commit(hash=None)`` and ``abort()``. Chunks may split keys anywhere."""
        return FullListWriter(self, version)

    def compact(self):
        """Merge the overlay into a new base (same version) and drop the overlay."""
        if not self._on:
            remove_if_exists(self._ovl_path)
            return
        w = FullListWriter(self, self._version)
        try:
            self._merge(w.write_keys)
        except Exception as e:
            w.abort()
            raise e
        w.commit()

    def list_hash(self):
        """First 16 bytes of SHA-256 of the list in force (base and overlay merged)."""
        if not self._on:
            return self._hash
        h = hashlib.sha256()
        self._merge(h.update)
        return h.digest()[:_HASH_LEN]

    def _merge(self, sink):
        """Feed the list in force to ``sink`` in ascending runs of packed keys: base ranges
        are copied in bulk, each overlay entry found in the base by bisection."""
        pos = 0
        ent = bytearray(_E)
        key = memoryview(ent)[:_K]
        for i in range(self._on):
            self._of.seek(i * _E)
            self._of.readinto(ent)
            k = bytes(key)
            p = self._lower(self._bf, _K, self._bn, k) if self._bn else 0
            self._copy_base(pos, p, sink)
            pos = p
            eq = p < self._bn and self._find(self._bf, _K, self._bn, k) == p
            if ent[_K] == _OP_ADD:
                if not eq:
                    sink(key)
            elif eq:
                pos = p + 1
        self._copy_base(pos, self._bn, sink)

    def _copy_base(self, start, end, sink):
        mv = memoryview(self._copy)
        f = self._bf
        while start < end:
            k = min(end - start, _COPY_KEYS)
            f.seek(start * _K)
            f.readinto(mv[:k * _K])
            sink(mv[:k * _K])
            start += k

    # -- files --------------------------------------------------------------------------

    def _close(self):
        self._bf.close()
        self._of.close()
        self._bf = _NO_FILE
        self._of = _NO_FILE

    def _load(self):
        """Open the files in force, dropping leftovers of an interrupted change."""
        self._close()
        remove_if_exists(self._base_path + ".tmp")
        remove_if_exists(self._ovl_path + ".tmp")
        self._bn = 0
        self._gen = 0
        self._version = 0
        self._hash = hashlib.sha256(b"").digest()[:_HASH_LEN]
        self.damaged = False  # True if a base file was present but unreadable
        try:
            f = open(self._base_path, "rb")
        except OSError:
            f = None
        if f is not None:
            size = f.seek(0, 2)
            t = None
            if size >= _BASE_TRAILER:
                f.seek(size - _BASE_TRAILER)
                t = struct.unpack(_BASE_FMT, f.read(_BASE_TRAILER))
            if t and t[0] == _BASE_MAGIC and t[1] == _FORMAT and t[4] * _K + _BASE_TRAILER == size:
                self._bf = f  # type: ignore[assignment]  # a file or _NO_FILE
                self._version, self._gen, self._bn, self._hash = t[2], t[3], t[4], t[5]
            else:
                f.close()
                self.damaged = True
        self._on = 0
        self._adds = 0
        self._removes = 0
        try:
            f = open(self._ovl_path, "rb")
        except OSError:
            return
        size = f.seek(0, 2)
        t = None
        if size >= _OVL_TRAILER:
            f.seek(size - _OVL_TRAILER)
            t = struct.unpack(_OVL_FMT, f.read(_OVL_TRAILER))
        if (t and t[0] == _OVL_MAGIC and t[1] == self._gen
                and (t[3] + t[4]) * _E + _OVL_TRAILER == size):
            self._of = f  # type: ignore[assignment]  # a file or _NO_FILE
            self._version, self._adds, self._removes = t[2], t[3], t[4]
            self._on = t[3] + t[4]
        else:
            f.close()
            remove_if_exists(self._ovl_path)  # belongs to a base that was replaced


class FullListWriter:
    """Streams a new base to a temporary file; ``commit`` renames it in (see ``begin_full``)."""

    def __init__(self, store, version):
        self._store = store
        self._version = version
        self._tmp = store._base_path + ".tmp"
        self._f = open(self._tmp, "wb")
        self._h = hashlib.sha256()
        self._carry = bytearray(_K)
        self._nc = 0
        self._last = bytearray(_K)
        self._count = 0

    def write_chunk(self, data):
        """Append packed keys; a chunk may end inside a key (the rest comes next chunk).

        :raises UidStoreError: keys not strictly ascending (call ``abort``)
        """
        mv = memoryview(data)
        n = len(data)
        i = 0
        if self._nc:
            take = min(_K - self._nc, n)
            self._carry[self._nc:self._nc + take] = mv[:take]
            self._nc += take
            i = take
            if self._nc < _K:
                return
            self._nc = 0
            self.write_keys(self._carry)
        whole = (n - i) // _K * _K
        if whole:
            self.write_keys(mv[i:i + whole])
        rest = n - i - whole
        if rest:
            self._carry[:rest] = mv[i + whole:n]
            self._nc = rest

    def write_keys(self, keys):
        """Append whole packed keys (a multiple of 7 bytes), checking the order."""
        last = self._last
        for j in range(0, len(keys), _K):
            k = bytes(keys[j:j + _K])
            if self._count and not last < k:
                raise UidStoreError("full list not strictly ascending at entry %d (%s after %s)"
                                    % (self._count, _hex(k), _hex(last)))
            last[:] = k
            self._count += 1
        self._f.write(keys)
        self._h.update(keys)

    def commit(self, hash=None):
        """Finish the file and rename it over the base; the old overlay goes with the old base.

        :raises UidStoreError: a key was cut off, or the hash does not match (nothing changes)
        """
        if self._nc:
            self.abort()
            raise UidStoreError("full list ends inside a key (%d stray bytes)" % self._nc)
        digest = self._h.digest()
        if hash is not None and (len(hash) == 0 or digest[:len(hash)] != hash):
            self.abort()
            raise UidStoreError("full list hash %s does not match the announced %s"
                                % (_hex(digest[:len(hash) or 8]), _hex(hash)))
        s = self._store
        try:
            self._f.write(struct.pack(_BASE_FMT, _BASE_MAGIC, _FORMAT, self._version, s._gen + 1,
                                      self._count, digest[:_HASH_LEN]))
        finally:
            close_file(self._f)
        s._close()
        os.rename(self._tmp, s._base_path)
        remove_if_exists(s._ovl_path)
        s._load()

    def abort(self):
        """Drop the partly written list; the old one stays in force."""
        try:
            close_file(self._f)
        except OSError:
            pass
        remove_if_exists(self._tmp)


def _hex(data):
    return "".join("%02X" % b for b in data)
