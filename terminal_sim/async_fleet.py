"""Many protocol-level terminals at once on asyncio, for the fleet benchmark and load tests.

Each simulated terminal keeps a journal of signed records in memory and runs the firmware's
sync cycle (``firmware/sync.py``) over one HTTP/1.1 keep-alive connection per cycle: uploads
until everything is acknowledged, the first carrying the heartbeat (or the heartbeat alone when
there is nothing to send), then the blacklist, pending loads and parameters, each only when
the heartbeat's answer says it changed. Thousands of them share one event loop.

Usage::

    fleet = [FleetTerminal(tid, key) for tid, key in bundles]
    async with HttpConn("127.0.0.1", port) as conn:
        ms = await fleet[0].sync(conn)
"""

from __future__ import annotations

import asyncio
import os
import time

import cbor2

from protocol import messages, records
from sync_server import wire  # protocol.messages at cbor2 speed: the fleet is CPU-bound on this host

API = "/api/v1/terminal/"


class SyncFailed(Exception):
    """A request of the cycle failed: HTTP status not 200, a bad answer, or the connection."""


class HttpConn:
    """One HTTP/1.1 keep-alive connection on asyncio streams."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> HttpConn:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/cbor\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await asyncio.wait_for(self.reader.readline(), self.timeout)
        parts = status_line.split(b" ", 2)
        if len(parts) < 2:
            raise SyncFailed(f"not an HTTP answer: {status_line[:60]!r}")
        length = 0
        while True:
            line = await asyncio.wait_for(self.reader.readline(), self.timeout)
            if line in (b"\r\n", b"\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line[15:].strip())
        body_in = await asyncio.wait_for(self.reader.readexactly(length), self.timeout)
        return int(parts[1]), body_in


class FleetTerminal:
    """A terminal's journal and sync state; records are made ahead of time or per cycle."""

    def __init__(self, terminal_id: int, key: bytes):
        self.tid = terminal_id
        self.key = key
        self.journal: list[bytes] = []
        self.acked = 0
        self.blacklist_version = 0
        self.loads_version = -2
        self.params_version = -2
        self._link = records.GENESIS_LINK
        self._counter = 0
        self.cycle_requests = 0  # requests the last sync cycle made (1: nothing but its records)
        self.uid = (0x04000000 + terminal_id).to_bytes(4, "big")

    def add_records(self, n: int, now: int) -> None:
        """Append ``n`` signed purchase records, each of a card counter one higher."""
        for _ in range(n):
            self._counter += 1
            before = 1_000_000 - (self._counter - 2) * 100  # counter 1 was the 10,000.00 load
            rec = records.build(self.key, self._link, records.PURCHASE, 0, self.tid, len(self.journal) + 1, now,
                                self.uid, self._counter, 100, before, before - 100)
            self._link = records.link_of(rec)
            self.journal.append(rec)

    async def request(self, conn: HttpConn, endpoint: str, mtype: str, fields: dict, expected: str) -> dict:
        self.cycle_requests += 1
        nonce = os.urandom(messages.NONCE_SIZE)
        sealed = messages.seal(self.key, self.tid, mtype, fields, int(time.time()), nonce, wire.dumps)
        status, body = await conn.post(API + endpoint, sealed)
        if status != 200:
            try:
                why = cbor2.loads(body).get("error")
            except Exception:  # noqa: BLE001 - report what came back
                why = body[:100]
            raise SyncFailed(f"{endpoint}: HTTP {status}: {why}")
        ans = wire.open_message(body, self.key, expected, None)
        if ans.get("re") != nonce:
            raise SyncFailed(f"{endpoint}: answer does not echo the nonce")
        return ans

    async def sync(self, conn: HttpConn, batch: int = 1000) -> float:
        """One sync cycle; returns its duration in milliseconds."""
        t0 = time.perf_counter()
        self.cycle_requests = 0
        hb_fields = {"journal_fill": 0, "unacked": len(self.journal) - self.acked, "last_seq": len(self.journal),
                     "blacklist_version": self.blacklist_version, "access_version": 0, "offline_since": 0,
                     "firmware": "fleet-sim", "clock_drift": 0}
        hb: dict | None = None
        if self.acked >= len(self.journal):
            hb = await self.request(conn, "heartbeat", "heartbeat", hb_fields, "heartbeat_ack")
        while self.acked < len(self.journal):
            fields: dict = {"records": self.journal[self.acked:self.acked + batch]}
            if hb is None:  # the first batch carries the heartbeat, as the firmware's does
                fields["hb"] = hb_fields
            ans = await self.request(conn, "upload", "upload", fields, "ack")
            if ans["acked"] <= self.acked:
                raise SyncFailed(f"upload: server acknowledged nothing beyond {self.acked}: {ans['rejected'][:3]}")
            self.acked = ans["acked"]
            hb = hb or ans
        assert hb is not None
        if hb.get("blacklist_version", -1) != self.blacklist_version:
            bl = await self.request(conn, "blacklist", "blacklist_req",
                                    {"since": self.blacklist_version, "max": 400}, "blacklist")
            self.blacklist_version = bl["version"]
        if hb.get("loads_version", -1) != self.loads_version:
            await self.request(conn, "loads", "loads_req", {"max": 200}, "loads")
            self.loads_version = hb.get("loads_version", -1)
        if hb.get("params_version", -1) != self.params_version:
            pa = await self.request(conn, "params", "params_req", {}, "params")
            self.params_version = pa.get("version", -1)
        return (time.perf_counter() - t0) * 1000.0
