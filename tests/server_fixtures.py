"""Helpers for the sync server tests: a real server subprocess, an admin client, and simulated
terminals and cards that speak the real wire format (``protocol.messages``/``records``).

Usage::

    from tests.server_fixtures import ServerProcess, Terminal, Card
    srv = ServerProcess.start(tmp_path / "campus.db")
    m = srv.admin("POST", "/merchants", {"name": "Canteen"})
    term = Terminal(srv, srv.admin("POST", "/terminals", {"merchant_id": m["id"]}))
    card = Card.issue(srv, "04A1B2C3")
    status, ack = term.upload([card.load(term, 1, 5000), card.buy(term, 1200)])
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest

from protocol import messages, records, uidlist
from terminal_sim.server_process import CAMPUSCARD, ROOT, TOKEN, ServerProcess, free_port  # noqa: F401


class Terminal:
    """A terminal with its journal state: signs records and seals messages with its key."""

    def __init__(self, srv: ServerProcess, bundle: dict[str, Any]) -> None:
        self.srv = srv
        self.tid = bundle["terminal_id"]
        self.key = bytes.fromhex(bundle["terminal_key"])
        self.seq = 0
        self.link = records.GENESIS_LINK

    def record(self, rtype: int, uid: bytes, counter: int, amount: int, before: int, after: int,
               flags: int = 0, aux: int = 0, aux2: int = 0, ts: int | None = None) -> bytes:
        self.seq += 1
        rec = records.build(self.key, self.link, rtype, flags, self.tid, self.seq, ts or self.srv.now(), uid,
                            counter, amount, before, after, aux, aux2)
        self.link = records.link_of(rec)
        return rec

    def seal(self, mtype: str, fields: dict[str, Any], ts: int | None = None, nonce: bytes | None = None,
             key: bytes | None = None) -> bytes:
        return messages.seal(key or self.key, self.tid, mtype, fields, ts if ts is not None else self.srv.now(),
                             nonce or os.urandom(messages.NONCE_SIZE))

    def post(self, endpoint: str, wire: bytes) -> tuple[int, dict[str, Any]]:
        """POST ``wire``; a 200 answer is unsealed (and its ``re`` checked by the caller)."""
        status, data, ctype = self.srv.request("POST", "/api/v1/terminal/" + endpoint, wire,
                                               {"Content-Type": "application/cbor"})
        if status == 200:
            return status, messages.unseal(data, self.key, None, None)
        if ctype != "application/cbor":
            raise AssertionError(f"error answer {status} is {ctype}, not CBOR: {data[:200]!r}")
        return status, cbor2.loads(data)

    def call(self, endpoint: str, mtype: str, fields: dict[str, Any]) -> dict[str, Any]:
        nonce = os.urandom(messages.NONCE_SIZE)
        status, msg = self.post(endpoint, self.seal(mtype, fields, nonce=nonce))
        if status != 200:
            raise AssertionError(f"{endpoint} -> {status} {msg}")
        if msg["re"] != nonce:
            raise AssertionError("answer echoes nonce {}, sent {}".format(msg["re"].hex(), nonce.hex()))
        return msg

    def upload(self, recs: list[bytes]) -> dict[str, Any]:
        return self.call("upload", "upload", {"records": recs})

    def blacklist(self, since: int, offset: int = 0) -> dict[str, Any]:
        return self.call("blacklist", "blacklist_req", {"since": since, "offset": offset})

    def access(self, lst: int, since: int = 0, held_hash: bytes = b"", offset: int = 0) -> dict[str, Any]:
        """One ``access`` request of a door: list ``lst`` (0 allow, 1 anytime)."""
        return self.call("access", "access_req", {"since": since, "hash": held_hash, "list": lst, "offset": offset})

    def sized(self, endpoint: str, mtype: str, expected: str, fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Like ``call`` (answer of type ``expected``), also giving the answer's size in bytes as
        sent, for the terminals' 8 KB answer buffer."""
        nonce = os.urandom(messages.NONCE_SIZE)
        wire = self.seal(mtype, fields, nonce=nonce)
        status, data, _ = self.srv.request("POST", "/api/v1/terminal/" + endpoint, wire,
                                           {"Content-Type": "application/cbor"})
        if status != 200:
            raise AssertionError(f"{endpoint} -> {status} {cbor2.loads(data)}")
        msg = messages.unseal(data, self.key, expected, None)
        if msg["re"] != nonce:
            raise AssertionError("answer does not echo the nonce")
        return msg, len(data)

    def loads(self) -> list[tuple[bytes, int, int, int]]:
        blob = self.call("loads", "loads_req", {})["loads"]
        return [messages.unpack_load(blob[i:i + 16]) for i in range(0, len(blob), 16)]

    def heartbeat(self, **fields: Any) -> dict[str, Any]:
        body = {"journal_fill": 0, "unacked": 0, "last_seq": self.seq, "blacklist_version": 0,
                "access_version": 0, "offline_since": 0, "firmware": "test-1.0", "clock_drift": 0}
        body.update(fields)
        return self.call("heartbeat", "heartbeat", body)


def split_keys(blob: bytes) -> list[bytes]:
    """The 7-byte UID keys of a packed list, checked strictly ascending."""
    uidlist.check_sorted(blob)
    return [blob[i:i + 7] for i in range(0, len(blob), 7)]


