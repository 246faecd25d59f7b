"""firmware.blacklist on a host directory, on MicroPython and CPython."""

import flash_support as fs
import support

from firmware.blacklist import Blacklist, UidStoreError, VersionMismatch
from protocol import uidlist
from protocol.errors import ProtocolError

LOST4 = b"\x04\xa1\xb2\xc3"
LOST7 = b"\x04\x11\x22\x33\x44\x55\x66"
OK4 = b"\x04\xa1\xb2\xc4"
OK7 = b"\x04\x11\x22\x33\x44\x55\x67"

_OPEN = []


def _open(root, **kw):
    bl = Blacklist(root + "/bl", **kw)
    _OPEN.append(bl)
    return bl


def _cleanup(root):
    while _OPEN:
        _OPEN.pop()._store._close()
    fs.rmtree(root)


def _full(version, uids):
    return {"re": b"", "version": version, "full": True, "since": 0,
            "added": uidlist.pack(uids), "removed": b""}


def _delta(since, version, added=(), removed=()):
    return {"re": b"", "version": version, "full": False, "since": since,
            "added": uidlist.pack(added), "removed": uidlist.pack(removed)}


def _listed(bl, uid):
    """Look ``uid`` up the way the reader leaves it: a 7-byte buffer and a length."""
    buf = bytearray(7)
    buf[:len(uid)] = uid
    return bl.is_blacklisted(memoryview(buf), len(uid))


def test_new_blacklist_is_empty_and_never_updated():
    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        assert (bl.version, bl.count(), bl.updated_at) == (0, 0, 0)
        assert not _listed(bl, LOST4)
        assert bl.age_s(1700000000) == 1700000000
    finally:
        _cleanup(root)


def test_full_list_blocks_four_and_seven_byte_uids():
    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        bl.apply(_full(4, [LOST4, LOST7]), 1700000000)
        assert (bl.version, bl.count(), bl.updated_at) == (4, 2, 1700000000)
        assert _listed(bl, LOST4) and _listed(bl, LOST7)
        assert not _listed(bl, OK4) and not _listed(bl, OK7)
        # A 4-byte UID is not confused with a 7-byte one that shares its bytes.
        assert not _listed(bl, LOST4 + b"\x00\x00\x00")
        e = support.raises(ProtocolError, bl.is_blacklisted, memoryview(bytearray(7)), 5)
        assert "5" in str(e)
    finally:
        _cleanup(root)


def test_delta_messages_report_and_unreport_cards():
    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        bl.apply(_full(4, [LOST4]), 1700000000)
        bl.apply(_delta(4, 5, added=[LOST7]), 1700000100)  # loss reported
        assert _listed(bl, LOST7) and bl.version == 5
        bl.apply(_delta(5, 6, removed=[LOST4]), 1700000200)  # un-reported
        assert not _listed(bl, LOST4) and _listed(bl, LOST7)
        assert (bl.version, bl.count(), bl.updated_at) == (6, 1, 1700000200)
    finally:
        _cleanup(root)


def test_delta_from_another_version_asks_for_the_full_list():
    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        bl.apply(_full(4, [LOST4]), 1700000000)
        e = support.raises(VersionMismatch, bl.apply, _delta(3, 5, added=[LOST7]), 1700000100)
        assert "full list" in str(e)
        assert not _listed(bl, LOST7)
        assert (bl.version, bl.updated_at) == (4, 1700000000)  # still as old as it was
        bad = _full(5, [LOST7, LOST4])
        bad["added"] = bytes(bad["added"][7:]) + bytes(bad["added"][:7])  # not sorted
        support.raises(UidStoreError, bl.apply, bad, 1700000100)
        assert (bl.version, bl.updated_at) == (4, 1700000000) and _listed(bl, LOST4)
    finally:
        _cleanup(root)


def test_up_to_date_reply_refreshes_age_only():
    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        bl.apply(_full(4, [LOST4]), 1700000000)
        assert bl.age_s(1700003600) == 3600
        bl.apply(_delta(4, 4), 1700003000)
        assert (bl.version, bl.age_s(1700003600)) == (4, 600)
    finally:
        _cleanup(root)


def test_streamed_full_list_then_mark_updated():
    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        blob = uidlist.pack([LOST4, LOST7])
        w = bl.begin_full(9)
        w.write_chunk(blob[:3])
        w.write_chunk(blob[3:])
        w.commit()
        assert (bl.version, bl.updated_at) == (9, 0)  # the caller says when it is complete
        bl.mark_updated(1700000000)
        assert bl.updated_at == 1700000000 and _listed(bl, LOST4) and _listed(bl, LOST7)
    finally:
        _cleanup(root)


def test_version_and_age_survive_a_reboot():
    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        bl.apply(_full(4, [LOST4]), 1700000000)
        bl.apply(_delta(4, 5, added=[LOST7]), 1700000050)
        bl._store._close()
        bl = _open(root)
        assert (bl.version, bl.count(), bl.updated_at) == (5, 2, 1700000050)
        assert _listed(bl, LOST4) and _listed(bl, LOST7)
    finally:
        _cleanup(root)


def test_compact_if_idle_waits_for_the_threshold():
    root = fs.tempdir("bl")
    try:
        bl = _open(root, compact_threshold=2)
        bl.apply(_full(1, [LOST4]), 1700000000)
        bl.apply(_delta(1, 2, added=[LOST7, OK4]), 1700000001)
        assert not bl.compact_if_idle()
        bl.apply(_delta(2, 3, removed=[LOST4]), 1700000002)
        assert bl.compact_if_idle()
        assert bl._store.overlay_size() == 0
        assert (bl.version, bl.count()) == (3, 2)
        assert _listed(bl, LOST7) and _listed(bl, OK4) and not _listed(bl, LOST4)
    finally:
        _cleanup(root)


def test_lookup_allocates_nothing():
    if not support.IS_MICROPYTHON:
        support.skip("gc.mem_alloc is MicroPython's")
    import gc

    root = fs.tempdir("bl")
    try:
        bl = _open(root)
        keys = fs.make_keys(10, 120, step=2)
        w = bl.begin_full(2)
        for k in keys:
            w.write_chunk(k)
        w.commit()
        bl.mark_updated(1700000000)
        bl.apply(_delta(2, 3, added=[LOST7], removed=[keys[3]]), 1700000001)
        uid = bytearray(keys[50])
        mv = memoryview(uid)
        u4 = memoryview(bytearray(LOST4 + b"\x00\x00\x00"))
        bl.is_blacklisted(mv, 7)
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            for _ in range(20):
                bl.is_blacklisted(mv, 7)
                bl.is_blacklisted(u4, 4)
            used = gc.mem_alloc() - before
        finally:
            gc.enable()
        assert used == 0, "40 lookups allocated %d bytes" % used
    finally:
        _cleanup(root)
