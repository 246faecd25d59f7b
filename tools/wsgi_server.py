"""``campuscard server``: the sync server app under gunicorn, one worker process of threads.

One worker, because the server keeps state in its process and its helpers (the ingest
process with the chain-state write-behind cache, the MAC helper, the upkeep thread) over one
SQLite file. Its
``gthread`` loop waits on epoll, so an idle or queued connection costs nothing per event; the
waitress server used before walked every open channel on every poll, and with 2,000
terminals connected that walk took the whole CPU (docs/server.md, "Serving").

Usage::

    serve("campus.db", "0.0.0.0", 8080, threads=4)   # returns when the server is stopped
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

#: Seconds a worker may go without reporting to the arbiter before it is restarted; the
#: worker's event loop reports at least every second, so this only catches a hung process.
WORKER_TIMEOUT_S = 300
#: Seconds ``SIGTERM`` leaves requests in flight to finish before the worker is killed.
GRACEFUL_TIMEOUT_S = 10
#: Seconds an idle keep-alive connection stays open (a terminal's sync cycle reuses one).
KEEPALIVE_S = 5


class SyncServerApplication(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's embedding API: the options below, and the app built in the worker."""

    def __init__(self, db_path: str, options: dict[str, Any], test_clock: bool) -> None:
        self.db_path, self.options, self.test_clock = db_path, options, test_clock
        self.app: Flask | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the app inside the worker: its threads and MAC helper must not cross a fork."""
        from sync_server import create_app, settle_gc

        self.app = create_app({"DATABASE": self.db_path, "TEST_CLOCK": self.test_clock, "MAC_HELPER": True,
                               "INGEST_PROCESS": True})
        settle_gc()
        return self.app

    def flush(self) -> None:
        """Cached chain states to disk and helpers stopped as the worker leaves (stop, restart
        or crash)."""
        if self.app is not None:
            self.app.extensions["campuscard"].close()


def serve(db_path: str, host: str, port: int, *, threads: int = 4, connection_limit: int = 4096,
          test_clock: bool = False) -> None:
    """Run until SIGTERM/SIGINT; exits non-zero if the app cannot start (bad database...)."""
    url = f"http://{host}:{port}/"
    application: SyncServerApplication

    def ready(_worker: Any) -> None:
        print("campuscard sync server on {} (database {}{})".format(
            url, db_path, ", TEST CLOCK" if test_clock else ""), flush=True)

    options = {
        "bind": f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "worker_connections": connection_limit,
        "backlog": 4096,
        "keepalive": KEEPALIVE_S,
        "timeout": WORKER_TIMEOUT_S,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "limit_request_field_size": 8190,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "campuscard-server",
        "preload_app": False,
        "post_worker_init": ready,  # the app is built: requests are answered from now on
        "worker_exit": lambda _arbiter, _worker: application.flush(),
    }
    application = SyncServerApplication(db_path, options, test_clock)
    application.run()
    sys.exit(0)
