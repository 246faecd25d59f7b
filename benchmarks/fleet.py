"""Fleet benchmark: thousands of simulated terminals against one sync server process.

(a) steady state: every terminal syncs every 10 s (with jitter) and brings 10 new records a
    sync; p50/p99 latency of a whole sync cycle (the firmware's: uploads carrying the
    heartbeat, and the blacklist, loads and parameters when its answer says they changed) and
    errors, measured once the warm-up is over: every terminal has fetched its lists and had a
    cycle with nothing to fetch (the warm-up's figures are printed too);
(b) thundering herd after an outage: all terminals reconnect at once, 500 records each;
    seconds until every record is acknowledged, errors and records lost;
(c) the size of a blacklist delta carrying 1,000 changes.

The terminals are protocol-level clients on CPython (``terminal_sim.async_fleet``) speaking
the firmware's wire format; the server is ``campuscard server`` on a loopback port with
SQLite. Last line: one JSON object.

Usage: ``.venv/bin/python benchmarks/fleet.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import records  # noqa: E402
from terminal_sim.async_fleet import FleetTerminal, HttpConn, SyncFailed  # noqa: E402

TOKEN = "fleet-benchmark-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Admin:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/api/v1/admin"

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + TOKEN,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"admin {method} {path}: HTTP {e.code}: {e.read().decode()[:300]}") from None


def start_server(db: Path, port: int, threads: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CAMPUSCARD_ADMIN_TOKEN=TOKEN)
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "campuscard"), "server", "--db", str(db), "--host",
                             "127.0.0.1", "--port", str(port), "--threads", str(threads)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server exited") from None
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def setup_fleet(admin: Admin, n: int, now: int) -> list[FleetTerminal]:
    """Register ``n`` terminals, and one card per terminal topped up so its records chain."""
    merchant = admin("POST", "/merchants", {"name": "Fleet canteen"})
    fleet = []
    for _ in range(n):
        bundle = admin("POST", "/terminals", {"merchant_id": merchant["id"], "role": "pos"})
        t = FleetTerminal(bundle["terminal_id"], bytes.fromhex(bundle["terminal_key"]))
        admin("POST", "/cards", {"uid": t.uid.hex(), "card_no": f"F{t.tid}", "holder_id": f"H{t.tid}",
                                 "type": "staff", "valid_until": now + 365 * 86400})
        admin("POST", f"/cards/{t.uid.hex()}/top-up", {"amount": 1_000_000})
        # the card collects its top-up at its terminal: the chain starts from a signed load
        t._counter = 1
        rec = records.build(t.key, t._link, records.LOAD, 0, t.tid, 1, now, t.uid, 1, 1_000_000, 0, 1_000_000,
                            aux=1)
        t._link = records.link_of(rec)
        t.journal.append(rec)
        fleet.append(t)
    return fleet


async def steady(fleet: list[FleetTerminal], port: int, duration: float, interval: float,
                 warmup_limit: float = 180.0) -> tuple[list[float], int, float, list[float]]:
    """Every terminal syncs every ``interval`` s (jittered) with 10 new records.

    Warm-up first, not measured: the terminals take their blacklist, loads and parameters, and
    take the loads again once their cards' top-ups are collected. Steady state begins when
    every terminal has had a quiet cycle (its records and nothing else: one request); then
    ``duration`` seconds are measured. Returns (latencies, errors, warm-up seconds, warm-up
    latencies)."""
    latencies: list[float] = []
    warm: list[float] = []
    errors = [0]
    quiet: set[int] = set()
    t_start = time.monotonic()
    window = [t_start + warmup_limit, t_start + warmup_limit + duration]  # moved once all are quiet

    async def run(t: FleetTerminal) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        while time.monotonic() < window[1]:
            began = time.monotonic()
            t.add_records(10, int(time.time()))
            try:
                async with HttpConn("127.0.0.1", port) as conn:
                    ms = await t.sync(conn)
                (latencies if began >= window[0] else warm).append(ms)
                if t.cycle_requests == 1 and t.tid not in quiet:
                    quiet.add(t.tid)
                    if len(quiet) == len(fleet):
                        now = time.monotonic()
                        window[:] = [now, now + duration]
            except (TimeoutError, SyncFailed, OSError, asyncio.IncompleteReadError) as e:
                errors[0] += 1
                if errors[0] <= 5:
                    print(f"  steady error at terminal {t.tid}: {e!r}", file=sys.stderr)
            await asyncio.sleep(interval * random.uniform(0.9, 1.1))

    await asyncio.gather(*(run(t) for t in fleet))
    return latencies, errors[0], window[0] - t_start, warm


async def herd(fleet: list[FleetTerminal], port: int) -> tuple[float, int]:
    errors = [0]

    async def run(t: FleetTerminal) -> None:
        for attempt in range(5):
            try:
                async with HttpConn("127.0.0.1", port, timeout=120) as conn:
                    await t.sync(conn, batch=500)
                    return
            except (TimeoutError, SyncFailed, OSError, asyncio.IncompleteReadError) as e:
                errors[0] += 1
                if errors[0] <= 5:
                    print(f"  herd error at terminal {t.tid} (attempt {attempt + 1}): {e!r}", file=sys.stderr)
                await asyncio.sleep(0.5)

    t0 = time.perf_counter()
    await asyncio.gather(*(run(t) for t in fleet))
    return time.perf_counter() - t0, errors[0]


def delta_size(admin: Admin, fleet: list[FleetTerminal], port: int, now: int, changes: int) -> int:
    """Bytes of the sealed blacklist answer that carries ``changes`` newly lost cards."""
    t = fleet[0]

    async def fetch(since: int) -> tuple[int, int]:
        async with HttpConn("127.0.0.1", port) as conn:
            import os as _os

            from protocol import messages

            nonce = _os.urandom(messages.NONCE_SIZE)
            wire = messages.seal(t.key, t.tid, "blacklist_req", {"since": since}, int(time.time()), nonce)
            status, body = await conn.post("/api/v1/terminal/blacklist", wire)
            ans = messages.unseal(body, t.key, "blacklist", None)
            return ans["version"], len(body)

    v0, _ = asyncio.run(fetch(0))
    for i in range(changes):
        uid = (0x05000000 + i).to_bytes(4, "big").hex()
        admin("POST", "/cards", {"uid": uid, "card_no": f"L{i}", "holder_id": f"L{i}", "type": "student",
                                 "valid_until": now + 365 * 86400})
        admin("POST", f"/cards/{uid}/report-loss", {"reason": "benchmark"})
    v1, size = asyncio.run(fetch(v0))
    if v1 - v0 < changes:
        raise RuntimeError(f"expected {changes} blacklist changes, version moved {v1 - v0}")
    return size


def stored_records(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    finally:
        con.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="scaled-down pass for CI")
    ap.add_argument("--terminals", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None, help="steady-state seconds")
    ap.add_argument("--threads", type=int, default=8, help="server worker threads")
    args = ap.parse_args()
    n = args.terminals or (100 if args.quick else 2000)
    duration = args.duration or (12.0 if args.quick else 60.0)
    herd_records = 100 if args.quick else 500
    interval = 10.0

    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        db = Path(tmp) / "fleet.db"
        port = free_port()
        proc = start_server(db, port, args.threads)
        try:
            admin = Admin(port)
            now = int(time.time())
            t0 = time.perf_counter()
            fleet = setup_fleet(admin, n, now)
            print(f"setup: {n} terminals and cards registered in {time.perf_counter() - t0:.1f} s")
            delta = delta_size(admin, fleet, port, now, 1000)
            print(f"(c) blacklist delta for 1000 changes: {delta} bytes on the wire")

            lat, steady_errors, warm_s, warm = asyncio.run(steady(fleet, port, duration, interval))
            print(f"    warm-up (lists fetched, top-ups collected, loads fetched again): {warm_s:.0f} s, "
                  f"{len(warm)} syncs, p50 {pct(warm, 50):.1f} ms, p99 {pct(warm, 99):.1f} ms")
            print(f"(a) steady: {len(lat)} syncs of {n} terminals in {duration:.0f} s: "
                  f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, errors {steady_errors}")

            now = int(time.time())
            for t in fleet:
                t.add_records(herd_records, now)
            generated = sum(len(t.journal) for t in fleet)
            herd_s, herd_errors = asyncio.run(herd(fleet, port))
            acked = sum(t.acked for t in fleet)
            on_server = stored_records(db)
            lost = generated - min(acked, on_server)
            print(f"(b) herd: {n} terminals x {herd_records} records reconnecting at once: all acknowledged in "
                  f"{herd_s:.1f} s, errors {herd_errors}, generated {generated}, acknowledged {acked}, "
                  f"stored {on_server}, lost {lost}")

            anomalies = admin("GET", "/anomalies")
            count = len(anomalies) if isinstance(anomalies, list) else len(anomalies.get("anomalies", []))
            print(f"    server anomalies after the herd: {count} (0: every record verified and chained)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    print(json.dumps({
        "steady_terminals": n, "steady_p50_ms": round(pct(lat, 50), 1), "steady_p99_ms": round(pct(lat, 99), 1),
        "steady_errors": steady_errors, "steady_syncs": len(lat), "warmup_seconds": round(warm_s, 1),
        "warmup_p99_ms": round(pct(warm, 99), 1), "herd_terminals": n,
        "herd_records_each": herd_records, "herd_seconds": round(herd_s, 2), "herd_errors": herd_errors,
        "herd_lost": lost, "anomalies": count, "delta_bytes_1000": delta, "quick": args.quick}))


if __name__ == "__main__":
    main()
