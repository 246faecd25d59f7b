"""The server's clock: UTC seconds, injectable so tests can move time forward.

``app.clock`` is a ``SystemClock`` unless the server was started with ``--test-clock``, in
which case it is a ``TestClock`` that an admin endpoint can advance (72 h for a card
replacement, days for an overdue credit wallet) without waiting.

Usage::

    clock = TestClock()
    clock.advance(72 * 3600)
    clock.now()          # time.time() + 259200, as an int
"""

from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall-clock UTC seconds."""

    adjustable = False

    def now(self) -> int:
        return int(time.time())


class TestClock(SystemClock):
    """Wall-clock time plus an offset that only ever grows."""

    __test__ = False  # not a pytest test class
    adjustable = True

    def __init__(self, offset: int = 0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> int:
        return int(time.time()) + self._offset

    def advance(self, seconds: int) -> int:
        """Move the clock ``seconds`` forward; returns the new time."""
        if seconds < 0:
            raise ValueError(f"the test clock only moves forward, got {seconds} s")
        with self._lock:
            self._offset += seconds
        return self.now()
