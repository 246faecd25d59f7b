"""Flash store figures on the MicroPython unix port, over littlefs (vfs.VfsLfs2) on host files.

Run as ``micropython -X heapsize=64K benchmarks/flash_store_mpy.py`` with the environment of
``tools.mpy_runtime.micropython_env()``: MICROPYPATH holds the compiled bytecode (build/mpy)
before the repository, because compiling the device modules from source does not fit a
64 KB heap (from source only, give it ``-X heapsize=256K``; the figures do not change).

(a) Blacklist: builds lists of 1,000 and 200,000 entries with the streaming writer on a 4 MB
    littlefs volume (4096-byte blocks), then times 2,000 lookups through
    ``Blacklist.is_blacklisted`` (half members, half not, spread over the list; the cost of
    making the probe UIDs is measured separately and subtracted) and the heap the open list
    takes plus what the lookups allocate.
(b) Journal: appends records to a fresh 2 MB littlefs volume (4096-byte blocks x 512, the
    journal partition) until ``JournalFull``; reports the count, the time per append and the
    bytes programmed per append.

Last line: one JSON object with the figures.
"""

import gc
import json
import os
import time

from firmware import flashdev
from firmware.blacklist import Blacklist
from firmware.journal import Journal, JournalFull
from protocol import records

_STEP = 1000  # member i has key 04 + (i * _STEP) as 6 bytes; i * _STEP + 1 is never a member
_LOOKUPS = 2000
_KEY = b"benchmark terminal key 012345678"


def _key_into(buf, v):
    buf[0] = 0x04
    for j in range(6, 0, -1):
        buf[j] = v & 0xFF
        v >>= 8


def _build(bl, n):
    """Stream ``n`` ascending keys into a full list, 64 keys per chunk."""
    chunk = bytearray(7 * 64)
    key = bytearray(7)
    w = bl.begin_full(1)
    i = 0
    while i < n:
        k = min(64, n - i)
        for j in range(k):
            _key_into(key, (i + j) * _STEP)
            chunk[j * 7:j * 7 + 7] = key
        w.write_chunk(memoryview(chunk)[:k * 7])
        i += k
    w.commit()
    bl.mark_updated(1700000000)


def _probe_loop(bl, n, lookup):
    """``_LOOKUPS`` probes: even ones members, odd ones not, indices spread by an LCG."""
    key = bytearray(7)
    mv = memoryview(key)
    x = 12345
    hits = 0
    t0 = time.ticks_us()
    for p in range(_LOOKUPS):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        _key_into(key, (x % n) * _STEP + (p & 1))
        if lookup and bl.is_blacklisted(mv, 7):
            hits += 1
    return time.ticks_diff(time.ticks_us(), t0), hits


def _blacklist_figures(n, path):
    dev = flashdev.FileBlockDev(path, 4096, 1024)
    flashdev.format_and_mount(dev, "/bench_bl")
    try:
        t0 = time.ticks_ms()
        bl = Blacklist("/bench_bl/bl")
        _build(bl, n)
        build_s = time.ticks_diff(time.ticks_ms(), t0) / 1000
        bl._store._close()
        bl = None
        gc.collect()
        before = gc.mem_alloc()
        bl = Blacklist("/bench_bl/bl")
        gc.collect()
        footprint = gc.mem_alloc() - before
        if bl.count() != n:
            raise RuntimeError(f"built {n} entries, the list says {bl.count()}")
        _probe_loop(bl, n, True)  # warm up
        gc.collect()
        gc.disable()
        try:
            a0 = gc.mem_alloc()
            with_lookup, hits = _probe_loop(bl, n, True)
            allocated = gc.mem_alloc() - a0
        finally:
            gc.enable()
        overhead, _ = _probe_loop(bl, n, False)
        if hits != _LOOKUPS // 2:
            raise RuntimeError(f"{hits} of {_LOOKUPS} probes hit, expected {_LOOKUPS // 2}")
        bl._store._close()
        return {"ms": (with_lookup - overhead) / 1000 / _LOOKUPS, "heap": footprint + allocated,
                "footprint": footprint, "allocated": allocated, "build_s": build_s}
    finally:
        flashdev.unmount("/bench_bl")
        dev.close()
        os.remove(path)


def _journal_figures(path):
    dev = flashdev.FileBlockDev(path, 4096, 512)
    flashdev.format_and_mount(dev, "/bench_j")
    try:
        j = Journal("/bench_j", _KEY)
        buf = bytearray(records.RECORD_SIZE)
        records.encode_into(buf, records.PURCHASE, 0, 1001, 1, 1700000000, b"\x04\xa1\xb2\xc3",
                            1, 350, 10000, 9650)
        ops0 = dev.programmed
        t0 = time.ticks_ms()
        n = 0
        while True:
            try:
                j.append(buf)
            except JournalFull:
                break
            n += 1
        ms = time.ticks_diff(time.ticks_ms(), t0)
        programmed = dev.programmed - ops0
        if j.last_seq() != n or j.unacked_count() != n:
            raise RuntimeError(f"journal says {j.last_seq()} records, {n} appended")
        j.close()
        flashdev.remount(dev, "/bench_j")
        j = Journal("/bench_j", _KEY)
        if j.last_seq() != n:
            raise RuntimeError(f"after a remount the journal holds {j.last_seq()} of {n}")
        j.close()
        return {"records": n, "append_ms": ms / n, "programmed_per_append": programmed // n}
    finally:
        flashdev.unmount("/bench_j")
        dev.close()
        os.remove(path)


def main():
    tag = "".join(f"{b:02x}" for b in os.urandom(4))
    small = _blacklist_figures(1000, f"/tmp/cc-bench-bl-{tag}.img")
    print("blacklist 1,000 entries: {:.4f} ms per lookup, heap {} bytes ({} open + {} allocated)"
          .format(small["ms"], small["heap"], small["footprint"], small["allocated"]))
    large = _blacklist_figures(200000, f"/tmp/cc-bench-bl-{tag}.img")
    print("blacklist 200,000 entries: {:.4f} ms per lookup, heap {} bytes ({} open + {} allocated),"
          " built in {:.1f} s".format(large["ms"], large["heap"], large["footprint"],
                                      large["allocated"], large["build_s"]))
    jf = _journal_figures(f"/tmp/cc-bench-j-{tag}.img")
    print("journal: {} records in 2 MB, {:.3f} ms and {} bytes programmed per append"
          .format(jf["records"], jf["append_ms"], jf["programmed_per_append"]))
    print(json.dumps({
        "blacklist_entries": 200000,
        "blacklist_lookup_ms": round(large["ms"], 4),
        "blacklist_heap_bytes_small": small["heap"],
        "blacklist_heap_bytes_large": large["heap"],
        "blacklist_lookup_ms_small": round(small["ms"], 4),
        "journal_capacity_records_2mb": jf["records"],
        "journal_append_ms": round(jf["append_ms"], 4),
        "journal_bytes_programmed_per_append": jf["programmed_per_append"],
    }))


if __name__ == "__main__":
    main()
