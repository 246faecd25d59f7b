"""Ingest throughput of the sync server against the raw SQLite insert rate of the same rows.

Starts ``campuscard server`` (gunicorn) on a loopback port over a fresh database with
``--cards`` issued and topped-up cards and ``--terminals`` POS terminals, then uploads
pre-sealed 1,000-record batches from ``--threads`` client threads over keep-alive
connections (``http.client``). Every record goes the whole way: MAC check, terminal hash
chain, card chain check, ledger lines, store, acknowledgement. Uploads run in rounds: in
each round every terminal sends one batch; a card stays at one terminal for ``--epoch``
rounds (4), then the cards are dealt out again, after every terminal's batches so far are
acknowledged, so every card's records arrive in counter order as they would in a canteen
(a client-side wait every round left the server idle a tenth of the time). The same
record rows are also inserted with plain ``executemany`` (one transaction per 1,000 rows) into
an empty database with the same schema and settings, once before the uploads and once after
(this machine's speed changes for seconds at a time: the baseline brackets the uploads, and
is the rows of both runs over their time); the rows are the tuples the server
builds, BLOBs as ``bytearray`` like the server binds them (``store.records.BLOB``). The
CPU per batch of the server's worker, its ingest process and its record-MAC helper is printed
with the client's own (all four share this machine's cores).

Usage::

    .venv/bin/python benchmarks/ingest.py                 # ~320,000 records
    .venv/bin/python benchmarks/ingest.py --rounds 10     # quicker

The last line is one JSON object: ``ingest_records_per_s``, ``raw_insert_rows_per_s``,
``ratio``, ``batch`` (goals: >= 80,000 records/s and a ratio >= 0.25).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import messages, records, uidlist  # noqa: E402
from sync_server import cards, keys, registry, store  # noqa: E402
from sync_server import status as st  # noqa: E402
from sync_server.store import records as rstore  # noqa: E402

BATCH = 1000
START_BALANCE = 100_000


def setup(db_path: str, n_terminals: int, n_cards: int, now: int) -> tuple[list[tuple[int, bytes]], list[bytes]]:
    """Merchant, terminals and cards with one collected-to-be top-up each; returns
    ([(terminal id, key)], [card uid])."""
    db = store.open_db(db_path)
    keys.ensure_secrets(db)
    ring = keys.KeyRing.load(db)
    merchant = registry.add_merchant(db, now, "Benchmark Canteen")
    terminals = []
    for _ in range(n_terminals):
        b = registry.register_terminal(db, now, ring, merchant["id"], "pos", "bench", None, "http://127.0.0.1")
        terminals.append((b["terminal_id"], bytes.fromhex(b["terminal_key"])))
    uids = []
    with store.transaction(db):
        for i in range(n_cards):
            uid = bytes([0x04, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
            cards.issue(db, now, uidlist.uid_key(uid), f"B{i:06d}", f"H{i:06d}", 2, now, now + 365 * 86400)
            cards.top_up(db, now, f"B{i:06d}", START_BALANCE)
            uids.append(uid)
    db.conn.close()
    return terminals, uids


def generate(terminals: list[tuple[int, bytes]], uids: list[bytes], rounds: int, now: int, epoch: int = 4,
             seed: int = 7) -> tuple[list[list[tuple[int, list[bytes]]]], list[tuple]]:
    """Per round, per terminal, one batch of signed records (a card at one terminal for
    ``epoch`` rounds); plus the record rows as stored."""
    rng = random.Random(seed)
    state = {uid: [0, START_BALANCE, False] for uid in uids}  # counter, balance, load collected
    journal = {tid: [0, records.GENESIS_LINK] for tid, _ in terminals}
    plan, rows = [], []
    pool = uids[:]
    share = len(pool) // len(terminals)
    for r in range(rounds):
        if r % epoch == 0:
            rng.shuffle(pool)
        this_round = []
        for t, (tid, key) in enumerate(terminals):
            mine = pool[t * share:(t + 1) * share]
            batch = []
            jr = journal[tid]
            for _i in range(BATCH):
                uid = mine[rng.randrange(len(mine))]
                s = state[uid]
                jr[0] += 1
                s[0] += 1
                ts = now + r
                if not s[2]:
                    s[2] = True
                    rtype, amount, before, after, aux = records.LOAD, START_BALANCE, 0, START_BALANCE, 1
                else:
                    amount = rng.randrange(100, 1500)
                    rtype, before, after, aux = records.PURCHASE, s[1], s[1] - amount, 0
                s[1] = after
                rec = records.build(key, jr[1], rtype, 0, tid, jr[0], ts, uid, s[0], amount, before, after, aux)
                jr[1] = records.link_of(rec)
                batch.append(rec)
                rows.append((tid, jr[0], rstore.BLOB(uidlist.uid_key(uid)), s[0], rtype, 0, ts, amount, after,
                             st.LINKED, 0, after - before, 0, 1, rstore.BLOB(rec)))
            this_round.append((tid, batch))
        plan.append(this_round)
    return plan, rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_path: str, port: int, threads: int) -> subprocess.Popen[bytes]:
    exe = ROOT / ".venv" / "bin" / "campuscard"
    proc = subprocess.Popen([str(exe), "server", "--db", db_path, "--host", "127.0.0.1", "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:  # an answer, not just a listening socket: the worker has built the app
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("server exited: " + proc.stderr.read().decode()) from None
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process and the kernel on this machine have used so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def server_pids(arbiter: int) -> tuple[int, list[int], list[int]]:
    """(the gunicorn worker serving the app, its ingest process, its record-MAC helper)."""
    worker = children(arbiter)[0]
    helpers = children(worker)
    ingest = [p for p in helpers if b"sync_server.ingest_process" in Path(f"/proc/{p}/cmdline").read_bytes()]
    return worker, ingest, [p for p in helpers if p not in ingest]


def upload(port: int, plan: list[list[tuple[int, list[bytes]]]], keys_by_tid: dict[int, bytes],
           n_threads: int, epoch: int = 4) -> tuple[float, float]:
    """Send every round (a barrier every ``epoch`` rounds, where the cards move); returns
    (seconds it took, the client's CPU seconds meanwhile: the sealing of the batches
    beforehand not counted)."""
    now = int(time.time())
    sealed = [[(tid, messages.seal(keys_by_tid[tid], tid, "upload", {"records": batch}, now, os.urandom(12)),
                batch) for tid, batch in rnd] for rnd in plan]
    tids = sorted(keys_by_tid)
    owner = {tid: i % n_threads for i, tid in enumerate(tids)}
    barrier = threading.Barrier(n_threads)
    errors: list[str] = []

    def worker(me: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for r, rnd in enumerate(sealed):
                for tid, wire, batch in rnd:
                    if owner[tid] != me:
                        continue
                    conn.request("POST", "/api/v1/terminal/upload", wire, {"Content-Type": "application/cbor"})
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 200:
                        errors.append(f"terminal {tid}: HTTP {resp.status} {body[:200]!r}")
                        continue
                    ack = messages.unseal(body, keys_by_tid[tid], "ack")
                    if ack["rejected"] or ack["acked"] != records.seq_of(batch[-1]):
                        errors.append(f"terminal {tid}: ack {ack['acked']}, rejected {ack['rejected'][:3]!r}")
                if (r + 1) % epoch == 0:
                    barrier.wait()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if errors:
        raise SystemExit("upload failed: " + "; ".join(errors[:5]))
    return elapsed, cpu


def raw_insert(db_path: str, rows: list[tuple]) -> float:
    """Rows per second of plain executemany into the same schema, one transaction per batch."""
    db = store.open_db(db_path)
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with store.transaction(db):
            rstore.insert_records(db, rows[i:i + BATCH])
    elapsed = time.perf_counter() - t0
    db.conn.close()
    return len(rows) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=40, help="batches per terminal")
    ap.add_argument("--epoch", type=int, default=4, help="rounds a card stays at one terminal")
    ap.add_argument("--terminals", type=int, default=8)
    ap.add_argument("--cards", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=4, help="client threads (and server threads)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="campuscard-bench-") as tmp:
        db_path = os.path.join(tmp, "server.db")
        now = int(time.time())
        t0 = time.perf_counter()
        terminals, uids = setup(db_path, args.terminals, args.cards, now)
        plan, rows = generate(terminals, uids, args.rounds, now, args.epoch)
        print(f"setup: {len(uids)} cards, {len(terminals)} terminals, {len(rows)} records in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
        raw_before = raw_insert(os.path.join(tmp, "raw-before.db"), rows)
        port = free_port()
        proc = start_server(db_path, port, args.threads)
        try:
            worker, ingesters, helpers = server_pids(proc.pid)
            cpu0 = cpu_seconds(worker)
            ingest0 = sum(cpu_seconds(h) for h in ingesters)
            helper0 = sum(cpu_seconds(h) for h in helpers)
            busy0 = machine_busy_seconds()
            elapsed, client_cpu = upload(port, plan, dict(terminals), args.threads, args.epoch)
            busy = machine_busy_seconds() - busy0
            server_cpu = cpu_seconds(worker) - cpu0
            ingest_cpu = sum(cpu_seconds(h) for h in ingesters) - ingest0
            helper_cpu = sum(cpu_seconds(h) for h in helpers) - helper0
        finally:
            proc.terminate()
            err = proc.communicate(timeout=30)[1].decode(errors="replace")
        if "Traceback" in err:
            raise SystemExit("server error:\n" + err)
        db = store.open_db(db_path)
        counts = rstore.status_counts(db)
        db.conn.close()
        if counts.get(st.LINKED, 0) != len(rows):
            raise SystemExit(f"expected {len(rows)} linked records, got {counts!r}")
        ingest_rate = len(rows) / elapsed
        per_batch = [cpu * 1000 * BATCH / len(rows)
                     for cpu in (server_cpu, ingest_cpu, helper_cpu, client_cpu, busy)]
        print("ingest: {} records in {:.2f} s over HTTP, all linked; CPU per batch: server worker {:.1f} ms, its "
              "ingest process {:.1f} ms, its MAC helper {:.1f} ms; the client {:.1f} ms; the whole machine {:.1f} ms "
              "({:.0f} % of its {} cores busy)".format(len(rows), elapsed, *per_batch,
                                                       100 * busy / elapsed / os.cpu_count(), os.cpu_count()),
              file=sys.stderr)
        raw_after = raw_insert(os.path.join(tmp, "raw-after.db"), rows)
        raw_rate = 2 / (1 / raw_before + 1 / raw_after)  # the rows of both runs over their time
        print(f"raw inserts: {raw_before:,.0f} rows/s before the uploads, {raw_after:,.0f} after", file=sys.stderr)
    print(json.dumps({"ingest_records_per_s": round(ingest_rate), "raw_insert_rows_per_s": round(raw_rate),
                      "ratio": round(ingest_rate / raw_rate, 3), "batch": BATCH}))


if __name__ == "__main__":
    main()
