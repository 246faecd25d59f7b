"""A whole simulated campus: the sync server, terminals running the firmware under MicroPython,
virtual cards personalised with the server's keys, and a network link that can be cut.

Everything is a real part: ``campuscard server`` on a loopback port with a SQLite file, each
terminal a ``micropython`` process with its reader emulator, the network a TCP relay. The
demo and the end-to-end tests drive it as a card office, cashiers and card holders would.

Usage::

    with Campus(Path("/tmp/campus")) as campus:
        canteen = campus.merchant("North canteen")
        till = campus.pos("till-1", canteen)
        alice = campus.card("alice", "04A1B2C3", "student", balance=20000)
        campus.sync(till)                  # the till learns the pending top-up
        campus.sale(till, alice, 1250)     # ['... | Paid 12.50 / Balance 187.50']
        campus.audit()["ok"]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from protocol import card_layout as cl
from protocol import crypto, records
from terminal_sim import personalise
from terminal_sim.field import Field
from terminal_sim.mifare_card import MifareClassic1K
from terminal_sim.netlink import NetLink
from terminal_sim.server_process import ServerProcess
from terminal_sim.terminal_process import TerminalProcess, display_lines

CARD_TYPES = {"staff": cl.CARD_STAFF, "student": cl.CARD_STUDENT, "identity": cl.CARD_IDENTITY,
              "temporary": cl.CARD_TEMPORARY}


class Unit:
    """One terminal of the campus: its registration and its firmware process."""

    def __init__(self, name: str, bundle: dict[str, Any], term: TerminalProcess):
        self.name = name
        self.bundle = bundle
        self.tid: int = bundle["terminal_id"]
        self.key = bytes.fromhex(bundle["terminal_key"])
        self.term = term
        self.field: Field = term.field

    def journal(self) -> list[records.Record]:
        """The unacknowledged records on the terminal's flash, MAC-checked."""
        out = []
        for h in self.term.journal_hex():
            rec = bytes.fromhex(h)
            if not records.verify(rec, self.key):
                raise AssertionError(f"{self.name}: record with a bad MAC in the journal")
            out.append(records.decode(rec))
        return out