class DoorLists:
    """A door's lists 0 and 1 kept as ``firmware.access`` keeps them, synced over the protocol
    the same way (delta from the version held, whole list in pages, hash checked)."""

    def __init__(self) -> None:
        self.version = [0, 0]
        self.keys: list[set[bytes]] = [set(), set()]

    def hash(self, lst: int) -> bytes:
        return hashlib.sha256(b"".join(sorted(self.keys[lst]))).digest()[:16]

    def sync(self, term: Terminal, lst: int) -> list[dict[str, Any]]:
        """Bring list ``lst`` up to date; returns the answers it took."""
        answers: list[dict[str, Any]] = []
        full = False
        pages: list[bytes] = []
        page_version = -1
        while len(answers) < 100:
            offset = sum(len(p) for p in pages) // 7
            ans = term.access(lst, 0, b"", offset) if full else term.access(lst, self.version[lst], self.hash(lst))
            answers.append(ans)
            if ans["list"] != lst:
                raise AssertionError(f"asked for list {lst}, got {ans['list']}")
            if not ans["full"]:
                if full or ans["since"] != self.version[lst]:
                    raise AssertionError(f"delta from version {ans['since']}, door holds {self.version[lst]}")
                added, removed = split_keys(ans["added"]), split_keys(ans["removed"])
                self.keys[lst] = (self.keys[lst] | set(added)) - set(removed)
                self.version[lst] = ans["version"]
                if self.hash(lst) != ans["hash"]:
                    full = True  # diverged: take the whole list, as the firmware does
                    continue
                return answers
            if not full and not pages and ans["version"] == self.version[lst] and ans["hash"] == self.hash(lst):
                return answers  # the whole list, but it is the one held
            full = True
            if ans["offset"] != offset or (pages and ans["version"] != page_version):
                pages, page_version = [], -1  # changed between pages: start again
                continue
            page_version = ans["version"]
            pages.append(ans["added"])
            if offset + len(ans["added"]) // 7 >= ans["total"]:
                keys = split_keys(b"".join(pages))
                if hashlib.sha256(b"".join(keys)).digest()[:16] != ans["hash"]:
                    raise AssertionError("whole list does not match its hash")
                self.keys[lst], self.version[lst] = set(keys), ans["version"]
                return answers
        raise AssertionError("list sync did not finish in 100 requests")


class Card:
    """A card's purse as terminals see it: counter, balance and last applied load."""

    def __init__(self, uid_hex: str, card_no: str) -> None:
        self.uid = bytes.fromhex(uid_hex)
        self.key = uidlist.uid_key(self.uid)
        self.card_no = card_no
        self.counter = 0
        self.balance = 0
        self.load_seq = 0

    @classmethod
    def issue(cls, srv: ServerProcess, uid_hex: str, card_no: str | None = None, ctype: str = "student",
              valid_days: int = 300) -> Card:
        card_no = card_no or "C" + uid_hex
        srv.admin("POST", "/cards", {"uid": uid_hex, "card_no": card_no, "holder_id": "H" + uid_hex,
                                     "type": ctype, "valid_until": srv.now() + valid_days * 86400})
        return cls(uid_hex, card_no)

    def buy(self, term: Terminal, amount: int, flags: int = 0) -> bytes:
        before = self.balance
        self.balance -= amount
        self.counter += 1
        return term.record(records.PURCHASE, self.uid, self.counter, amount, before, self.balance, flags)

    def load(self, term: Terminal, seq: int, amount: int) -> bytes:
        before = self.balance
        self.balance += amount
        self.counter += 1
        self.load_seq = seq
        return term.record(records.LOAD, self.uid, self.counter, amount, before, self.balance, aux=seq)

    def show(self, srv: ServerProcess) -> dict[str, Any]:
        return srv.admin("GET", "/cards/" + self.card_no)

    def audit_differences(self, srv: ServerProcess) -> list[dict[str, Any]]:
        """This card's entries in the audit's differences (other tests' cards ignored)."""
        return [d for d in srv.admin("GET", "/audit")["differences"] if d["card_no"] == self.card_no]


def make_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Any:
    """Module-scoped server generator for a fixture: yields a started ``ServerProcess``."""
    db = tmp_path_factory.mktemp(name) / "campus.db"
    srv = ServerProcess.start(db)
    try:
        yield srv
    finally:
        err = srv.stop()
        if "Traceback" in err:
            sys.stderr.write(err)


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the server database (read-only, alongside the server)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


class Campus:
    """A merchant with fresh terminals and cards on a running server, for one test."""

    _n = 0

    def __init__(self, srv: ServerProcess, name: str | None = None) -> None:
        Campus._n += 1
        self.srv = srv
        self.merchant = srv.admin("POST", "/merchants", {"name": name or f"merchant {Campus._n}"})

    def terminal(self, role: str = "pos") -> Terminal:
        bundle = self.srv.admin("POST", "/terminals", {"merchant_id": self.merchant["id"], "role": role})
        return Terminal(self.srv, bundle)

    def card(self, ctype: str = "student", money: int = 0, term: Terminal | None = None) -> Card:
        """A fresh card; with ``money``, topped up and the load collected at ``term``."""
        Campus._n += 1
        card = Card.issue(self.srv, f"04{0xA00000 + Campus._n:06X}", ctype=ctype)
        if money and term is not None:
            shown = self.srv.admin("POST", f"/cards/{card.card_no}/top-up", {"amount": money})
            seq = shown["loads"][-1]["seq"]
            ack = term.upload([card.load(term, seq, money)])
            if ack["rejected"]:
                raise AssertionError(ack["rejected"])
        return card
