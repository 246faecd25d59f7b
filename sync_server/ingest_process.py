"""The ingest process: one process of its own runs every upload's transaction, so that the
serial part of ingest has a core and a GIL to itself while the server's worker parses,
authenticates and checks the next uploads (docs/server.md, "The upload path").

It owns the upload connection and the card chain cache (``chaincache``): the worker sends it
each checked upload (a bulk-checked run as its records end to end and their links, anything
else as the records ``ingest.parse`` found good and the ones it rejected) with the request's
nonce and heartbeat, and gets the ack back; before an admin request or a sweep it asks for
the cached chain states to be written. Requests are answered in order, several in flight.
The process writes its cache and leaves when the worker closes the pipe; if it dies or hangs,
the uploads waiting for it get a 503 (to be sent again) and the next one starts it again,
which derives the chain states it had not written from the stored records.

Usage::

    proc = IngestProcess("campus.db").start()
    ack, stored = proc.commit(checked, terminal, now, nonce, ts, hb)
    proc.flush()
    proc.stop()
"""

from __future__ import annotations

import logging
import pickle
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from sync_server import chain, errors, ingest, settle_gc, store, upkeep, upload
from sync_server.chaincache import ChainCache
from sync_server.helperpipe import HelperPipe

ANSWER_TIMEOUT_S = 120.0  # an upload's transaction takes milliseconds; this catches a hung process

log = logging.getLogger(__name__)


def _request(kind: str, *fields: Any) -> bytes:
    return pickle.dumps((kind, *fields), protocol=pickle.HIGHEST_PROTOCOL)


class IngestProcess:
    """The worker's side: starts the process, sends it uploads and flushes."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._pipe: HelperPipe | None = None
        self._start_lock = threading.Lock()

    def start(self) -> IngestProcess:
        with self._start_lock:
            if self._pipe is None or not self._pipe.running:
                if self._pipe is not None:
                    self._pipe.kill()
                self._pipe = HelperPipe("ingest").start([sys.executable, "-m", __name__, self.db_path])
        return self

    @property
    def pid(self) -> int | None:
        return self._pipe.pid if self._pipe is not None else None

    def _call(self, data: bytes) -> Any:
        pipe = self._pipe
        job = pipe.submit(data) if pipe is not None else None
        if pipe is None or job is None:  # the process was gone before the request went out: start another
            pipe = self.start()._pipe
            assert pipe is not None
            job = pipe.submit(data)
        answer = pipe.result(job, ANSWER_TIMEOUT_S)
        if answer is None:
            raise errors.Unavailable("the server's ingest process stopped before it answered: send the request "
                                     "again (records already stored are acknowledged again)")
        out = pickle.loads(answer)
        if out[0] == "error":
            cls = getattr(errors, out[1], errors.ServerError)
            raise cls(out[2])
        if out[0] == "crash":
            raise RuntimeError("ingest process: " + out[1])
        return out[1]

    def commit(self, checked: ingest.Checked, terminal: dict[str, Any], now: int, nonce: bytes, ts: int,
               hb: dict[str, Any] | None) -> tuple[dict[str, Any], int]:
        """``upload.commit`` in the ingest process: (the ack's fields, records stored)."""
        run = checked.run
        if run is not None:
            data = _request("run", terminal, now, nonce, ts, hb, run.joined, run.links)
        else:
            good = [raw for raw, _ in checked.good.values()]
            data = _request("parsed", terminal, now, nonce, ts, hb, good, checked.rejected)
        ack, stored = self._call(data)
        return ack, int(stored)

    def flush(self) -> int:
        """Write the process's cached chain states to ``card_chain``; returns cards written."""
        return int(self._call(_request("flush")))

    def stop(self) -> None:
        if self._pipe is not None:
            self._pipe.stop(30)


def _checked(kind: str, terminal: dict[str, Any], fields: tuple[Any, ...]) -> ingest.Checked:
    tid = terminal["id"]
    if kind == "run":
        joined, links = fields
        return ingest.Checked(tid, ingest.Run.of(joined, links), {}, [])
    good, rejected = fields
    parsed = {f[5]: (raw, f) for raw, f in zip(good, map(chain.RECORD.unpack, good))}
    return ingest.Checked(tid, None, parsed, rejected)


def serve(conn: Connection, db_path: str) -> None:
    """The process: answer each request until the pipe closes, then write the cache."""
    pool = store.Pool(db_path, autocheckpoint=upkeep.POOL_AUTOCHECKPOINT)
    db = pool.dedicated()
    cache = ChainCache()
    cache.recover(db)
    settle_gc()
    stored: list[int] = []
    try:
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return
            kind, *fields = pickle.loads(data)
            try:
                if kind == "flush":
                    out: tuple[Any, ...] = ("ok", cache.flush(db))
                else:
                    terminal, now, nonce, ts, hb = fields[:5]
                    stored.clear()
                    ack = upload.commit(db, _checked(kind, terminal, tuple(fields[5:])), terminal, now, nonce, ts,
                                        hb, cache, stored.append)
                    out = ("ok", (ack, sum(stored)))
            except errors.ServerError as e:
                out = ("error", type(e).__name__, e.message)
            except Exception as e:  # noqa: BLE001 - the worker answers 500; this process goes on
                log.exception("ingest process: %s request failed", kind)
                out = ("crash", f"{type(e).__name__}: {e}")
            conn.send_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        cache.flush(db)


if __name__ == "__main__":  # python -m sync_server.ingest_process DB_PATH FD
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s ingest process: %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker ends it, by closing the pipe
    serve(Connection(int(sys.argv[2])), sys.argv[1])
