"""Power cut at every block write of a door's list sync, on littlefs (vfs.VfsLfs2, MicroPython).

The door holds list 0 = A and list 1 = X, both at version 1. One sync then takes list 0 as a
full list B (version 2) in pages (the server cannot send a delta from version 1) and list 1
as a delta adding Y (version 2). For every N up to the number of programs and erases the sync
makes, a fresh volume loses power after N of them; after a reboot each list must be exactly
one whole version — A or B, X or X+Y — with the version that names it, never a mix of pages,
list 1 never ahead of list 0 (they sync in order), both at version 2 once the sync returned;
and the next sync must bring the door to the server's lists.
"""

import gc
import os
import struct

import support

from firmware import flashdev
from firmware.access import AccessLists

MP = "/pca"
ROOT = MP + "/access"
# Lists as ranges of card numbers (card n: 4-byte UID 0x04000000 + n); packed only when sent.
A = range(100, 550, 3)  # 150 cards, 1,050 bytes: the lists span littlefs blocks
B = range(500, 900, 2)  # 200 cards, overlapping the end of A
X = range(1000, 1004)
Y = range(1020, 1021)
ALL = sorted(set(A) | set(B) | set(X) | set(Y))  # 360 cards, built once at import


def _blob(*ranges):
    """Packed ascending keys of the cards in ``ranges`` (already in ascending order)."""
    n = sum(len(r) for r in ranges)
    out = bytearray(7 * n)
    j = 0
    for r in ranges:
        for v in r:
            struct.pack_into(">I", out, 7 * j + 3, 0x04000000 + v)
            j += 1
    return out


class _Server:
    """The server's two answers: list 0 = B (version 2) in 4 pages of 50 cards, list 1 = the delta
    X -> X+Y (version 1 -> 2); anything else it answers in full (see test_access.Server).
    The packed lists are built once and pages handed out as memoryview slices: the test runs in a
    64 KB heap beside the firmware code, where fresh 1-2 KB buffers per request can fail."""

    page_keys = 400  # what the door asks for (Sync.page_keys)

    def __init__(self):
        import hashlib

        self.start = (bytes(_blob(A)), bytes(_blob(X)))  # what the door holds before the sync
        self.blobs = (memoryview(_blob(B)), memoryview(_blob(X, Y)))
        self.hashes = tuple(hashlib.sha256(b).digest()[:16] for b in self.blobs)
        self.delta = bytes(_blob(Y))

    def request(self, endpoint, mtype, fields, expected):
        i = fields["list"]
        blob = self.blobs[i]
        ans = {"re": b"", "version": 2, "hash": self.hashes[i], "list": i, "removed": b""}
        if i == 1 and fields["since"] in (1, 2):
            ans.update({"full": False, "since": fields["since"],
                        "added": self.delta if fields["since"] == 1 else b""})
            return ans
        off = fields["offset"]
        ans.update({"full": True, "since": 0, "added": blob[7 * off:7 * off + 350], "offset": off,
                    "total": len(blob) // 7})
        return ans


SERVER = _Server()


def _server():
    return SERVER


def _bitmap(*ranges):
    """One byte per card of ALL: 1 where the card is in one of ``ranges``."""
    out = bytearray(len(ALL))
    for j, v in enumerate(ALL):
        for r in ranges:
            if v in r:
                out[j] = 1
    return bytes(out)


def _listed(acl, i):
    """Which of the lists' cards list ``i`` holds, as a bitmap over ALL (small and fixed-size:
    a set of a few hundred ints would need a large contiguous block of a 64 KB heap)."""
    uid = bytearray(4)
    out = bytearray(len(ALL))
    for j, v in enumerate(ALL):
        struct.pack_into(">I", uid, 0, 0x04000000 + v)
        if acl.listed(i, uid, 4):
            out[j] = 1
    return bytes(out)


IN_A, IN_B, IN_X, IN_XY = _bitmap(A), _bitmap(B), _bitmap(X), _bitmap(X, Y)


def _script(dev, cut, partial):
    """Lists at version 1, then one sync until done or cut; returns (synced, writes made)."""
    flashdev.format_and_mount(dev, MP)
    acl = AccessLists(ROOT)
    acl.replace(0, 1, SERVER.start[0])
    acl.replace(1, 1, SERVER.start[1])
    acl.close()
    srv = _server()
    start = dev.ops
    if cut is not None:
        dev.cut_after(cut, partial)
    synced = False
    acl = None
    try:
        acl = AccessLists(ROOT)
        while acl.sync_step(srv):
            pass
        synced = True
        acl.close()
    except Exception:  # noqa: BLE001 - only a power cut may stop the script
        if not dev.dead:
            raise
        if acl is not None:
            acl.close()
    return synced, dev.ops - start


def _check_after_reboot(dev, synced, cut):
    dev.revive()
    flashdev.remount(dev, MP)
    acl = AccessLists(ROOT)
    where = "cut after %s writes (sync %s)" % (cut, "returned" if synced else "cut")
    v0, v1 = acl.list_version(0), acl.list_version(1)
    gc.collect()
    l0, l1 = _listed(acl, 0), _listed(acl, 1)
    assert (v0, l0) in ((1, IN_A), (2, IN_B)), "%s: list 0 version %d with %d keys" % (where, v0, sum(l0))
    assert (v1, l1) in ((1, IN_X), (2, IN_XY)), "%s: list 1 version %d with %d keys" % (where, v1, sum(l1))
    assert v1 <= v0, "%s: list 1 synced before list 0" % where
    assert not synced or (v0, v1) == (2, 2), where
    assert acl.count(0) == sum(l0) and acl.count(1) == sum(l1), where
    assert not acl._lists[0].damaged and not acl._lists[1].damaged, where
    srv = _server()
    while acl.sync_step(srv):
        pass
    assert (acl.list_version(0), acl.list_version(1)) == (2, 2), where
    assert _listed(acl, 0) == IN_B and _listed(acl, 1) == IN_XY, where
    acl.close()
    flashdev.unmount(MP)


def _every_cut(partial):
    if not support.IS_MICROPYTHON:
        support.skip("needs vfs.VfsLfs2 (MicroPython)")
    path = "/tmp/cc-pca-%s.img" % support.tohex(os.urandom(6))
    dev = flashdev.FileBlockDev(path, 512, 64)
    try:
        synced, total = _script(dev, None, partial)
        assert synced and total > 4, "the sync made %d writes" % total
        flashdev.unmount(MP)
        for n in range(total + 1):
            synced, used = _script(dev, n, partial)
            gc.collect()
            if n < total:
                assert dev.dead and used == n + 1, "cut after %d: %d writes" % (n, used)
            else:
                assert not dev.dead and synced
            _check_after_reboot(dev, synced, n)
        return total
    finally:
        flashdev.unmount(MP)
        dev.close()
        os.remove(path)


def test_power_cut_at_every_write_of_a_list_sync_half_written():
    _every_cut(True)


def test_power_cut_at_every_write_of_a_list_sync_nothing_written():
    _every_cut(False)
