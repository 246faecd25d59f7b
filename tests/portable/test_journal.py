"""firmware.journal on a host directory (both runtimes) and, for the filesystem-full case,
on littlefs (MicroPython only)."""

import os

import flash_support as fs
import support

from firmware.journal import FULL_MESSAGE, Journal, JournalError, JournalFull
from protocol import records

KEY = fs.KEY


def _append(j, seqs):
    buf = bytearray(records.RECORD_SIZE)
    for s in seqs:
        fs.fill_record(buf, s)
        got = j.append(buf)
        assert got == s, "append returned seq %d, expected %d" % (got, s)


_OPEN = []


def _open(root, *args, **kw):
    j = Journal(root, KEY, *args, **kw)
    _OPEN.append(j)
    return j


def _cleanup(root):
    while _OPEN:
        _OPEN.pop().close()
    fs.rmtree(root)


def _assert_holds(j, first, last):
    """The journal holds exactly the reference records first..last, readable one by one
    (the reference chain is rebuilt from record 1, without a list of links in RAM)."""
    out = bytearray(records.RECORD_SIZE)
    want = bytearray(records.RECORD_SIZE)
    link = records.GENESIS_LINK
    for s in range(1, last + 1):
        fs.fill_record(want, s)
        records.sign_into(want, KEY, link)
        link = records.link_of(want)
        if s >= first:
            assert j.read_unacked(s, out, 1) == 1, "record %d not readable" % s
            assert out == want, "record %d differs: %s" % (s, support.tohex(out))


def _segments(root):
    return sorted(n for n in os.listdir(root) if n.endswith(".jnl"))


def test_append_assigns_seq_signs_and_chains():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=4)
        assert (j.next_seq(), j.last_seq(), j.unacked_count()) == (1, 0, 0)
        buf = bytearray(records.RECORD_SIZE)
        fs.fill_record(buf, 1)
        buf[8:12] = b"\xff\xff\xff\xff"  # whatever seq the caller wrote, the journal assigns it
        assert j.append(buf) == 1
        assert records.seq_of(buf) == 1 and records.verify(buf, KEY)
        assert records.prev_link_of(buf) == records.GENESIS_LINK
        _append(j, range(2, 11))
        assert (j.last_seq(), j.unacked_count()) == (10, 10)
        assert j.check() == 10
        _assert_holds(j, 1, 10)
        assert _segments(root) == ["s00000001.jnl", "s00000005.jnl", "s00000009.jnl"]
        assert fs.file_size(root + "/s00000009.jnl") == 2 * 64
    finally:
        _cleanup(root)


def test_append_rejects_wrong_size():
    root = fs.tempdir("jnl")
    try:
        j = _open(root)
        e = support.raises(JournalError, j.append, bytearray(63))
        assert "64" in str(e) and "63" in str(e)
        assert j.last_seq() == 0
    finally:
        _cleanup(root)


def test_read_unacked_in_batches_across_segments():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=3)
        _append(j, range(1, 12))
        links = fs.reference_links(KEY, 11)
        out = bytearray(5 * 64)
        got = []
        seq = j.first_unacked()
        while True:
            n = j.read_unacked(seq, out, 5)
            if not n:
                break
            for i in range(n):
                rec = out[i * 64:(i + 1) * 64]
                got.append(records.seq_of(rec))
                want = fs.expected_record(bytearray(64), KEY, links, seq + i)
                assert rec == want, "batch record %d differs" % (seq + i)
            seq += n
        assert got == list(range(1, 12))
        assert j.read_unacked(2, out, 2) == 2 and records.seq_of(out[64:128]) == 3
        assert j.read_unacked(9, bytearray(2 * 64), 10) == 2  # limited by the buffer
        assert j.read_unacked(12, out, 5) == 0
    finally:
        _cleanup(root)


