"""firmware.uidstore on a host directory, on MicroPython and CPython."""

import os

import flash_support as fs
import support

from firmware.uidstore import UidStore, UidStoreError, VersionMismatch
from protocol import uidlist

_OPEN = []


def _store(root):
    s = UidStore(root + "/list")
    _OPEN.append(s)
    return s


def _cleanup(root):
    while _OPEN:
        _OPEN.pop()._close()
    fs.rmtree(root)


def _members(s, keys):
    return [k for k in keys if s.contains(k)]


def _gap(key):
    """The key after ``key``: not a member of lists made with ``make_keys(..., step=2)``."""
    return key[:6] + bytes([key[6] + 1])


def test_empty_store_holds_nothing():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        assert (s.version, s.count(), s.overlay_size()) == (0, 0, 0)
        assert not s.contains(b"\x04\x10\x00\x00\x00\x00\x01")
    finally:
        _cleanup(root)


def test_full_list_lookups_hit_every_member_and_miss_every_gap():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(10, 101, step=2)
        s.replace_full(7, b"".join(keys))
        assert (s.version, s.count()) == (7, 101)
        assert _members(s, keys) == keys
        assert _members(s, [_gap(k) for k in keys]) == []
        assert not s.contains(b"\x00" * 7) and not s.contains(b"\xff" * 7)
        assert fs.file_size(root + "/list.lst") == 101 * 7 + 36
        s._close()
        s = _store(root)  # persisted
        assert (s.version, s.count()) == (7, 101) and _members(s, keys) == keys
    finally:
        _cleanup(root)


def test_streamed_full_list_with_keys_split_across_chunks():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(1000, 60, step=3)
        blob = b"".join(keys)
        w = s.begin_full(3)
        for at in range(0, len(blob), 10):  # 10-byte chunks: most keys straddle two
            w.write_chunk(blob[at:at + 10])
        w.commit()
        assert (s.version, s.count()) == (3, 60) and _members(s, keys) == keys
        h = s.list_hash()
        s.replace_full(3, blob)
        assert s.list_hash() == h
    finally:
        _cleanup(root)


def test_bad_full_lists_leave_the_old_list_in_force():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(1, 10)
        s.replace_full(1, b"".join(keys))
        unsorted = keys[1] + keys[0]
        e = support.raises(UidStoreError, s.replace_full, 2, unsorted)
        assert "ascending" in str(e)
        e = support.raises(UidStoreError, s.replace_full, 2, keys[0] + keys[0])
        assert "ascending" in str(e)
        e = support.raises(UidStoreError, s.replace_full, 2, b"".join(keys) + b"\x01\x02")
        assert "2 stray bytes" in str(e)
        e = support.raises(UidStoreError, s.replace_full, 2, b"".join(keys), b"\x00" * 8)
        assert "hash" in str(e)
        assert (s.version, s.count()) == (1, 10) and _members(s, keys) == keys
        assert not [n for n in os.listdir(root) if n.endswith(".tmp")]
    finally:
        _cleanup(root)


def test_full_list_hash_is_checked_against_sha256_prefix():
    import hashlib

    root = fs.tempdir("uid")
    try:
        s = _store(root)
        blob = b"".join(fs.make_keys(5, 20))
        s.replace_full(4, blob, hashlib.sha256(blob).digest()[:8])
        assert s.version == 4 and s.list_hash() == hashlib.sha256(blob).digest()[:16]
    finally:
        _cleanup(root)


def test_delta_adds_and_removes_without_rewriting_the_base():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(10, 20, step=2)
        s.replace_full(5, b"".join(keys))
        base_size = fs.file_size(root + "/list.lst")
        added = [_gap(keys[2]), _gap(keys[9])]
        removed = [keys[0], keys[9]]
        s.apply_delta(5, 6, b"".join(added), b"".join(removed))
        assert (s.version, s.count(), s.overlay_size()) == (6, 20, 4)
        assert fs.file_size(root + "/list.lst") == base_size
        expect = sorted(added + [k for k in keys if k not in removed])
        assert _members(s, sorted(keys + added)) == expect
        # A second delta merges with the overlay: re-adding a base key cancels its removal.
        s.apply_delta(6, 8, keys[0], added[0])
        assert (s.version, s.count(), s.overlay_size()) == (8, 20, 2)
        assert s.contains(keys[0]) and not s.contains(added[0]) and s.contains(added[1])
        s._close()
        s = _store(root)
        assert (s.version, s.count()) == (8, 20) and s.contains(added[1])
    finally:
        _cleanup(root)


def test_delta_that_changes_nothing_keeps_overlay_empty():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(10, 5)
        s.replace_full(1, b"".join(keys))
        s.apply_delta(1, 2, keys[1], _gap(keys[4]))  # add a member, remove a non-member
        assert (s.version, s.count(), s.overlay_size()) == (2, 5, 0)
        s.apply_delta(2, 2, b"", b"")
        assert s.version == 2
    finally:
        _cleanup(root)


