"""The sync server: a Flask app over one SQLite database (see docs/server.md).

``create_app`` builds the app: the terminal API (sealed CBOR, ``terminal_api``) and the admin
API (JSON, ``admin_api``) over the storage layer in ``store``. ``campuscard server`` serves it
with gunicorn (``tools.wsgi_server``).

Usage::

    from sync_server import create_app
    app = create_app({"DATABASE": "campus.db"})           # TEST_CLOCK: True for an adjustable clock,
                                                          # MAC_HELPER: True for a record-MAC helper process,
                                                          # INGEST_PROCESS: True for an ingest process
    app.extensions["campuscard"].clock.now()
"""

from __future__ import annotations

import gc
from typing import Any

from flask import Flask, Response, jsonify, request

MAX_REQUEST_BYTES = 256 * 1024  # a 2000-record upload is about 130 KB


def settle_gc() -> None:
    """Garbage collection for a server process once it has started (the worker, the ingest
    process): what start-up made lives as long as the process, so keep it out of collections;
    an upload allocates ~10 objects a record, nearly all short-lived."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``DATABASE`` names the SQLite file (created and migrated if needed)."""
    from sync_server import admin_api, doors_api, terminal_api  # noqa: F401 (doors_api: admin routes)
    from sync_server.clock import SystemClock, TestClock
    from sync_server.context import ServerState

    app = Flask(__name__)
    app.config.from_mapping(DATABASE="campuscard.db", TEST_CLOCK=False, MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
                            JSON_SORT_KEYS=False, MAC_HELPER=False, INGEST_PROCESS=False)
    if test_config:
        app.config.from_mapping(test_config)
    clock = TestClock() if app.config["TEST_CLOCK"] else SystemClock()
    app.extensions["campuscard"] = ServerState(app.config["DATABASE"], clock, mac_helper=app.config["MAC_HELPER"],
                                               ingest_process=app.config["INGEST_PROCESS"])
    app.register_blueprint(terminal_api.bp)
    app.register_blueprint(admin_api.bp)

    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def _http_error(e: Any) -> Any:
        text = f"{e.name}: {e.description}"
        if request.path.startswith(terminal_api.bp.url_prefix or "/api/v1/terminal"):
            return terminal_api.error_response(e.code, text)
        return jsonify(error=text), e.code

    @app.get("/")
    def index() -> Response:
        return jsonify(service="campuscard sync server", terminal_api="/api/v1/terminal/",
                       admin_api="/api/v1/admin/")

    return app
