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

import collections
import hashlib
import logging
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from protocol import records

SIZE = records.RECORD_SIZE
MAC_AT = records.RECORD_SIZE - records.MAC_SIZE  # the MAC covers the bytes before it
TAG = records.MAC_SIZE  # bytes of each MAC and each link (LINK_SIZE is the same)
KEY = 32  # terminal key length

log = logging.getLogger(__name__)


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


class _Job:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.answer: bytes | None = None
        self.done = False


class MacWorker:
    """One helper process; answers come back in the order the batches were sent."""

    def __init__(self) -> None:
        self._conn: Connection | None = None
        self._proc: Any = None
        self._queue: collections.deque[_Job] = collections.deque()
        self._send_lock = threading.RLock()  # _broken takes it again from submit
        self._recv_lock = threading.Lock()

    def start(self) -> MacWorker:
        """Run this file as the helper (it imports nothing but the standard library), talking
        over a socket pair: room for several batches in flight."""
        mine, theirs = socket.socketpair()
        self._proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(mine.detach())
        return self

    def submit(self, key: bytes, joined: bytes) -> _Job | None:
        """Send a batch; None if the helper is not running (compute it yourself)."""
        if self._conn is None or len(key) != KEY:
            return None
        job = _Job()
        with self._send_lock:
            try:
                self._conn.send_bytes(key + joined)
            except OSError:
                self._broken("send")
                return None
            self._queue.append(job)
        return job

    def result(self, job: _Job | None, count: int) -> tuple[bytes, bytes] | None:
        """(MACs, links) of a submitted batch of ``count`` records, or None if the helper failed."""
        if job is None:
            return None
        while not job.done:
            with self._recv_lock:
                if job.done:
                    break
                conn = self._conn
                try:
                    if conn is None:
                        raise EOFError
                    answer = conn.recv_bytes()
                except (EOFError, OSError):
                    self._broken("receive")
                    return None
                with self._send_lock:
                    first = self._queue.popleft()
                first.answer, first.done = answer, True
        answer = job.answer
        if answer is None or len(answer) != 2 * TAG * count:
            return None
        return answer[:TAG * count], answer[TAG * count:]

    def _broken(self, what: str) -> None:
        """The helper is gone: fail every waiting batch (their callers compute themselves)."""
        log.error("MAC helper process failed to %s; checking MACs in the server from now on", what)
        with self._send_lock:
            self._conn = None
            while self._queue:
                job = self._queue.popleft()
                job.done = True

    def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # the helper reads the end of its input and leaves
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()


if __name__ == "__main__":  # the helper: python macworker.py FD
    _serve(Connection(int(sys.argv[1])))
