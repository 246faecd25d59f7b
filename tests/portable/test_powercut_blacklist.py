"""Power cut at every block write of a blacklist update, on littlefs (vfs.VfsLfs2, MicroPython).

The volume starts with list A at version 1 and a delta to version 2 in the overlay (adding
E, removing F; updated at T1). The script then applies a full list B (version 3, T2), a
delta adding C and removing D (version 4, T3) and a compaction.
For every N up to the number of programs and erases the script makes, a fresh volume loses
power after N of them; after a reboot the blacklist must be exactly one whole state — A, B
or B+C-D, judged by the membership of every key any state holds, the count and the version
— no earlier than the last step that returned, and its update time never fresher than the
list in force. It must then take the next delta.
"""

import gc
import os

import flash_support as fs
import support

from firmware import flashdev
from firmware.blacklist import Blacklist

MP = "/pcb"
ROOT = MP + "/bl"
T1, T2, T3 = 1700000100, 1700000200, 1700000300
A = fs.make_keys(100, 16, step=3)  # 100, 103, ... 145
B = fs.make_keys(130, 16, step=3)  # overlaps the end of A
C = fs.make_keys(161, 3, step=3)  # between B's keys
D = [B[0], B[7], B[15]]
E = fs.make_keys(101, 2, step=30)  # between A's keys
F = [A[3], A[15]]
NEW = fs.make_keys(162, 1)  # the delta applied after recovery
ALL = sorted(set(A + B + C + D + E + NEW + fs.make_keys(99, 3, step=50)))


def _state(v):
    """The keys listed at version ``v``."""
    if v == 2:
        return set(A + E) - set(F)
    if v == 3:
        return set(B)
    return set(B + C) - set(D)


def _msg(version, full, since=0, added=(), removed=()):
    return {"re": b"", "version": version, "full": full, "since": since,
            "added": b"".join(added), "removed": b"".join(removed)}


def _script(dev, cut, partial):
    """Prepare version 2, then run the update until done or cut; returns steps completed."""
    flashdev.format_and_mount(dev, MP)
    bl = Blacklist(ROOT)
    bl.apply(_msg(1, True, added=A), T1 - 50)
    bl.apply(_msg(2, False, since=1, added=E, removed=F), T1)
    bl._store._close()
    bl = None
    start = dev.ops
    if cut is not None:
        dev.cut_after(cut, partial)
    steps = 0
    try:
        bl = Blacklist(ROOT)
        bl.apply(_msg(3, True, added=B), T2)
        steps = 1
        bl.apply(_msg(4, False, since=3, added=C, removed=D), T3)
        steps = 2
        bl.compact()
        steps = 3
        bl._store._close()
    except Exception:  # noqa: BLE001 - only a power cut may stop the script
        if not dev.dead:
            raise
        if bl is not None:
            bl._store._close()
    return steps, dev.ops - start


def _check_after_reboot(dev, steps, cut):
    dev.revive()
    flashdev.remount(dev, MP)
    bl = Blacklist(ROOT)
    where = "cut after %s writes (%d steps returned)" % (cut, steps)
    v = bl.version
    allowed = {0: (2, 3), 1: (3, 4), 2: (4,), 3: (4,)}[steps]
    assert v in allowed, "%s: version %d in force" % (where, v)
    want = _state(v)
    listed = set(k for k in ALL if bl.is_blacklisted(memoryview(k), 7))
    assert listed == want, "%s: version %d but %d keys listed, %d expected" % (
        where, v, len(listed), len(want))
    assert bl.count() == len(want), "%s: count %d" % (where, bl.count())
    assert not bl._store.damaged, where
    fresh = {2: (T1,), 3: (T1, T2), 4: (T2, T3)}[v]
    assert bl.updated_at in fresh, "%s: list %d looks updated at %d" % (where, v, bl.updated_at)
    bl.apply(_msg(v + 1, False, since=v, added=NEW), T3 + 100)
    assert bl._store.contains(NEW[0]) and bl.count() == len(want) + 1, where
    bl._store._close()
    flashdev.remount(dev, MP)
    bl = Blacklist(ROOT)
    assert bl.version == v + 1 and bl._store.contains(NEW[0]) and bl.updated_at == T3 + 100, where
    bl._store._close()
    flashdev.unmount(MP)


def _every_cut(partial):
    if not support.IS_MICROPYTHON:
        support.skip("needs vfs.VfsLfs2 (MicroPython)")
    path = "/tmp/cc-pcb-%s.img" % support.tohex(os.urandom(6))
    dev = flashdev.FileBlockDev(path, 512, 32)
    try:
        steps, total = _script(dev, None, partial)
        assert steps == 3
        flashdev.unmount(MP)
        for n in range(total + 1):
            steps, used = _script(dev, n, partial)
            gc.collect()
            if n < total:
                assert dev.dead and used == n + 1, "cut after %d: %d writes" % (n, used)
            else:
                assert not dev.dead and steps == 3
            _check_after_reboot(dev, steps, n)
        return total
    finally:
        flashdev.unmount(MP)
        dev.close()
        os.remove(path)


def test_power_cut_at_every_write_half_written():
    _every_cut(True)


def test_power_cut_at_every_write_nothing_written():
    _every_cut(False)
