"""Scenario rig for the door firmware: the door console over one firmware process (role "door"),
fresh virtual cards per test, and readers of what a test asserts on (screens, relay lines,
signed journal records). Extends the POS rig (cards, journal checks, parameters).

Usage::

    rig = DoorRig(tmp_path, fail_mode="secure").start()
    name = rig.card(grant=0)                 # a new card on list 0 ("allow")
    out = rig.tap(name)                      # ['DISPLAY 门已开 请进 | Door open: come in', 'RELAY open 3000']
    [rec] = rig.records()                    # DOOR_GRANTED, MAC and chain checked
    rig.stop()
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from terminal_sim.door_console import DoorConsole
from terminal_sim.terminal_process import display_lines
from tests.pos_harness import PosRig, local_time

NOON = local_time(12, 0)
RELAY = "RELAY "


def relay_lines(lines: list[str]) -> list[str]:
    """The relay's lines among firmware output (without the ``RELAY`` prefix)."""
    return [x[len(RELAY):] for x in lines if x.startswith(RELAY)]


class DoorRig(PosRig):
    """One door firmware process behind the door console, for a whole test module."""

    def __init__(self, workspace: Path, reader: str = "pn532", fail_mode: str = "safe", **config: Any) -> None:
        self.console: DoorConsole = DoorConsole(workspace, reader, fail_mode, **config)
        self.term = self.console.term
        self.defaults: dict[str, int] = {}
        self.powered = True

    def start(self) -> DoorRig:
        self.console.start()
        self.reset()
        return self

    def reset(self, at: int = NOON) -> None:
        """Between tests: no card on the reader, default parameters, network up, mains on,
        clock at ``at``, journal acknowledged."""
        from firmware.params import Params

        self.console.remove()
        for name, value in Params().as_dict().items():
            if self.defaults.get(name) != value:
                self.term.service(f"param {name} {value}")
                self.defaults[name] = value
        self.term.service("net up")
        if not self.powered:
            self.power(True)
        self.term.service(f"time {at}")
        self.mark()

    # -- cards and lists ------------------------------------------------------------------------

    def card(self, balance: int = 0, card_type: str = "student", seven: bool = False,
             valid_from: int | None = None, valid_until: int | None = None,
             card_master: bytes | None = None, grant: int | None = None) -> str:
        """A fresh personalised card; ``grant`` 0 or 1 puts it on that list."""
        name = super().card(balance, card_type, seven, valid_from, valid_until, card_master)
        if grant is not None:
            self.grant(name, grant)
        return name

    def grant(self, name: str, lst: int = 0) -> None:
        self.term.service(f"access add {lst} {self.console.card(name).uid.hex()}")

    def revoke(self, name: str, lst: int = 0) -> None:
        self.term.service(f"access remove {lst} {self.console.card(name).uid.hex()}")

    def access(self) -> dict[str, Any]:
        return self.console.access_state()

    # -- taps, power, relay ---------------------------------------------------------------------

    def send(self, line: str) -> list[str]:
        """A console line; returns every output line (screens, relay lines, service answers)."""
        return self.console.execute(line)

    def tap(self, name: str, pull: int | None = None) -> list[str]:
        """A tap; returns every output line (screens and relay lines)."""
        return self.console.tap(name, pull)

    def screen_of(self, lines: list[str]) -> str:
        screens = display_lines(lines)
        assert screens, f"the door showed nothing: {lines}"
        return screens[-1]

    def power(self, on: bool) -> list[str]:
        self.powered = on
        return self.term.service("power " + ("on" if on else "off"))

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until a running pulse (of an earlier test) has ended."""
        deadline = time.monotonic() + timeout
        while self.relay() == "open":
            assert time.monotonic() < deadline, "the relay stays open"
            time.sleep(0.05)

    def relay(self) -> str:
        """``open`` or ``closed``, as the firmware's relay reports it."""
        for x in self.term.service("relay"):
            if x.startswith("@relay "):
                return x[len("@relay "):]
        raise AssertionError("no @relay line")
