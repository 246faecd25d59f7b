"""What one running server holds: the connection pool, the key ring, the clock and its helpers
(the ingest process, the MAC helper, the upkeep thread).

``create_app`` puts a ``ServerState`` in ``app.extensions["campuscard"]``; views reach it
through ``state()`` and the per-thread database through ``get_db()``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from flask import current_app

from sync_server import ingest, macworker, store, upkeep, upload
from sync_server.chaincache import ChainCache
from sync_server.clock import SystemClock
from sync_server.keys import KeyRing

if TYPE_CHECKING:
    from sync_server.auth import TerminalRequest
    from sync_server.ingest_process import IngestProcess

SWEEP_EVERY_S = 30


class ServerState:
    """:param ingest_process: run upload transactions in a process of their own
    (``ingest_process``); otherwise in the request threads, one at a time."""

    def __init__(self, db_path: str, clock: SystemClock, mac_helper: bool = False,
                 ingest_process: bool = False) -> None:
        self.pool = store.Pool(db_path, autocheckpoint=upkeep.POOL_AUTOCHECKPOINT)
        self.upkeep = upkeep.Upkeep(self.pool).start()
        self.clock = clock
        self.keys = KeyRing.load(self.pool.get())
        self.ingester: IngestProcess | None = None
        if ingest_process:
            from sync_server.ingest_process import IngestProcess  # it imports this module's users

            self.ingester = IngestProcess(db_path).start()
        self.chains = ChainCache()
        if self.ingester is None:
            self.chains.recover(self.pool.get())
        self.last_sweep = 0
        self.sweep_lock = threading.Lock()
        # Uploads are checked one at a time: the first of several arriving together goes to
        # the ingest process first, instead of all of them late. Without an ingest process
        # their transactions run one at a time too, on one connection whose page cache then
        # stays warm (a connection reloads it whenever another one wrote).
        self.upload_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self.upload_db = self.pool.dedicated()
        self.macs = macworker.MacWorker().start() if mac_helper else None

    def commit_upload(self, checked: ingest.Checked, req: TerminalRequest) -> dict[str, Any]:
        """Store a checked upload with its nonce and heartbeat (``upload.commit``); the ack's fields."""
        hb = req.msg.get("hb")
        if self.ingester is not None:
            ack, stored = self.ingester.commit(checked, req.terminal, req.now, req.msg["nonce"], req.msg["ts"], hb)
            self.upkeep.poke(stored)
            return ack
        with self._commit_lock:
            return upload.commit(self.upload_db, checked, req.terminal, req.now, req.msg["nonce"], req.msg["ts"],
                                 hb, self.chains, self.upkeep.poke)

    def flush_chains(self) -> int:
        """Write the cached card chain states to ``card_chain`` (before reading it elsewhere)."""
        if self.ingester is not None:
            return self.ingester.flush()
        return self.chains.flush(self.pool.get())

    def close(self) -> None:
        """As the server leaves: the chain states to disk, helpers stopped."""
        if self.ingester is not None:
            self.ingester.stop()  # it writes its cache as it leaves
        else:
            self.chains.flush(self.pool.get())
        if self.macs is not None:
            self.macs.stop()
        self.upkeep.stop()


def state() -> ServerState:
    return current_app.extensions["campuscard"]


def get_db() -> store.Database:
    return state().pool.get()


def now() -> int:
    return state().clock.now()
