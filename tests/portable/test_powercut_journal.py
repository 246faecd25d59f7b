"""Power cut at every block write of a run of sales, on littlefs (vfs.VfsLfs2, MicroPython).

The script: 40 appends into 8-record segments (so it crosses four segment boundaries) with
an acknowledgement of record 16 after the 20th (which deletes two segments). For every N
from 0 to the number of programs and erases the script makes, a fresh volume loses power
after N of them (the interrupted one lands in part, or not at all); then the volume is
mounted again, as at boot, and the journal reopened. Every append that returned must be
there, byte for byte the record the reference chain says, at most the in-flight one more,
nothing twice; the journal must take new sales that chain on, and keep them over a reboot.
"""

import gc
import os

import flash_support as fs
import support

from firmware import flashdev
from firmware.journal import Journal
from protocol import records

MP = "/pcj"
KEY = fs.KEY
SEG = 8
APPENDS = 40
ACK_AFTER = 20
ACK_SEQ = 16


def _volume():
    """32 blocks of 512 bytes in a host file (littlefs's own buffers already take much of a
    64 KB heap); small blocks make littlefs allocate, relocate and compact often."""
    path = "/tmp/cc-pcj-%s.img" % support.tohex(os.urandom(6))
    return flashdev.FileBlockDev(path, 512, 32), path


def _script(dev, cut, partial):
    """Run the sales on a fresh volume until done or cut; returns (appends done, ack done,
    programs and erases made)."""
    flashdev.format_and_mount(dev, MP)
    if cut is not None:
        dev.cut_after(cut, partial)
    start = dev.ops
    done, acked = 0, False
    j = None
    buf = bytearray(records.RECORD_SIZE)
    try:
        j = Journal(MP, KEY, segment_records=SEG)
        for s in range(1, APPENDS + 1):
            fs.fill_record(buf, s)
            if j.append(buf) != s:
                raise AssertionError("append %d got another seq" % s)
            done = s
            if s == ACK_AFTER:
                j.ack(ACK_SEQ)
                acked = True
        j.close()
    except Exception:  # noqa: BLE001 - only a power cut may stop the script
        if not dev.dead:
            raise
        if j is not None:
            j.close()
    return done, acked, dev.ops - start


def _check_after_reboot(dev, links, done, acked, cut):
    dev.revive()
    flashdev.remount(dev, MP)
    j = Journal(MP, KEY, segment_records=SEG)
    last = j.last_seq()
    where = "cut after %s writes (%d appends and %s ack returned)" % (cut, done, "the" if acked else "no")
    assert last == done or (last == done + 1 and done < APPENDS), \
        "%s: journal ends at %d" % (where, last)
    if acked:
        assert j.acked_seq() == ACK_SEQ, "%s: ack lost (%d)" % (where, j.acked_seq())
    else:
        assert j.acked_seq() in (0, ACK_SEQ) and (done >= ACK_AFTER or j.acked_seq() == 0), where
    assert j.first_unacked() == j.acked_seq() + 1, "%s: unacknowledged records deleted" % where
    first_stored = j._segs[0] if j._segs else j.next_seq()
    assert j.check() == last - first_stored + 1, where
    out = bytearray(records.RECORD_SIZE)
    want = bytearray(records.RECORD_SIZE)
    for s in range(j.first_unacked(), last + 1):
        assert j.read_unacked(s, out, 1) == 1, "%s: record %d unreadable" % (where, s)
        assert out == fs.expected_record(want, KEY, links, s), "%s: record %d differs" % (where, s)
    buf = bytearray(records.RECORD_SIZE)
    for s in range(last + 1, last + 4):
        fs.fill_record(buf, s)
        assert j.append(buf) == s, where
        assert buf == fs.expected_record(want, KEY, links, s), "%s: new record %d" % (where, s)
    j.close()
    flashdev.remount(dev, MP)
    j = Journal(MP, KEY, segment_records=SEG)
    assert j.last_seq() == last + 3 and j.read_unacked(last + 3, out, 1) == 1, where
    assert out == fs.expected_record(want, KEY, links, last + 3), where
    j.close()
    flashdev.unmount(MP)


def _every_cut(partial):
    if not support.IS_MICROPYTHON:
        support.skip("needs vfs.VfsLfs2 (MicroPython)")
    dev, path = _volume()
    try:
        return _every_cut_on(dev, partial)
    finally:
        flashdev.unmount(MP)
        dev.close()
        os.remove(path)


def _every_cut_on(dev, partial):
    links = fs.reference_links(KEY, APPENDS + 4)
    done, acked, total = _script(dev, None, partial)
    assert (done, acked) == (APPENDS, True)
    assert total > APPENDS, "only %d writes for %d appends?" % (total, APPENDS)
    for n in range(total + 1):
        done, acked, used = _script(dev, n, partial)
        gc.collect()
        if n < total:
            assert dev.dead and used == n + 1, "cut after %d: %d writes, dead=%s" % (n, used, dev.dead)
        else:
            assert not dev.dead and (done, acked) == (APPENDS, True)
        _check_after_reboot(dev, links, done, acked, n)
    return total


def test_power_cut_at_every_write_half_written():
    _every_cut(True)


def test_power_cut_at_every_write_nothing_written():
    _every_cut(False)
