"""Database upkeep on a thread of its own, so that uploads never wait for it: the card index
catch-up (``store.cardindex``, another file) and copying the WAL into the database file.

Both are single SQLite calls that run outside the GIL, on the second core while uploads go
on. The checkpoint copies the WAL without the write lock (``PRAGMA wal_checkpoint(PASSIVE)``
lets writers append meanwhile), then takes the lock for the few frames written in between,
so that the next write starts the WAL over and it does not grow. The server's connections
keep an automatic checkpoint at four times the usual size as a safety net.

Usage::

    upkeep = Upkeep(pool)    # ServerState starts one
    upkeep.poke(rows)        # after an upload commits: wakes when an index catch-up is due
    upkeep.stop()
"""

from __future__ import annotations

import logging
import threading
import time

from sync_server import store
from sync_server.store import records as rstore

CHECKPOINT_EVERY_S = 1.0
POOL_AUTOCHECKPOINT = 4 * store.WAL_CHECKPOINT_PAGES  # pages: only if this thread falls behind

log = logging.getLogger(__name__)


class Upkeep:
    def __init__(self, pool: store.Pool, index_rows: int = rstore.INDEX_CATCH_UP_ROWS) -> None:
        self.pool = pool
        self.index_rows = index_rows
        self._db: store.Database | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._checkpointed = 0.0
        self._rows = 0
        self._thread = threading.Thread(target=self._loop, name="campuscard-upkeep", daemon=True)

    def start(self) -> Upkeep:
        self._thread.start()
        return self

    def poke(self, rows: int = 0) -> None:
        """``rows`` records were stored: wake up once enough for an index catch-up have come
        (checkpoints come every second anyway). Waking for every upload would cost more than
        it does: its few queries would contend for the GIL with the next upload's inserts."""
        self._rows += rows
        if self._rows >= self.index_rows:
            self._rows = 0
            self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self, force: bool = False) -> dict[str, int]:
        """One round: index the record tail if it is long enough, checkpoint if due."""
        if self._db is None:
            self._db = self.pool.dedicated()
        out = {"indexed": rstore.catch_up_index(self._db, 1 if force else self.index_rows), "wal_frames": 0}
        if force or time.monotonic() - self._checkpointed >= CHECKPOINT_EVERY_S:
            self._checkpointed = time.monotonic()
            out["wal_frames"] = store.checkpoint(self._db, self.pool.write_lock)[0]
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(CHECKPOINT_EVERY_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - upkeep must never stop the server; next round retries
                log.exception("database upkeep failed")
