"""What one running server holds: the connection pool, the key ring and the clock.

``create_app`` puts a ``ServerState`` in ``app.extensions["campuscard"]``; views reach it
through ``state()`` and the per-thread database through ``get_db()``.
"""

from __future__ import annotations

import threading

from flask import current_app

from sync_server import macworker, store, upkeep
from sync_server.chaincache import ChainCache
from sync_server.clock import SystemClock
from sync_server.keys import KeyRing

SWEEP_EVERY_S = 30


class ServerState:
    def __init__(self, db_path: str, clock: SystemClock, mac_helper: bool = False) -> None:
        self.pool = store.Pool(db_path, autocheckpoint=upkeep.POOL_AUTOCHECKPOINT)
        self.upkeep = upkeep.Upkeep(self.pool).start()
        self.clock = clock
        self.keys = KeyRing.load(self.pool.get())
        self.chains = ChainCache()
        self.chains.recover(self.pool.get())
        self.last_sweep = 0
        self.sweep_lock = threading.Lock()
        # Uploads run one at a time on one connection, whose page cache then stays warm
        # (a connection reloads its cache whenever another one wrote; see docs/server.md).
        self.upload_lock = threading.Lock()
        self.upload_db = self.pool.dedicated()
        self.macs = macworker.MacWorker().start() if mac_helper else None


def state() -> ServerState:
    return current_app.extensions["campuscard"]


def get_db() -> store.Database:
    return state().pool.get()


def now() -> int:
    return state().clock.now()