class Campus:
    def __init__(self, root: Path, log: Callable[[str], None] | None = None, sync_interval_s: int = 10,
                 poll_ms: int = 0):
        self.root = Path(root)
        self.log = log or (lambda line: None)
        self.sync_interval_s = sync_interval_s
        self.poll_ms = poll_ms
        self.server: ServerProcess | None = None
        self.link: NetLink | None = None
        self.units: list[Unit] = []
        self.cards: dict[str, MifareClassic1K] = {}
        self.card_master = b""
        self.issuer_master = b""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Campus:
        self.root.mkdir(parents=True, exist_ok=True)
        self.server = ServerProcess.start(self.root / "campus.db", test_clock=False)
        self.link = NetLink(("127.0.0.1", self.server.port)).start()
        self.admin("PUT", "/params", {"sync_interval_s": self.sync_interval_s})
        return self

    def stop(self) -> None:
        for unit in self.units:
            unit.term.stop()
        if self.link is not None:
            self.link.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> Campus:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the card office and the admin ------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        assert self.server is not None, "campus not started"
        return self.server.admin(method, path, body)

    def merchant(self, name: str, **params: int) -> int:
        m = self.admin("POST", "/merchants", {"name": name})
        if params:
            self.admin("PUT", f"/params?merchant={m['id']}", params)
        return int(m["id"])

    def _unit(self, name: str, merchant_id: int, role: str, **config: Any) -> Unit:
        assert self.link is not None
        bundle = self.admin("POST", "/terminals", {"merchant_id": merchant_id, "role": role, "name": name})
        if not self.card_master:
            self.card_master = bytes.fromhex(bundle["card_master"])
            self.issuer_master = bytes.fromhex(bundle["issuer_master"])
        ws = self.root / name
        ws.mkdir(parents=True, exist_ok=True)
        secrets = {k: bundle[k] for k in ("terminal_key", "card_master", "issuer_master")}
        (ws / "secrets.json").write_text(json.dumps(secrets, indent=1) + "\n")
        (ws / "secrets.json").chmod(0o600)
        term = TerminalProcess(ws, field=Field(), terminal_id=bundle["terminal_id"], merchant_id=merchant_id,
                               role=role, server_url=self.link.url, poll_ms=self.poll_ms, **config)
        term.start()
        unit = Unit(name, bundle, term)
        self.units.append(unit)
        return unit

    def pos(self, name: str, merchant_id: int) -> Unit:
        """Register a POS terminal and boot its firmware with the provisioning bundle."""
        return self._unit(name, merchant_id, "pos")

    def door(self, name: str, merchant_id: int, fail_mode: str = "safe") -> Unit:
        return self._unit(name, merchant_id, "door", door_fail_mode=fail_mode)

    def card(self, name: str, uid_hex: str, card_type: str = "student", balance: int = 0,
             valid_days: int = 300) -> MifareClassic1K:
        """Issue a card at the server, encode the virtual card, and top it up (a pending load
        the holder collects at the first tap)."""
        if not self.card_master:
            raise RuntimeError("register a terminal first: the card keys come with the provisioning bundle")
        now = int(time.time())
        card_no = f"C{len(self.cards) + 1:05d}"
        self.admin("POST", "/cards", {"uid": uid_hex, "card_no": card_no, "holder_id": name, "type": card_type,
                                      "valid_from": now - 86400, "valid_until": now + valid_days * 86400})
        card = personalise.make_card(uid_hex, name, CARD_TYPES[card_type], 0, now - 86400, now + valid_days * 86400,
                                     card_master=self.card_master, issuer_master=self.issuer_master,
                                     card_no=len(self.cards) + 1, holder_id=name)
        if balance:
            self.admin("POST", f"/cards/{uid_hex}/top-up", {"amount": balance, "note": "opening top-up"})
        self.cards[name] = card
        return card

    def balance(self, card: MifareClassic1K) -> int:
        """The purse balance as the card itself holds it."""
        return cl.decode_value_block(card.block(cl.BLOCK_BALANCE))[0]

    def stored(self, unit: Unit | None = None) -> list[records.Record]:
        """The records the server has stored (of one terminal, in sequence order), read from
        its database file."""
        import sqlite3

        assert self.server is not None
        con = sqlite3.connect(f"file:{self.server.db}?mode=ro", uri=True)
        try:
            if unit is None:
                rows = con.execute("SELECT raw FROM records ORDER BY terminal_id, seq").fetchall()
            else:
                rows = con.execute("SELECT raw FROM records WHERE terminal_id = ? ORDER BY seq",
                                   (unit.tid,)).fetchall()
        finally:
            con.close()
        return [records.decode(bytes(r[0])) for r in rows]

    def audit(self) -> dict[str, Any]:
        return dict(self.admin("GET", "/audit"))

    # -- people at terminals ------------------------------------------------------------------

    def sync(self, unit: Unit) -> dict[str, str]:
        """A whole sync cycle on the terminal now; the firmware's ``@sync`` report as a dict."""
        out = unit.term.service("sync")
        line = next((x for x in out if x.startswith("@sync ")), "")
        if not line:
            raise AssertionError(f"{unit.name}: no sync report in {out}")
        return dict(kv.split("=", 1) for kv in line[6:].split(" ") if "=" in kv)

    def tap(self, unit: Unit, card: MifareClassic1K) -> list[str]:
        """The card comes to the reader, is served, and leaves; the screens shown."""
        unit.field.place(card)
        out = unit.term.send("poll")
        unit.field.remove(card)
        out += unit.term.send("poll")
        return display_lines(out)

    def sale(self, unit: Unit, card: MifareClassic1K, cents: int, pin: str | None = None) -> list[str]:
        """The cashier keys the amount, the holder taps (and keys the PIN if asked)."""
        screens = display_lines(unit.term.send(f"amount {cents}"))
        unit.field.place(card)
        screens += display_lines(unit.term.send("poll"))
        if pin is not None and any("PIN" in s and "Enter" in s for s in screens):
            screens += display_lines(unit.term.send(f"pin {pin}"))
        unit.field.remove(card)
        screens += display_lines(unit.term.send("poll"))
        return screens

    def cut_network(self) -> None:
        assert self.link is not None
        self.link.cut()

    def restore_network(self) -> None:
        assert self.link is not None
        self.link.restore()


def purse_key(campus: Campus, card: MifareClassic1K) -> bytes:
    return crypto.purse_mac_key(campus.card_master, card.uid)
