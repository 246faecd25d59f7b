"""A helper process fed over a socket pair, shared by the server's threads: requests go out
in order, their answers come back in the same order, several in flight at once. The record-MAC
helper (``macworker``) and the ingest process (``ingest_process``) are such helpers.

Usage::

    pipe = HelperPipe("MAC helper").start([sys.executable, "helper.py"])   # the fd is appended
    job = pipe.submit(b"request")      # None: the helper is not running
    answer = pipe.result(job)          # None: the helper failed (every waiting job fails too)
    pipe.stop()
"""

from __future__ import annotations

import collections
import logging
import socket
import subprocess
import threading
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)


class Job:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.answer: bytes | None = None
        self.done = False


class HelperPipe:
    """One helper process; ``name`` is what the log calls it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._conn: Connection | None = None
        self._proc: Any = None
        self._queue: collections.deque[Job] = collections.deque()
        self._send_lock = threading.RLock()  # _broken takes it again from submit
        self._recv_lock = threading.Lock()

    def start(self, argv: list[str]) -> HelperPipe:
        """Run ``argv`` plus the number of its end of the socket pair (room for several requests
        in flight)."""
        mine, theirs = socket.socketpair()
        self._proc = subprocess.Popen(argv + [str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                                      stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(mine.detach())
        return self

    @property
    def running(self) -> bool:
        return self._conn is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def submit(self, data: bytes) -> Job | None:
        """Send a request; None if the helper is not running."""
        if self._conn is None:
            return None
        job = Job()
        with self._send_lock:
            try:
                self._conn.send_bytes(data)
            except OSError:
                self._broken("send")
                return None
            self._queue.append(job)
        return job

    def result(self, job: Job | None, timeout: float | None = None) -> bytes | None:
        """The answer to a submitted request, or None if the helper failed or did not answer
        within ``timeout`` seconds (then it is stopped: every waiting request fails)."""
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
                    if timeout is not None and not conn.poll(timeout):
                        self._broken(f"answer within {timeout:g} s")
                        self.kill()
                        return None
                    answer = conn.recv_bytes()
                except (EOFError, OSError):
                    self._broken("receive")
                    return None
                with self._send_lock:
                    first = self._queue.popleft()
                first.answer, first.done = answer, True
        return job.answer

    def _broken(self, what: str) -> None:
        """The helper is gone: fail every waiting request."""
        log.error("%s process failed to %s", self.name, what)
        with self._send_lock:
            self._conn = None
            while self._queue:
                job = self._queue.popleft()
                job.done = True

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the pipe (the helper reads the end of its input and leaves) and wait for it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
