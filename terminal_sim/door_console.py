"""The console of a simulated door terminal: tap named virtual cards, grant and revoke them on
the door's access lists, cut the mains, move the clock past the curfew, read the door log,
while the real firmware (role "door") runs under MicroPython with the emulated reader.

The card box is the POS console's (``<workspace>/cards``); on the first start the door lists
get alice and dave on list 0 ("allow") and bob (staff) on list 1 ("anytime"); carol, a
temporary card, is on none, and erin's card has expired.

Commands::

    tap NAME | place NAME | remove       a card taps / stays on the reader / leaves it
    grant NAME [allow|anytime]           put the card on list 0 (default) or list 1
    revoke NAME [allow|anytime]          take it off that list (both lists when none is given)
    lists                                version, count and hash of both lists
    blacklist add|remove NAME            report the card lost / found
    power off | power on | relay         mains lost or back; what the lock does now
    time HH:MM | time +SECONDS | time UTC   the clock (HH:MM: today, local time)
    param NAME VALUE                     e.g. param door_curfew_start 1410 (23:30)
    net up | net down [SINCE]            records made while down carry the offline flag
    sync                                 one sync cycle with the server (config server_url)
    cards | new NAME [TYPE] | journal | stats | help | quit

Usage::

    console = DoorConsole(Path("sim-door"), fail_mode="secure")
    console.start()
    console.execute("tap alice")   # ['DISPLAY 门已开 请进 | Door open: come in', 'RELAY open 3000']
    console.close()
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol import records
from terminal_sim.console import Console, ConsoleError, repl, show

TZ = 28800  # Asia/Shanghai, the firmware's default tz_offset_s
LISTS = ("allow", "anytime")
REASONS = ("granted", "not on this door's lists", "curfew", "blacklisted", "expired", "not yet valid",
           "identity MAC fails", "not a campus card")
_SHARED = ("tap", "place", "remove", "cards", "new", "blacklist", "quit")
_PASSTHROUGH = ("param", "net", "poll", "stats", "ack", "power", "relay", "sync")
FIRST_GRANTS = (("alice", 0), ("dave", 0), ("bob", 1))


def local_utc(hhmm: str, tz: int = TZ) -> int:
    """UTC seconds of ``HH:MM`` local time today."""
    hh, _, mm = hhmm.partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ConsoleError(f"time must be HH:MM, +SECONDS or UTC seconds, got {hhmm!r}")
    day = (int(time.time()) + tz) // 86400
    return day * 86400 - tz + int(hh) * 3600 + int(mm) * 60


class DoorConsole(Console):
    """One simulated door terminal with the card box; :meth:`execute` runs one command line."""

    def __init__(self, workspace: Path, reader: str = "pn532", fail_mode: str = "safe", **config: Any) -> None:
        super().__init__(workspace, reader, role="door", door_fail_mode=fail_mode, **config)
        self.fail_mode = fail_mode

    def __enter__(self) -> DoorConsole:
        self.start()
        return self

    def start(self) -> list[str]:
        out = super().start()
        if self.access_state()["version"] == 0:
            for name, lst in FIRST_GRANTS:
                if name in self.cards:
                    self.term.service(f"access add {lst} {self.card(name).uid.hex()}")
        return out

    def access_state(self) -> dict[str, Any]:
        """``{"version": n, "lists": [[version, count, hash hex], ...]}`` as the firmware reports."""
        for x in self.term.service("access"):
            if x.startswith("@access "):
                return dict(json.loads(x[len("@access "):]))
        raise ConsoleError("the firmware printed no @access line")

    def execute(self, line: str) -> list[str]:
        words = line.split()
        if not words:
            return []
        cmd, args = words[0], words[1:]
        if cmd in _SHARED:
            handler: Callable[[list[str]], list[str]] = getattr(self, "_cmd_" + cmd)
            return handler(args)
        door: Callable[[list[str]], list[str]] | None = getattr(self, "_door_" + cmd, None)
        if door is not None:
            return door(args)
        if cmd in _PASSTHROUGH:
            return self.term.send(line)
        raise ConsoleError(f"unknown command {cmd!r}; `help` lists the commands")

    def _list_arg(self, args: list[str], usage: str) -> tuple[str, list[int]]:
        if not 1 <= len(args) <= 2 or (len(args) == 2 and args[1] not in LISTS):
            raise ConsoleError(f"usage: {usage} NAME [allow|anytime]")
        return self.card(args[0]).uid.hex(), [LISTS.index(args[1])] if len(args) == 2 else []

    def _door_grant(self, args: list[str]) -> list[str]:
        uid, lists = self._list_arg(args, "grant")
        return self.term.send(f"access add {(lists or [0])[0]} {uid}")

    def _door_revoke(self, args: list[str]) -> list[str]:
        uid, lists = self._list_arg(args, "revoke")
        out: list[str] = []
        for i in lists or [0, 1]:
            out += self.term.send(f"access remove {i} {uid}")
        return out

    def _door_lists(self, args: list[str]) -> list[str]:
        st = self.access_state()
        return [f"list {i} {LISTS[i]:8} version {v}  {n} cards  hash {h}" for i, (v, n, h) in enumerate(st["lists"])]

    def _door_time(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            raise ConsoleError("usage: time HH:MM | time +SECONDS | time UTC")
        arg = args[0]
        return self.term.send(f"time {local_utc(arg) if ':' in arg else arg}")

    def _door_journal(self, args: list[str]) -> list[str]:
        out = []
        for h in self.term.journal_hex():
            raw = bytes.fromhex(h)
            r = records.decode(raw)
            ok = "signed" if records.verify(raw, self.terminal_key) else "BAD MAC"
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.time + TZ))
            why = REASONS[r.aux] if 0 <= r.aux < len(REASONS) else f"reason {r.aux}"
            out.append(f"#{r.seq} {r.type_name():12} {r.uid.hex().upper():14} {when}  {why:24} "
                       f"lists v{r.aux2}  {ok}")
        return out

    def _door_help(self, args: list[str]) -> list[str]:
        return (__doc__ or "").split("Commands::")[1].split("Usage::")[0].strip("\n").splitlines()


def run(workspace: Path, reader: str = "pn532", fail_mode: str = "safe", read: Callable[[str], str] = input,
        echo: Callable[[str], None] = print) -> None:
    """The interactive loop of ``campuscard sim door``."""
    with DoorConsole(workspace, reader, fail_mode) as console:
        echo(show(console.term.boot_lines))
        echo("cards: " + ", ".join(sorted(console.cards)) + "   (`help` lists the commands)")
        echo(f"lock: fail-{fail_mode}; lists: " + "; ".join(console._door_lists([])))
        repl(console, "door> ", read, echo)