def test_delta_from_another_version_is_refused():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(10, 5, step=2)
        s.replace_full(3, b"".join(keys))
        e = support.raises(VersionMismatch, s.apply_delta, 2, 4, _gap(keys[0]), b"")
        assert "version 2" in str(e) and "version 3" in str(e) and "full list" in str(e)
        assert (s.version, s.count()) == (3, 5) and not s.contains(_gap(keys[0]))
    finally:
        _cleanup(root)


def test_malformed_deltas_change_nothing():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(10, 5)
        s.replace_full(1, b"".join(keys[:3]))
        e = support.raises(UidStoreError, s.apply_delta, 1, 2, keys[3], keys[3])
        assert "both" in str(e)
        e = support.raises(UidStoreError, s.apply_delta, 1, 2, keys[4] + keys[3], b"")
        assert "ascending" in str(e)
        e = support.raises(UidStoreError, s.apply_delta, 1, 2, keys[3][:5], b"")
        assert "multiple of 7" in str(e)
        support.raises(UidStoreError, s.apply_delta, 1, 0, b"", b"")
        assert (s.version, s.count(), s.overlay_size()) == (1, 3, 0)
        assert _members(s, keys) == keys[:3]
    finally:
        _cleanup(root)


def test_compact_merges_overlay_into_a_new_base():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(10, 30, step=2)
        s.replace_full(1, b"".join(keys))
        added = [_gap(keys[0]), _gap(keys[29]), b"\x00\x00\x00\x01\x02\x03\x04"]
        added.sort()
        removed = [keys[5], keys[6]]
        s.apply_delta(1, 2, b"".join(added), b"".join(removed))
        expect = sorted(added + [k for k in keys if k not in removed])
        h = s.list_hash()
        s.compact()
        assert (s.version, s.count(), s.overlay_size()) == (2, 31, 0)
        assert "list.ovl" not in os.listdir(root)
        assert fs.file_size(root + "/list.lst") == 31 * 7 + 36
        assert _members(s, sorted(keys + added)) == expect
        assert s.list_hash() == h
        s.compact()  # nothing to merge: no change
        assert (s.version, s.count()) == (2, 31)
    finally:
        _cleanup(root)


def test_replaced_base_never_mixes_with_the_old_overlay():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        old = fs.make_keys(10, 10, step=2)
        s.replace_full(1, b"".join(old))
        s.apply_delta(1, 2, _gap(old[0]), old[1])
        with open(root + "/list.ovl", "rb") as f:
            stale = f.read()
        new = fs.make_keys(500, 10)
        s.replace_full(3, b"".join(new))
        s._close()
        # A power cut after the new base was renamed in, before the overlay was deleted:
        with open(root + "/list.ovl", "wb") as f:
            f.write(stale)
        s = _store(root)
        assert (s.version, s.count(), s.overlay_size()) == (3, 10, 0)
        assert _members(s, new) == new
        assert not s.contains(_gap(old[0])) and not s.contains(old[1])
        assert "list.ovl" not in os.listdir(root)
    finally:
        _cleanup(root)


def test_leftover_temporary_files_are_ignored_and_removed():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        keys = fs.make_keys(10, 4)
        s.replace_full(1, b"".join(keys))
        s._close()
        for name in ("list.lst.tmp", "list.ovl.tmp"):
            with open(root + "/" + name, "wb") as f:
                f.write(b"\x55" * 50)
        s = _store(root)
        assert (s.version, s.count()) == (1, 4) and _members(s, keys) == keys
        assert sorted(os.listdir(root)) == ["list.lst"]
    finally:
        _cleanup(root)


def test_damaged_base_reads_as_no_list():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        s.replace_full(9, b"".join(fs.make_keys(10, 4)))
        s._close()
        with open(root + "/list.lst", "ab") as f:
            f.write(b"\x00")
        s = _store(root)
        assert (s.version, s.count(), s.damaged) == (0, 0, True)
    finally:
        _cleanup(root)


def test_four_and_seven_byte_uid_keys_share_one_list():
    root = fs.tempdir("uid")
    try:
        s = _store(root)
        u4 = [b"\x04\x01\x02\x03", b"\xa0\xb0\xc0\xd0"]
        u7 = [b"\x04\x11\x22\x33\x44\x55\x66"]
        s.replace_full(1, uidlist.pack(u4 + u7))
        for u in u4 + u7:
            assert s.contains(uidlist.uid_key(u)), support.tohex(u)
        assert not s.contains(uidlist.uid_key(b"\x04\x01\x02\x04"))
        assert not s.contains(uidlist.uid_key(b"\x04\x01\x02\x03\x00\x00\x00"))
    finally:
        _cleanup(root)
