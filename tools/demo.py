"""``campuscard demo``: a scripted lunch service on a simulated campus, end to end.

The sync server runs on SQLite in a work folder; two canteen tills and a dorm door run the
real firmware under MicroPython against emulated readers; virtual cards are issued and
topped up at the server. The service: opening top-ups collected, sales, one over the limit
with the PIN, a network cut that engages the emergency credit wallet, the records uploading
when the link returns, a card reported lost and refused after the next sync, a door grant and
a denial. Then the reconciliation summary and the ledger audit, which decides the exit status.

Usage::

    ok = run(Path("/tmp/demo"), echo=print)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal_sim.campus import Campus, Unit


class DemoFailed(Exception):
    """A step did not do what it should: the message says which and what was seen."""


def _yuan(cents: int) -> str:
    return f"{cents / 100:.2f}"


class Service:
    """The scripted lunch service; each step prints one progress line."""

    def __init__(self, campus: Campus, echo: Callable[[str], None]):
        self.c = campus
        self.echo = echo
        self.n = 0

    def step(self, text: str) -> None:
        self.n += 1
        self.echo(f"[{self.n:2d}] {text}")

    def expect(self, screens: list[str], needle: str, what: str) -> str:
        for s in screens:
            if needle in s:
                return s
        raise DemoFailed(f"{what}: expected a screen with {needle!r}, saw {screens}")

    def sale(self, till: Unit, name: str, cents: int, pin: str | None = None, needle: str = "Paid") -> str:
        screen = self.expect(self.c.sale(till, self.c.cards[name], cents, pin), needle, f"{name} at {till.name}")
        return screen.split(" | ")[-1]

    def run(self) -> dict[str, Any]:
        c = self.c
        t0 = time.monotonic()
        self.step(f"sync server on {c.server.port if c.server else '?'} (SQLite {c.root / 'campus.db'})")
        canteen = c.merchant("North canteen", double_tap_gap_s=0, credit_auto_after_s=2)
        dorm = c.merchant("Dorm building 3")
        till1, till2 = c.pos("till-1", canteen), c.pos("till-2", canteen)
        door = c.door("dorm3-door", dorm)
        self.step(f"registered merchant 'North canteen' with tills {till1.tid}, {till2.tid}; "
                  f"dorm door {door.tid}; firmware booted under MicroPython")
        c.card("alice", "04A1B2C3", "student", balance=20000)
        c.card("bob", "04B0B0B0", "student", balance=1500)
        c.card("carol", "04C0C0C0", "staff", balance=30000)
        c.card("dave", "04D0D0D0", "student", balance=10000)
        self.step("issued cards alice, bob, carol, dave with opening top-ups (pending loads)")
        group = c.admin("POST", "/doors/groups", {"name": "Building 3"})
        c.admin("POST", f"/doors/groups/{group['id']}/doors", {"terminal_id": door.tid})
        c.admin("POST", f"/doors/groups/{group['id']}/grants", {"card": "04A1B2C3"})
        self.step("dorm manager: door joins group 'Building 3'; alice granted")
        for unit in (till1, till2, door):
            report = c.sync(unit)
            if report.get("online") != "1":
                raise DemoFailed(f"{unit.name} could not sync: {report}")
        self.step("all terminals synced: parameters, blacklist, pending loads, door lists, server time")

        self.step("lunch: alice 12.50 at till-1 -> " + self.sale(till1, "alice", 1250))
        self.step("lunch: carol 18.00 at till-2 -> " + self.sale(till2, "carol", 1800))
        self.step("lunch: dave 8.00 at till-1 -> " + self.sale(till1, "dave", 800))
        self.step("lunch: carol 62.00 at till-1, over the 50.00 limit, PIN keyed -> "
                  + self.sale(till1, "carol", 6200, pin="123456"))
        for unit in (till1, till2):
            c.sync(unit)
        self.step(f"tills synced: records uploaded and acknowledged (server audit ok={c.audit()['ok']})")

        c.cut_network()
        for unit in (till1, till2):
            if c.sync(unit).get("online") != "0":
                raise DemoFailed(f"{unit.name} still online after the cut")
        time.sleep(2.5)  # credit_auto_after_s
        self.step("network cut: tills offline, sales continue from the cards; credit wallet engages after 2 s")
        self.step("offline: bob 12.00 with 15.00 on the card, PIN over the offline ceiling -> "
                  + self.sale(till2, "bob", 1200, pin="123456"))
        self.step("offline: bob 9.00 more, into the credit wallet -> " + self.sale(till2, "bob", 900))
        if c.balance(c.cards["bob"]) >= 0:
            raise DemoFailed(f"bob's balance should be below zero, card holds {c.balance(c.cards['bob'])}")
        self.step("offline: alice 7.50 at till-1 -> " + self.sale(till1, "alice", 750))
        piled = sum(len(u.journal()) for u in (till1, till2))
        self.step(f"{piled} records waiting on the tills' flash, signed and chained")

        c.restore_network()
        for unit in (till1, till2):
            report = c.sync(unit)
            if report.get("online") != "1" or report.get("unacked") != "0":
                raise DemoFailed(f"{unit.name} did not upload after the link returned: {report}")
        self.step(f"network restored: all {piled} records uploaded, none lost")

        c.admin("POST", "/cards/04D0D0D0/report-loss", {"reason": "lost at the library"})
        for unit in (till1, till2, door):
            c.sync(unit)
        refused = self.sale(till2, "dave", 500, needle="lost")
        self.step(f"dave reports his card lost; after one sync till-2 refuses it -> {refused}")

        granted = self.expect(c.tap(door, c.cards["alice"]), "Door open", "alice at the door")
        denied = self.expect(c.tap(door, c.cards["bob"]), "No access", "bob at the door")
        self.step(f"dorm door: alice -> {granted.split(' | ')[-1]}; bob -> {denied.split(' | ')[-1]}")
        c.sync(door)

        audit = c.audit()
        self.step(f"done in {time.monotonic() - t0:.0f} s")
        return audit


def summary(audit: dict[str, Any], echo: Callable[[str], None]) -> None:
    """The reconciliation summary: ledger totals by account kind and the audit's verdict."""
    echo("")
    echo("Reconciliation (shadow ledger, cents in yuan):")
    names = {"purse": "card purses (holders' money)", "merchant": "merchant payables",
             "topup_received": "top-up money received", "in_transit": "loads not yet collected",
             "credit": "credit-wallet receivable", "refunds": "refunds paid", "fees": "fees"}
    for row in audit.get("balances", []):
        label = names.get(row["kind"], row["kind"])
        echo(f"  {label:34s} {_yuan(row['balance']):>12s}  ({row['accounts']} accounts)")
    echo(f"  {'sum of all entries':34s} {_yuan(audit.get('journal_sum', 0)):>12s}")
    echo(f"  cards checked against their records: {audit.get('cards_checked', 0)}; "
         f"differences: {len(audit.get('differences', []))}")
    echo("Audit: " + ("BALANCED — every cent accounted for" if audit.get("ok") else "NOT BALANCED"))
    for d in audit.get("differences", []):
        echo(f"  difference: {d}")


def run(workdir: Path, echo: Callable[[str], None] = print, serve: bool = False) -> bool:
    """Run the demo in ``workdir``; True if the audit balances. ``serve`` keeps the server up."""
    campus = Campus(workdir, log=echo)
    campus.start()
    try:
        audit = Service(campus, echo).run()
        summary(audit, echo)
    except DemoFailed as e:
        echo(f"DEMO FAILED: {e}")
        campus.stop()
        return False
    except BaseException:
        campus.stop()
        raise
    for unit in campus.units:
        unit.term.stop()
    campus.units.clear()
    if serve and campus.server is not None:
        echo(f"Serving on http://127.0.0.1:{campus.server.port}/ with the demo data; Ctrl-C stops it.")
        try:
            campus.server.proc.wait()
        except KeyboardInterrupt:
            pass
    else:
        echo(f"Keep the server running on this data: campuscard demo --serve "
             f"(or campuscard server --db {workdir / 'campus.db'})")
    campus.stop()
    return bool(audit.get("ok"))