def test_ack_persists_and_reclaims_whole_segments_only():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=4)
        _append(j, range(1, 11))  # segments 1-4, 5-8, 9-10
        j.ack(6)
        assert (j.acked_seq(), j.first_unacked(), j.unacked_count()) == (6, 7, 4)
        assert _segments(root) == ["s00000005.jnl", "s00000009.jnl"]
        j.ack(3)  # older acknowledgement: no change
        assert j.acked_seq() == 6
        e = support.raises(JournalError, j.ack, 11)
        assert "11" in str(e) and "10" in str(e)
        support.raises(JournalError, j.read_unacked, 4, bytearray(64), 1)
        j.ack(10)  # everything acknowledged: the newest segment stays for the chain
        assert j.unacked_count() == 0
        assert _segments(root) == ["s00000009.jnl"]
        j.close()
        j = _open(root, segment_records=4)
        assert (j.acked_seq(), j.last_seq(), j.unacked_count()) == (10, 10, 0)
        _append(j, [11])
        _assert_holds(j, 9, 11)
    finally:
        _cleanup(root)


def test_reopen_continues_sequence_and_chain():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=4)
        _append(j, range(1, 7))
        j.ack(2)
        j.close()
        j = _open(root, segment_records=4)
        assert (j.last_seq(), j.acked_seq(), j.next_seq()) == (6, 2, 7)
        _append(j, range(7, 10))
        assert j.check() == 9
        _assert_holds(j, 1, 9)
    finally:
        _cleanup(root)


def test_full_by_max_records_refuses_then_resumes_after_ack():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=4, max_records=6)
        _append(j, range(1, 7))
        assert j.fill_permille() == 1000
        buf = bytearray(64)
        fs.fill_record(buf, 7)
        e = support.raises(JournalFull, j.append, buf)
        assert str(e) == FULL_MESSAGE == "journal full — sync needed"
        assert (j.last_seq(), j.next_seq()) == (6, 7)
        j.ack(3)
        assert j.fill_permille() == 500
        _append(j, range(7, 10))  # no gap: the refused sale used no sequence number
        support.raises(JournalFull, j.append, buf)
        _assert_holds(j, 4, 9)
    finally:
        _cleanup(root)


def test_recovery_ignores_torn_tail_and_starts_a_new_segment():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=8)
        _append(j, range(1, 6))
        j.close()
        seg = root + "/s00000001.jnl"
        with open(seg, "ab") as f:
            f.write(b"\x01" * 30)  # a power cut in the middle of the 6th record
        j = _open(root, segment_records=8)
        assert (j.last_seq(), j.next_seq()) == (5, 6)
        _append(j, [6, 7])
        assert fs.file_size(seg) == 5 * 64 + 30  # the big file is not rewritten
        assert _segments(root) == ["s00000001.jnl", "s00000006.jnl"]
        j.close()
        j = _open(root, segment_records=8)
        assert j.last_seq() == 7 and j.check() == 7
        _assert_holds(j, 1, 7)
    finally:
        _cleanup(root)


def test_recovery_drops_whole_trailing_record_that_fails_its_mac():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=8)
        _append(j, range(1, 4))
        j.close()
        seg = root + "/s00000001.jnl"
        with open(seg, "rb") as f:
            data = bytearray(f.read())
        data[3 * 64 - 1] ^= 0x55  # the last record's MAC no longer matches
        with open(seg, "wb") as f:
            f.write(data)
        j = _open(root, segment_records=8)
        assert j.last_seq() == 2
        _append(j, [3])
        _assert_holds(j, 1, 3)
    finally:
        _cleanup(root)


def test_recovery_drops_a_segment_holding_no_valid_record():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=4)
        _append(j, range(1, 5))
        j.close()
        with open(root + "/s00000005.jnl", "wb") as f:
            f.write(b"\x00" * 20)  # created, then power lost before a whole record
        j = _open(root, segment_records=4)
        assert j.last_seq() == 4
        assert _segments(root) == ["s00000001.jnl"]
        _append(j, [5])
        _assert_holds(j, 1, 5)
    finally:
        _cleanup(root)


