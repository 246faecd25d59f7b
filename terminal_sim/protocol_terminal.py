"""A terminal at the protocol level, on CPython: signed records and sealed sync requests.

It speaks exactly what the firmware speaks (``protocol.records``, ``protocol.messages``) over
HTTP/1.1 keep-alive, without card hardware, so benchmarks and tests can stand in for many
terminals at once.

Usage::

    t = ProtocolTerminal(1001, key, "http://127.0.0.1:8080")
    t.purchase(uid, counter=1, amount=1250, before=5000)
    ack = t.upload()              # {"acked": 1, "rejected": [], ...}
    bl = t.request("blacklist", {"since": 0})
"""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import cbor2

from protocol import messages, records

ENDPOINT_TYPES = {
    "upload": "upload",
    "blacklist": "blacklist_req",
    "loads": "loads_req",
    "params": "params_req",
    "heartbeat": "heartbeat",
    "access": "access_req",
}
RESPONSE_TYPES = {
    "upload": "ack",
    "blacklist": "blacklist",
    "loads": "loads",
    "params": "params",
    "heartbeat": "heartbeat_ack",
    "access": "access",
}
API_PREFIX = "/api/v1/terminal/"


class TerminalRequestError(Exception):
    """The server refused a request: ``status`` and the server's error text."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class ProtocolTerminal:
    """One simulated terminal: its key, journal (in memory) and a keep-alive connection."""

    def __init__(self, terminal_id: int, key: bytes, base_url: str, clock: Callable[[], float] = time.time,
                 timeout: float = 30.0):
        self.terminal_id = terminal_id
        self.key = key
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.clock = clock
        self.timeout = timeout
        self.journal: list[bytes] = []
        self.acked = 0
        self._link = records.GENESIS_LINK
        self._conn: http.client.HTTPConnection | None = None

    # -- records --------------------------------------------------------------------------

    def record(self, rtype: int, uid: bytes, counter: int, amount: int, before: int, after: int,
               flags: int = 0, aux: int = 0, aux2: int = 0, ts: int | None = None) -> bytes:
        seq = len(self.journal) + 1
        rec = records.build(self.key, self._link, rtype, flags, self.terminal_id, seq,
                            int(ts if ts is not None else self.clock()), uid, counter, amount, before, after, aux, aux2)
        self._link = records.link_of(rec)
        self.journal.append(rec)
        return rec

    def purchase(self, uid: bytes, counter: int, amount: int, before: int, flags: int = 0) -> bytes:
        return self.record(records.PURCHASE, uid, counter, amount, before, before - amount, flags)

    # -- requests -------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post_raw(self, endpoint: str, body: bytes) -> tuple[int, bytes]:
        """POST raw bytes; returns (status, body). Reconnects once if keep-alive dropped."""
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request("POST", API_PREFIX + endpoint, body=body,
                             headers={"Content-Type": "application/cbor", "Connection": "keep-alive"})
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def seal(self, endpoint: str, fields: dict, nonce: bytes | None = None,
             ts: int | None = None) -> tuple[bytes, bytes]:
        nonce = nonce or os.urandom(messages.NONCE_SIZE)
        wire = messages.seal(self.key, self.terminal_id, ENDPOINT_TYPES[endpoint], fields,
                             int(ts if ts is not None else self.clock()), nonce)
        return wire, nonce

    def request(self, endpoint: str, fields: dict | None = None) -> dict:
        """Send a sealed request and return the checked, sealed answer's fields."""
        wire, nonce = self.seal(endpoint, fields or {})
        status, body = self.post_raw(endpoint, wire)
        if status != 200:
            try:
                text = cbor2.loads(body).get("error", body[:200])
            except Exception:  # noqa: BLE001 - show what came back
                text = body[:200]
            raise TerminalRequestError(status, str(text))
        answer = messages.unseal(body, self.key, RESPONSE_TYPES[endpoint], None)
        if answer.get("re") != nonce:
            raise TerminalRequestError(status, "answer does not echo the request nonce")
        return answer

    def upload(self, batch: int = 1000) -> dict:
        """Upload the next unacknowledged records (at most ``batch``) and apply the ack."""
        pending = self.journal[self.acked:self.acked + batch]
        answer = self.request("upload", {"records": pending})
        self.acked = max(self.acked, answer["acked"])
        return answer

    def upload_all(self, batch: int = 1000) -> int:
        """Upload until the server acknowledges everything; returns the number of requests."""
        n = 0
        while self.acked < len(self.journal):
            before = self.acked
            self.upload(batch)
            n += 1
            if self.acked == before:
                raise TerminalRequestError(200, f"server acknowledged nothing beyond {before}")
        return n
