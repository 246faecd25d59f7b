"""The record-MAC helper process (``sync_server.macworker``): the same MACs and links as the
protocol's own functions, answers matched to their batches when several are in flight, and
a helper that died makes the caller compute them itself instead of failing the upload."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from protocol import crypto, records
from sync_server import ingest, macworker
from tests.server_fixtures import Campus, ServerProcess

KEY = bytes(range(32))


def batch(n: int, salt: int = 0) -> list[bytes]:
    out, link = [], records.GENESIS_LINK
    for seq in range(1, n + 1):
        rec = records.build(KEY, link, records.PURCHASE, 0, 7, seq, 1_800_000_000, bytes([4, 1, 2, salt & 0xFF]), seq,
                            10, 1000 - 10 * seq + 10, 1000 - 10 * seq)
        link = records.link_of(rec)
        out.append(rec)
    return out


def test_digest_matches_the_protocol() -> None:
    recs = batch(5)
    macs, links = macworker.digest(KEY, b"".join(recs))
    assert macs == b"".join(crypto.hmac_sha256(KEY, r[:56])[:8] for r in recs) == b"".join(r[56:] for r in recs)
    assert links == b"".join(records.link_of(r) for r in recs)


@pytest.fixture()
def worker() -> macworker.MacWorker:
    w = macworker.MacWorker().start()
    yield w
    w.stop()


def test_helper_answers_each_batch_in_flight(worker: macworker.MacWorker) -> None:
    batches = [b"".join(batch(50 + i, salt=i)) for i in range(6)]
    jobs = [worker.submit(KEY, j) for j in batches]  # all sent before any answer is read
    results: dict[int, tuple[bytes, bytes] | None] = {}

    def collect(i: int) -> None:
        results[i] = worker.result(jobs[i], len(batches[i]) // 64)

    threads = [threading.Thread(target=collect, args=(i,)) for i in reversed(range(6))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(results[i] == macworker.digest(KEY, batches[i]) for i in range(6))


def test_dead_helper_means_compute_it_yourself(worker: macworker.MacWorker) -> None:
    joined = b"".join(batch(20))
    assert worker.result(worker.submit(KEY, joined), 20) == macworker.digest(KEY, joined)
    worker.pipe.kill()  # the helper dies
    worker.pipe._proc.wait(10)
    job = worker.submit(KEY, joined)
    assert worker.result(job, 20) is None  # the caller falls back to macworker.digest
    assert worker.submit(KEY, joined) is None and worker.submit(os.urandom(31), joined) is None


def test_server_goes_on_when_its_helper_dies(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "h.db")
    try:
        campus = Campus(srv)
        term = campus.terminal()
        card = campus.card(money=100_000, term=term)
        n = ingest.HELPER_MIN_RECORDS  # big enough to go to the helper
        assert term.upload([card.buy(term, 10) for _ in range(n)])["rejected"] == []
        children = srv.pids()  # gunicorn's worker and its MAC helper
        helpers = [c for c in children if b"macworker.py" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(helpers) == 1, children  # campuscard server runs one MAC helper
        os.kill(helpers[0], signal.SIGKILL)
        batch = [card.buy(term, 10) for _ in range(n)]
        tampered = bytearray(batch[5])
        tampered[28] ^= 1
        batch[5] = bytes(tampered)
        ack = term.upload(batch)  # checked in the server now
        first = 2 + n  # seq of batch[0]: the load, then the first batch
        assert ack["acked"] == first + 4 and [r[0] for r in ack["rejected"]] == [first + 5]
        assert "MAC" in ack["rejected"][0][1]
    finally:
        srv.stop()