def test_missing_ack_file_resends_rather_than_loses():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=4)
        _append(j, range(1, 10))
        j.ack(5)
        j.close()
        os.remove(root + "/ack")
        j = _open(root, segment_records=4)
        assert (j.acked_seq(), j.first_unacked(), j.unacked_count()) == (0, 5, 5)
    finally:
        _cleanup(root)


def test_refuses_to_restart_chain_when_segments_vanished():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=4)
        _append(j, range(1, 4))
        j.ack(3)
        j.close()
        os.remove(root + "/s00000001.jnl")
        e = support.raises(JournalError, Journal, root, KEY, 4)
        assert "3" in str(e) and "segment" in str(e)
    finally:
        _cleanup(root)


def test_check_names_a_tampered_record():
    root = fs.tempdir("jnl")
    try:
        j = _open(root, segment_records=8)
        _append(j, range(1, 6))
        j.close()
        seg = root + "/s00000001.jnl"
        with open(seg, "rb") as f:
            data = bytearray(f.read())
        data[2 * 64 + 30] ^= 1  # record 3's amount
        with open(seg, "wb") as f:
            f.write(data)
        j = _open(root, segment_records=8)
        assert j.last_seq() == 5  # the tail is intact
        e = support.raises(JournalError, j.check)
        assert "record 3" in str(e)
    finally:
        _cleanup(root)


def test_filesystem_full_on_littlefs_refuses_then_resumes():
    if not support.IS_MICROPYTHON:
        support.skip("needs vfs.VfsLfs2 (MicroPython)")
    from firmware import flashdev

    path = "/tmp/cc-jfull-%s.img" % support.tohex(os.urandom(6))
    dev = flashdev.FileBlockDev(path, 512, 24)  # file-backed: 12 KB of RAM device would crowd the heap
    flashdev.format_and_mount(dev, "/jfull")
    try:
        j = Journal("/jfull", KEY, segment_records=8)
        buf = bytearray(64)
        n = 0
        while True:
            n += 1
            fs.fill_record(buf, n)
            try:
                j.append(buf)
            except JournalFull as e:
                assert str(e) == FULL_MESSAGE
                break
            assert n < 1000, "24 blocks of 512 bytes cannot hold 1000 records"
        full = n - 1
        assert full >= 80, "only %d records fit in 12 KB" % full
        assert j.last_seq() == full and j.unacked_count() == full
        assert j.fill_permille() > 800
        assert j.check() == full
        j.ack(full - 4)
        _append(j, range(full + 1, full + 9))
        j.close()
        flashdev.remount(dev, "/jfull")
        j = Journal("/jfull", KEY, segment_records=8)
        assert j.last_seq() == full + 8 and j.unacked_count() == 12
        _assert_holds(j, j.first_unacked(), full + 8)
        j.close()
    finally:
        flashdev.unmount("/jfull")
        dev.close()
        os.remove(path)


def test_append_cost_does_not_grow_with_the_segment_on_littlefs():
    if not support.IS_MICROPYTHON:
        support.skip("needs vfs.VfsLfs2 (MicroPython)")
    from firmware import flashdev

    path = "/tmp/cc-jcost-%s.img" % support.tohex(os.urandom(6))
    dev = flashdev.FileBlockDev(path, 4096, 64)
    flashdev.format_and_mount(dev, "/jcost")
    try:
        j = Journal("/jcost", KEY)
        buf = bytearray(64)
        worst = 0
        for s in range(1, 801):
            fs.fill_record(buf, s)
            before = dev.programmed
            j.append(buf)
            worst = max(worst, dev.programmed - before)
        # The segment is 51,200 bytes now; littlefs copies at most its last 4 KB block plus
        # a metadata commit per append, never the whole file.
        assert worst <= 4096 + 1024, "an append programmed %d bytes" % worst
        assert fs.file_size("/jcost/s00000001.jnl") == 800 * 64
        j.close()
    finally:
        flashdev.unmount("/jcost")
        dev.close()
        os.remove(path)
