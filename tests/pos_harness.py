"""Scenario rig for the POS firmware: the cashier console over one firmware process, fresh
virtual cards per test, and readers of what a test asserts on (screens, signed journal
records, card memory).

Usage::

    rig = PosRig(tmp_path).start()
    name = rig.card(balance=10000)
    rig.amount("12.50")
    screens = rig.tap(name)                  # ['支付成功 12.50元 / ... | Paid 12.50 / Balance 87.50 / ...']
    [rec] = rig.records()                    # decoded, MAC and chain checked
    rig.view(name).state().balance           # 8750
    rig.stop()
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from firmware.mifare import AuthFailed, CardIOError, NoCard, Reader
from protocol import card_layout as cl
from protocol import crypto, records
from terminal_sim.console import Console
from terminal_sim.mifare_card import AuthError, CardError, CardRemoved, MifareClassic1K
from terminal_sim.terminal_process import display_lines

TZ = 28800
TERMINAL_ID = 1001
_DAY = 86400


def local_time(hour: int, minute: int = 0, days: int = 0) -> int:
    """UTC seconds of ``hour:minute`` local time (Asia/Shanghai) today + ``days``."""
    today = (int(time.time()) + TZ) // _DAY + days
    return today * _DAY - TZ + hour * 3600 + minute * 60


LUNCH = local_time(12, 0)  # meal period 2 (10:30-13:30)


class DirectReader(Reader):
    """A reader straight onto a virtual card (no chip, no wire): "another terminal" in tests."""

    def __init__(self, card: MifareClassic1K) -> None:
        super().__init__()
        self.card = card

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except CardRemoved as e:
            raise NoCard(str(e)) from e
        except AuthError as e:
            raise AuthFailed(str(e)) from e
        except CardError as e:
            raise CardIOError(str(e)) from e

    def select(self, uid_buf: Any) -> int:
        if not self.card.present:
            return 0
        self.card.select()
        n = len(self.card.uid)
        uid_buf[:n] = self.card.uid
        return n

    def auth(self, block: int, key_type: int, key: Any, uid_mv: Any) -> None:
        self._call(self.card.authenticate, block, key_type, bytes(key), bytes(uid_mv)[-4:])

    def read_block(self, block: int, out_buf: Any) -> None:
        out_buf[:16] = self._call(self.card.read, block)

    def write_block(self, block: int, data: Any) -> None:
        self._call(self.card.write, block, bytes(data))

    def decrement(self, block: int, amount: int) -> None:
        self._call(self.card.decrement, block, amount)

    def increment(self, block: int, amount: int) -> None:
        self._call(self.card.increment, block, amount)

    def restore(self, block: int) -> None:
        self._call(self.card.restore, block)

    def transfer(self, block: int) -> None:
        self._call(self.card.transfer, block)

    def halt(self) -> None:
        self._call(self.card.halt)


class CardView:
    """What a card holds, decoded with the card master key (tests only)."""

    def __init__(self, card: MifareClassic1K, card_master: bytes) -> None:
        self.card = card
        self.key = crypto.purse_mac_key(card_master, card.uid)

    def value(self, block: int) -> int:
        return cl.decode_value_block(self.card.block(block))[0]

    def slots(self) -> list[cl.PurseState | None]:
        out: list[cl.PurseState | None] = []
        for blocks in cl.STATE_SLOTS:
            data = b"".join(self.card.block(b) for b in blocks)
            try:
                out.append(cl.decode_state(data, self.key, self.card.uid))
            except Exception:  # noqa: BLE001 - an invalid slot is a fact to report, not an error
                out.append(None)
        return out

    def state(self) -> cl.PurseState:
        s0, s1 = self.slots()
        if s0 is not None and s1 is not None:
            return [s0, s1][cl.newer_slot(s0.gen, s1.gen)]
        st = s0 or s1
        assert st is not None, f"card {self.card.uid.hex()}: no valid purse state slot"
        return st

    def load_seq(self) -> int:
        return cl.decode_load_register(self.card.block(cl.BLOCK_LOADS), self.key, self.card.uid)

    def assert_settled(self, balance: int) -> None:
        """Balance, backup and the current state agree on ``balance`` (no interrupted transaction)."""
        got = (self.value(cl.BLOCK_BALANCE), self.value(cl.BLOCK_BACKUP), self.state().balance)
        assert got == (balance, balance, balance), f"balance/backup/state {got}, expected {balance} in all"


class PosRig:
    """One firmware process behind the cashier console, for a whole test module."""

    _uids = itertools.count(1)

    def __init__(self, workspace: Path, reader: str = "pn532", **config: Any) -> None:
        self.console = Console(workspace, reader, **config)
        self.term = self.console.term
        self.defaults: dict[str, int] = {}

    def start(self) -> PosRig:
        self.console.start()
        self.reset()
        return self

    def stop(self) -> None:
        self.console.close()

    def reset(self, at: int = LUNCH) -> None:
        """Between tests: default parameters, network up, clock at ``at``, journal acknowledged."""
        from firmware.params import Params

        p = Params()
        for name, value in p.as_dict().items():
            if self.defaults.get(name) != value:
                self.term.service(f"param {name} {value}")
                self.defaults[name] = value
        self.term.service("net up")
        self.term.service(f"time {at}")
        self.term.service("loads ")
        self.console.loads.clear()
        self.mark()

    def param(self, name: str, value: int) -> None:
        self.term.service(f"param {name} {value}")
        self.defaults[name] = value

    # -- cards ----------------------------------------------------------------------------------

    def card(self, balance: int = 10000, card_type: str = "student", seven: bool = False,
             valid_from: int | None = None, valid_until: int | None = None,
             card_master: bytes | None = None) -> str:
        """A fresh personalised card (unique UID and name); returns its name."""
        n = next(self._uids)
        uid = ("04%06x" % (0xA00000 + n)) + ("c0ffee" if seven else "")  # noqa: UP031
        name = f"card{n}"
        now = int(time.time())
        self.console.new_card(name, uid, card_type, balance,
                              now - 365 * _DAY if valid_from is None else valid_from,
                              now + 3 * 365 * _DAY if valid_until is None else valid_until, card_master)
        return name

    def view(self, name: str) -> CardView:
        return CardView(self.console.card(name), self.console.card_master)

    # -- the cashier and the holder ------------------------------------------------------------

    def send(self, line: str) -> list[str]:
        """A console line; returns the screens it produced."""
        return display_lines(self.console.execute(line))

    def amount(self, yuan: str) -> list[str]:
        return self.send(f"amount {yuan}")

    def tap(self, name: str, pull: int | None = None) -> list[str]:
        return display_lines(self.console.tap(name, pull))

    def place(self, name: str, pull: int | None = None) -> list[str]:
        return display_lines(self.console.place(name, pull))

    def remove(self) -> list[str]:
        return display_lines(self.console.remove())

    def sale(self, name: str, yuan: str) -> list[str]:
        """Amount then tap; the clock moves on a minute first, past the double-tap guard."""
        self.term.service("time +60")
        self.amount(yuan)
        return self.tap(name)

    # -- the journal ----------------------------------------------------------------------------

    def raw_records(self) -> list[bytes]:
        return [bytes.fromhex(h) for h in self.term.journal_hex()]

    def mark(self) -> None:
        """Acknowledge every record so far: ``records()`` then returns only newer ones."""
        raws = self.raw_records()
        if raws:
            self.term.service(f"ack {records.seq_of(raws[-1])}")

    def records(self) -> list[records.Record]:
        """Unacknowledged records, each checked: terminal MAC, gapless sequence, chain links."""
        raws = self.raw_records()
        out = []
        for i, raw in enumerate(raws):
            records.check(raw, self.console.terminal_key)
            if i:
                assert records.seq_of(raw) == records.seq_of(raws[i - 1]) + 1, "gap in the journal"
                assert records.prev_link_of(raw) == records.link_of(raws[i - 1]), "journal chain broken"
            out.append(records.decode(raw))
        return out


def screen(screens: list[str]) -> str:
    """The last screen (what the display shows now)."""
    assert screens, "the firmware showed nothing"
    return screens[-1]
