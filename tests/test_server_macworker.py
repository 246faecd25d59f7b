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
from sync_server import macworker
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
    worker._proc.kill()  # the helper dies
    worker._proc.join(10)
    job = worker.submit(KEY, joined)
    assert worker.result(job, 20) is None  # the caller falls back to macworker.digest
    assert worker.submit(KEY, joined) is None and worker.submit(os.urandom(31), joined) is None


def test_server_goes_on_when_its_helper_dies(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "h.db")
    try:
        campus = Campus(srv)
        term = campus.terminal()
        card = campus.card(money=5000, term=term)
        assert term.upload([card.buy(term, 100), card.buy(term, 200)])["rejected"] == []
        tasks = Path(f"/proc/{srv.proc.pid}/task").iterdir()
        children = [c for t in tasks for c in (t / "children").read_text().split()]
        helpers = [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(helpers) == 1, children  # campuscard server runs one MAC helper
        os.kill(helpers[0], signal.SIGKILL)
        good = card.buy(term, 50)
        tampered = bytearray(card.buy(term, 60))
        tampered[28] ^= 1
        ack = term.upload([good, bytes(tampered)])
        assert ack["acked"] == 4 and [r[0] for r in ack["rejected"]] == [5] and "MAC" in ack["rejected"][0][1]
        assert term.upload([card.buy(term, 70)])["acked"] == 4  # #6 waits for the refused #5
    finally:
        srv.stop()
