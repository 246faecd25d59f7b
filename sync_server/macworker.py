"""Record MACs and hash links of an upload, computed by a helper process so that the server's
one GIL-bound thread does not spend a fifth of every upload on them.

``digest(key, joined)`` is the one definition: the helper runs it, and the server runs it
itself when there is no helper (tests, command line) or the helper stopped. The server sends
a batch before the upload takes its turn and collects the answer when it needs it, so the
hashing of one upload overlaps the database work of another.

Usage::

    macs, links = macworker.digest(key, b"".join(records))    # 8 bytes per record each
    worker = macworker.MacWorker().start()
    job = worker.submit(key, joined)
    macs, links = worker.result(job) or macworker.digest(key, joined)
"""

from __future__ import annotations

import hashlib
import os
import sys
from multiprocessing.connection import Connection
from typing import Any

from protocol import records
from sync_server.helperpipe import HelperPipe, Job

SIZE = records.RECORD_SIZE
MAC_AT = records.RECORD_SIZE - records.MAC_SIZE  # the MAC covers the bytes before it
TAG = records.MAC_SIZE  # bytes of each MAC and each link (LINK_SIZE is the same)
KEY = 32  # terminal key length


def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the HMAC inner and outer key blocks (RFC 2104)."""
    block = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\x00")
    return hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block))


def digest(key: bytes, joined: bytes, pads: tuple[Any, Any] | None = None) -> tuple[bytes, bytes]:
    """(MACs, links) of the records in ``joined``: per record the first 8 bytes of its
    HMAC-SHA256 over bytes 0..55 under ``key``, and of its SHA-256 (its link)."""
    inner, outer = pads or _pads(key)
    icopy, ocopy, sha256 = inner.copy, outer.copy, hashlib.sha256
    macs: list[bytes] = []
    links: list[bytes] = []
    mac, link = macs.append, links.append
    for at in range(0, len(joined), SIZE):
        raw = joined[at:at + SIZE]
        h = icopy()
        h.update(raw[:MAC_AT])
        o = ocopy()
        o.update(h.digest())
        mac(o.digest()[:TAG])
        link(sha256(raw).digest()[:TAG])
    return b"".join(macs), b"".join(links)


def _serve(conn: Connection) -> None:
    """The helper: answer each ``key + joined`` with ``macs + links`` until the pipe closes."""
    pads: dict[bytes, tuple[Any, Any]] = {}
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        key = data[:KEY]
        if key not in pads:
            if len(pads) > 10000:
                pads.clear()
            pads[key] = _pads(key)
        macs, links = digest(key, data[KEY:], pads[key])
        conn.send_bytes(macs + links)


class MacWorker:
    """One helper process; answers come back in the order the batches were sent."""

    def __init__(self) -> None:
        self.pipe = HelperPipe("MAC helper")

    def start(self) -> MacWorker:
        """Run this file as the helper process."""
        self.pipe.start([sys.executable, os.path.abspath(__file__)])
        return self

    def submit(self, key: bytes, joined: bytes) -> Job | None:
        """Send a batch; None if the helper is not running (compute it yourself)."""
        if len(key) != KEY:
            return None
        return self.pipe.submit(key + joined)

    def result(self, job: Job | None, count: int) -> tuple[bytes, bytes] | None:
        """(MACs, links) of a submitted batch of ``count`` records, or None if the helper failed."""
        answer = self.pipe.result(job)
        if answer is None or len(answer) != 2 * TAG * count:
            return None
        return answer[:TAG * count], answer[TAG * count:]

    def stop(self) -> None:
        self.pipe.stop()


if __name__ == "__main__":  # the helper: python macworker.py FD
    _serve(Connection(int(sys.argv[1])))
