"""The terminal's append-only journal of signed, hash-chained 64-byte records on flash.

Records (``protocol.records``) go into segment files ``<root>/sXXXXXXXX.jnl`` named by the
hex sequence number of their first record, ``segment_records`` records each. An append
writes one record at the end of the newest segment and flushes it: on littlefs the file's
new size is committed atomically by that flush, so a completed append survives a power cut,
and an interrupted one leaves the file as it was. The last acknowledged sequence number is
a small file ``ack``, replaced atomically (write ``ack.tmp``, rename over ``ack``); segments
the server has wholly acknowledged are deleted. Nothing on the hot path rewrites a big
file: littlefs copies at most the last partly filled block of the segment on each append.

Sequence numbers: ``append`` assigns them. The caller fills bytes 0-55 with
``records.encode_into`` (pass ``journal.next_seq()`` as ``seq``, or anything: ``append``
writes the sequence number it assigns into bytes 8-11 anyway), then ``append`` sets the
chain link and the MAC with ``records.sign_into``.

Recovery (at open and after a failed append) reads the newest segment backwards until a
record whose MAC, sequence number and chain link check out; trailing bytes after it (a torn
record on a filesystem without atomic appends) are left in place and never read: the next
append starts a new segment named after it, and every segment but the last holds exactly
the records up to the next segment's first sequence number. A segment without one valid
record is deleted. The segment holding the last record is never deleted, so the chain
continues across acknowledgements and reboots.

Default ``segment_records`` is 1008 = 16 blocks x 63 records: a 64,512-byte segment fills
16 littlefs blocks of 4096 bytes exactly, with room for littlefs's block pointers (1024
records would need a 17th block).

Usage::

    from firmware.journal import Journal, JournalFull
    from protocol import records
    j = Journal("/journal", terminal_key)
    buf = bytearray(records.RECORD_SIZE)
    records.encode_into(buf, records.PURCHASE, 0, tid, j.next_seq(), now, uid, ctr, 1200,
                        5000, 3800)
    try:
        seq = j.append(buf)            # signed, chained, on flash when it returns
    except JournalFull as e:
        display(str(e))                # "journal full — sync needed": refuse the sale
    n = j.read_unacked(j.first_unacked(), out, 16)   # sync client: up to 16 records
    j.ack(last_seq_the_server_confirmed)
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

import os
import struct

from firmware.flashfs import close_file, read_tagged, write_tagged
from protocol import records

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_REC = const(64)
_SEQ_AT = const(8)
_LINK_AT = const(44)
_LINK_END = const(52)
_EEXIST = const(17)
_ENOSPC = const(28)
_ACK_MAGIC = b"JACK"
FULL_MESSAGE = "journal full — sync needed"


class JournalError(Exception):
    """The journal on flash is inconsistent, or was asked for something it cannot do."""


class JournalFull(JournalError):
    """No room for another record until the server acknowledges some: refuse the sale."""


class Journal:
    """Append-only signed record journal in ``root_dir`` (see the module docstring).

    :param root_dir: directory for the segments and the ack file (created if missing)
    :param terminal_key: the terminal's HMAC key that signs every record
    :param segment_records: records per segment file
    :param max_records: most unacknowledged records allowed; None: until the filesystem is full
    :raises JournalError: if the stored journal cannot be continued safely
    """

    def __init__(self, root_dir, terminal_key, segment_records=1008, max_records=None):
        if segment_records < 1:
            raise ValueError("segment_records must be >= 1, got %d" % segment_records)
        self._root = root_dir.rstrip("/") if root_dir != "/" else ""
        self._key = terminal_key
        self._seg_n = segment_records
        self._max = max_records
        self._buf = bytearray(_REC)
        self._buf2 = bytearray(_REC)
        self._link = bytearray(records.LINK_SIZE)
        self._f = None
        self._segs = []  # first sequence numbers of the segments, ascending
        self._tail = None  # first seq of the segment holding the newest record
        self._tail_count = 0  # valid records in it
        self._torn = False  # it has bytes after them: the next append starts a new segment
        self._next = 1
        try:
            os.mkdir(root_dir)
        except OSError as e:
            if e.args[0] != _EEXIST:
                raise e
        self._acked = self._read_ack()
        self._recover()
        self._reclaim()

    # -- queries ------------------------------------------------------------------------

    @micropython.native
    def next_seq(self):
        """The sequence number the next ``append`` will assign."""
        return self._next

    def last_seq(self):
        """Sequence number of the newest record (0 when none was ever written)."""
        return self._next - 1

    def acked_seq(self):
        """The last sequence number the server acknowledged (as persisted)."""
        return self._acked

    @micropython.native
    def first_unacked(self):
        """Sequence number of the oldest record still to be sent."""
        lo = self._acked
        if self._segs and self._segs[0] - 1 > lo:
            lo = self._segs[0] - 1
        return lo + 1

    @micropython.native
    def unacked_count(self):
        return self._next - self.first_unacked()

    def fill_permille(self):
        """How full the journal is, 0..1000: unacknowledged records against ``max_records``,
        or (without ``max_records``) the used blocks of the journal's own partition."""
        if self._max:
            return min(1000, self.unacked_count() * 1000 // self._max)
        st = os.statvfs(self._root or "/")
        if not st[2]:
            return 0
        return (st[2] - st[3]) * 1000 // st[2]

    # -- appending ----------------------------------------------------------------------

    @micropython.native
    def append(self, buf):
        """Assign the next sequence number to the 64-byte record in ``buf`` (bytes 0-55
        filled), chain and sign it in place, store and flush it; returns its sequence number.

        :raises JournalFull: ``max_records`` unacknowledged records, or the filesystem is full
        :raises OSError: the flash failed (the record is not stored; recovery runs next time)
        """
        if len(buf) != _REC:
            raise JournalError("record must be %d bytes, got %d" % (_REC, len(buf)))
        if self._max and self.unacked_count() >= self._max:
            raise JournalFull(FULL_MESSAGE)
        seq = self._next
        struct.pack_into("<I", buf, _SEQ_AT, seq)
        records.sign_into(buf, self._key, self._link)
        new_segment = self._f is None and (self._tail is None or self._torn
                                           or self._tail_count >= self._seg_n)
        try:
            if new_segment:
                self._f = open(self._path(seq), "wb")
            elif self._f is None:
                self._f = open(self._path(self._tail), "ab")
            self._f.write(buf)
            self._f.flush()
        except OSError as e:
            self._close()
            self._recover()
            if self._next == seq + 1 and self._tail_record_equals(buf):
                return seq  # the flash took it after all
            if e.args[0] == _ENOSPC:
                raise JournalFull(FULL_MESSAGE)
            raise e
        if new_segment:
            self._segs.append(seq)
            self._tail = seq
            self._tail_count = 0
            self._torn = False
        self._tail_count += 1
        self._next = seq + 1
        self._link[:] = records.link_of(buf)
        if self._tail_count >= self._seg_n:
            self._close()
        return seq

    # -- reading and acknowledging ------------------------------------------------------

    def read_unacked(self, start_seq, out_buf, max_records):
        """Copy records ``start_seq``, ``start_seq + 1``, ... (at most ``max_records`` and as
        many as fit in ``out_buf``) into ``out_buf``; returns how many were copied.

        :raises JournalError: ``start_seq`` is older than the oldest stored record
        """
        n = min(max_records, self._next - start_seq, len(out_buf) // _REC)
        if n <= 0:
            return 0
        if not self._segs or start_seq < self._segs[0]:
            raise JournalError("record %d is no longer stored (oldest is %d)"
                               % (start_seq, self._segs[0] if self._segs else self._next))
        out = memoryview(out_buf)
        done = 0
        i = len(self._segs) - 1
        while self._segs[i] > start_seq:
            i -= 1
        while done < n:
            first = self._segs[i]
            end = self._segs[i + 1] if i + 1 < len(self._segs) else self._next
            seq = start_seq + done
            k = min(n - done, end - seq)
            with open(self._path(first), "rb") as f:
                f.seek((seq - first) * _REC)
                got = f.readinto(out[done * _REC:(done + k) * _REC])
            if got != k * _REC:
                raise JournalError("segment %s is short: expected %d bytes at record %d, got %d"
                                   % (self._path(first), k * _REC, seq, got or 0))
            done += k
            i += 1
        return n

    def ack(self, seq):
        """Persist that the server holds every record up to ``seq``, then delete segments
        that are wholly acknowledged (never the one holding the newest record).

        :raises JournalError: ``seq`` is beyond the newest record
        """
        if seq <= self._acked:
            return
        if seq >= self._next:
            raise JournalError("cannot acknowledge record %d: the newest record is %d"
                               % (seq, self._next - 1))
        try:
            self._write_ack(seq)
        except OSError as e:
            if e.args[0] != _ENOSPC:
                raise e
            # Flash full: the server holds these records, so their segments may go first.
            self._acked = seq
            self._reclaim()
            self._write_ack(seq)
        self._acked = seq
        self._reclaim()

    def check(self):
        """Verify MAC, sequence and chain of every stored record; returns how many.

        :raises JournalError: naming the first record that fails
        """
        prev = None
        count = 0
        seq = self._segs[0] if self._segs else self._next
        while seq < self._next:
            if not self.read_unacked(seq, self._buf, 1):
                raise JournalError("record %d cannot be read" % seq)
            rec = self._buf
            if records.seq_of(rec) != seq or not records.verify(rec, self._key):
                raise JournalError("record %d fails its MAC or carries seq %d"
                                   % (seq, records.seq_of(rec)))
            want = records.GENESIS_LINK if seq == 1 else prev
            if want is not None and records.prev_link_of(rec) != want:
                raise JournalError("record %d does not chain to record %d" % (seq, seq - 1))
            prev = records.link_of(rec)
            count += 1
            seq += 1
        return count

    def close(self):
        self._close()

    # -- internals ----------------------------------------------------------------------

    def _path(self, first):
        return "%s/s%08x.jnl" % (self._root, first)

    def _close(self):
        f = self._f
        self._f = None
        if f is not None:
            try:
                close_file(f)
            except OSError:
                pass

    def _read_ack(self):
        return read_tagged(self._root + "/ack", _ACK_MAGIC)

    def _write_ack(self, seq):
        write_tagged(self._root + "/ack", _ACK_MAGIC, seq)

    def _list_segments(self):
        segs = []
        for name in os.listdir(self._root or "/"):
            if len(name) == 13 and name[0] == "s" and name.endswith(".jnl"):
                try:
                    segs.append(int(name[1:9], 16))
                except ValueError:
                    pass
        segs.sort()
        return segs

    def _recover(self):
        """Find the newest valid record and set the tail state from it (see module docs)."""
        self._close()
        segs = self._list_segments()
        k = 0
        while segs:
            first = segs[-1]
            size = os.stat(self._path(first))[6]
            k = self._valid_tail(first, size // _REC, segs)
            if k:
                break
            os.remove(self._path(first))  # only a torn record, never a completed one
            segs.pop()
        self._segs = segs
        if not segs:
            if self._acked:
                raise JournalError("journal segments missing: record %d was acknowledged but "
                                   "no segment is left to continue the chain; re-provision"
                                   % self._acked)
            self._tail = None
            self._tail_count = 0
            self._torn = False
            self._next = 1
            self._link[:] = records.GENESIS_LINK
            return
        self._tail = first
        self._tail_count = k
        self._torn = size != k * _REC
        self._next = first + k
        if self._acked >= self._next:
            self._acked = self._next - 1

    def _valid_tail(self, first, n, segs):
        """Number of valid records at the start of segment ``first`` (holding ``n`` whole
        records), checking backwards from the end; sets ``_link`` from the newest one."""
        buf = self._buf
        with open(self._path(first), "rb") as f:
            for i in range(n - 1, -1, -1):
                f.seek(i * _REC)
                if f.readinto(buf) != _REC:
                    continue
                if records.seq_of(buf) != first + i or not records.verify(buf, self._key):
                    continue
                want = self._link_before(f, first, i, segs)
                if want is not None and bytes(memoryview(buf)[_LINK_AT:_LINK_END]) != want:
                    continue
                self._link[:] = records.link_of(buf)
                return i + 1
        return 0

    def _link_before(self, f, first, i, segs):
        """The link record ``first + i`` must carry, or None if its predecessor is gone."""
        if first + i == 1:
            return records.GENESIS_LINK
        prev = self._buf2
        if i > 0:
            f.seek((i - 1) * _REC)
            if f.readinto(prev) != _REC:
                return b""
            return records.link_of(prev)
        j = segs.index(first)
        if j == 0:
            return None  # earlier segments were acknowledged and deleted
        before = segs[j - 1]
        with open(self._path(before), "rb") as g:
            g.seek((first - 1 - before) * _REC)
            if g.readinto(prev) != _REC:
                return b""
        return records.link_of(prev)

    def _tail_record_equals(self, buf):
        return self.read_unacked(self._next - 1, self._buf2, 1) == 1 and self._buf2 == buf

    def _reclaim(self):
        """Delete segments whose records are all acknowledged, except the newest one."""
        segs = self._segs
        while len(segs) > 1 and segs[1] - 1 <= self._acked:
            os.remove(self._path(segs[0]))
            segs.pop(0)
