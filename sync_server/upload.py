"""The transaction of one terminal upload as one call: the request's nonce, the records, the
heartbeat that came with them and the versions its answer names. The ingest process runs it
(``ingest_process``); a server without one (tests, tools) runs it in the request's thread.

Usage::

    ack = upload.commit(db, checked, terminal, now, nonce, ts, hb, cache)
    # {"acked": 1200, "rejected": [...]} (+ the heartbeat answer's versions when hb is given)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sync_server import auth, ingest, params, store
from sync_server.chaincache import ChainCache
from sync_server.store import cards as cstore
from sync_server.store import terminals as tstore


def versions(db: store.Database) -> dict[str, int]:
    """What a heartbeat answer names, so the terminal skips the requests for what it holds."""
    return {"blacklist_version": cstore.blacklist_version(db), "params_version": params.version(db),
            "loads_version": cstore.pending_loads_fingerprint(db, params.MAX_LOADS_PER_REPLY)}


def commit(db: store.Database, checked: ingest.Checked, terminal: dict[str, Any], now: int, nonce: bytes, ts: int,
          hb: dict[str, Any] | None, cache: ChainCache, poke: Callable[[int], None] | None = None
          ) -> dict[str, Any]:
    """Store a checked upload in one transaction with its nonce (``Conflict`` if replayed) and
    its heartbeat ``hb`` (fields checked by the caller); returns the ack's fields."""
    tid = terminal["id"]
    extra: dict[str, int] = {}

    def heartbeat_too(acked: int) -> None:
        if hb is not None:  # what the terminal holds once this batch is acknowledged
            tstore.save_heartbeat(db, tid, dict(hb, unacked=max(0, hb["last_seq"] - acked)), now)
            extra.update(versions(db), server_time=now)

    ack = ingest.store_upload(db, checked, terminal, now, claim=lambda: auth.claim(db, tid, nonce, ts), cache=cache,
                              poke=poke, finish=heartbeat_too)
    return dict(ack, **extra)
