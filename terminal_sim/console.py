"""The cashier console of the simulated POS terminal: type amounts, tap named virtual cards,
enter PINs and watch the display, while the real firmware runs under MicroPython.

Cards live in ``<workspace>/cards/<name>.json`` (saved after every tap, so balances persist
between sessions); the first start personalises a few default cards with the workspace's
keys. A tap puts the card on the reader's field and tells the firmware to poll: the firmware
polls the reader itself, as on the device, then the card leaves the field again.

Commands (amounts in yuan)::

    12.50 | amount 12.50       the cashier keys an amount
    tap NAME [pull N]          tap a card (pull: it leaves after N more card operations)
    place NAME [pull N]        leave a card on the reader; ``remove`` takes it away
    pin 123456 | ok | cancel | balance | pinchange
    cards | new NAME [TYPE] [BALANCE] | journal | blacklist add|remove NAME
    load NAME 50.00            queue an online top-up for the card (pending load)
    time +SECONDS | time UTC | param NAME VALUE | net up | net down [SINCE]
    help | quit

Usage::

    console = Console(Path("sim-pos"))
    console.start()
    console.execute("12.50")
    console.execute("tap alice")   # ['DISPLAY 支付成功 12.50元 / 余额 87.50元 | Paid 12.50 / Balance 87.50']
    console.close()
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol import card_layout as cl
from protocol import crypto, messages, records, uidlist
from terminal_sim.mifare_card import Field, MifareClassic1K
from terminal_sim.personalise import make_card
from terminal_sim.terminal_process import TerminalProcess, display_lines, ensure_secrets

_YEAR = 365 * 86400
TYPES = {"staff": cl.CARD_STAFF, "student": cl.CARD_STUDENT, "identity": cl.CARD_IDENTITY,
         "temporary": cl.CARD_TEMPORARY}
# name, UID, type, balance (cents), validity relative to now (from, until)
DEFAULT_CARDS = (
    ("alice", "04a1b2c3", "student", 10000, (-_YEAR, 3 * _YEAR)),
    ("bob", "04b0b1b2b3b4b5", "staff", 50000, (-_YEAR, 5 * _YEAR)),
    ("carol", "04c0c1c2", "temporary", 2000, (-86400, 180 * 86400)),
    ("dave", "04d0d1d2", "identity", 3000, (-86400, 300 * 86400)),
    ("erin", "04e0e1e2", "student", 5000, (-5 * _YEAR, -86400)),  # expired yesterday
)
PASSTHROUGH = ("pin", "ok", "confirm", "cancel", "balance", "pinchange", "param", "net", "poll", "stats", "ack")


class ConsoleError(Exception):
    """A console command that cannot be carried out (unknown card, bad amount, ...)."""


def cents(text: str) -> int:
    """Yuan as typed by a cashier (``12.50``, ``12``) to cents."""
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() and whole != "" or not (frac.isdigit() or frac == "") or len(frac) > 2 or \
            (whole == "" and frac == ""):
        raise ConsoleError(f"amount must be yuan like 12.50, got {text!r}")
    return int(whole or "0") * 100 + int((frac + "00")[:2])


class Console:
    """One simulated POS terminal with its card box; :meth:`execute` runs one command line."""

    def __init__(self, workspace: Path, reader: str = "pn532", **config: Any) -> None:
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        keys = ensure_secrets(self.workspace)
        self.terminal_key = bytes.fromhex(keys["terminal_key"])
        self.card_master = bytes.fromhex(keys["card_master"])
        self.issuer_master = bytes.fromhex(keys["issuer_master"])
        self.cards_dir = self.workspace / "cards"
        self.field = Field()
        self.term = TerminalProcess(self.workspace, field=self.field, reader=reader, **config)
        self.cards: dict[str, MifareClassic1K] = {}
        self.loads: list[bytes] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> list[str]:
        """Load (or create) the card box and boot the firmware; returns the boot output."""
        self.cards_dir.mkdir(exist_ok=True)
        for path in sorted(self.cards_dir.glob("*.json")):
            card = MifareClassic1K.load(path)
            self.cards[card.name or path.stem] = card
        if not self.cards:
            now = int(time.time())
            for name, uid, ctype, balance, (vfrom, vuntil) in DEFAULT_CARDS:
                self.new_card(name, uid, ctype, balance, now + vfrom, now + vuntil)
        return self.term.start()

    def close(self) -> None:
        self.save()
        self.term.stop()

    def __enter__(self) -> Console:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self) -> None:
        for name, card in self.cards.items():
            card.save(self.cards_dir / f"{name}.json")

    # -- cards ----------------------------------------------------------------------------------

    def new_card(self, name: str, uid_hex: str, card_type: str = "student", balance: int = 0,
                 valid_from: int | None = None, valid_until: int | None = None,
                 card_master: bytes | None = None, pin: str = "123456") -> MifareClassic1K:
        """Personalise a blank virtual card (as the card office would) and put it in the box."""
        if name in self.cards:
            raise ConsoleError(f"there is already a card named {name!r}")
        if card_type not in TYPES:
            raise ConsoleError(f"card type must be one of {', '.join(TYPES)}, got {card_type!r}")
        card = make_card(uid_hex, name, TYPES[card_type], balance, valid_from, valid_until,
                         card_master=card_master or self.card_master, issuer_master=self.issuer_master, pin=pin)
        self.cards[name] = card
        card.save(self.cards_dir / f"{name}.json")
        return card

    def card(self, name: str) -> MifareClassic1K:
        try:
            return self.cards[name]
        except KeyError:
            raise ConsoleError(f"no card named {name!r}; `cards` lists them") from None

    def purse_key(self, card: MifareClassic1K) -> bytes:
        return crypto.purse_mac_key(self.card_master, card.uid)

    def balance(self, card: MifareClassic1K) -> int:
        """The card's balance as its primary value block says (what a reader would find)."""
        return cl.decode_value_block(card.block(cl.BLOCK_BALANCE))[0]

    def load_seq(self, card: MifareClassic1K) -> int:
        return cl.decode_load_register(card.block(cl.BLOCK_LOADS), self.purse_key(card), card.uid)

    # -- the reader field -----------------------------------------------------------------------

    def place(self, name: str, pull: int | None = None) -> list[str]:
        card = self.card(name)
        self.field.place(card)
        if pull is not None:
            card.pull_after(pull)
        return self.term.send("poll")

    def remove(self) -> list[str]:
        self.field.clear()
        self.save()
        return self.term.send("poll")

    def tap(self, name: str, pull: int | None = None) -> list[str]:
        """A tap: the card comes, the firmware polls and serves it, the card goes."""
        out = self.place(name, pull)
        return out + self.remove()

    # -- commands -------------------------------------------------------------------------------

    def execute(self, line: str) -> list[str]:
        """Run one console line; returns the firmware's output (or the console's answer)."""
        words = line.split()
        if not words:
            return []
        cmd, args = words[0], words[1:]
        handler: Callable[[list[str]], list[str]] | None = getattr(self, "_cmd_" + cmd, None)
        if handler is not None:
            return handler(args)
        if cmd in PASSTHROUGH:
            return self.term.send(line)
        if cmd[0].isdigit():
            return self._cmd_amount([cmd])
        raise ConsoleError(f"unknown command {cmd!r}; `help` lists the commands")

    def _pull(self, args: list[str]) -> int | None:
        if len(args) == 3 and args[1] == "pull" and args[2].isdigit():
            return int(args[2])
        if len(args) != 1:
            raise ConsoleError("usage: tap NAME [pull N]")
        return None

    def _cmd_amount(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            raise ConsoleError("usage: amount 12.50")
        return self.term.send(f"amount {cents(args[0])}")

    def _cmd_tap(self, args: list[str]) -> list[str]:
        return self.tap(args[0] if args else "", self._pull(args))

    def _cmd_place(self, args: list[str]) -> list[str]:
        return self.place(args[0] if args else "", self._pull(args))

    def _cmd_remove(self, args: list[str]) -> list[str]:
        return self.remove()

    def _cmd_cards(self, args: list[str]) -> list[str]:
        out = []
        for name, card in sorted(self.cards.items()):
            ident = cl.decode_identity(b"".join(card.block(b) for b in (4, 5, 6)),
                                       crypto.issuer_mac_key(self.issuer_master, card.uid), card.uid)
            valid = time.strftime("%Y-%m-%d", time.gmtime(ident.valid_until))
            out.append(f"{name:8} {card.uid.hex().upper():14} {ident.type_name():9} "
                       f"balance {self.balance(card) / 100:8.2f}  valid until {valid}")
        return out

    def _cmd_new(self, args: list[str]) -> list[str]:
        if not args:
            raise ConsoleError("usage: new NAME [TYPE] [BALANCE]")
        card = self.new_card(args[0], "04" + secrets.token_hex(3), args[1] if len(args) > 1 else "student",
                             cents(args[2]) if len(args) > 2 else 0)
        return [f"new card {args[0]}: UID {card.uid.hex().upper()}"]

    def _cmd_blacklist(self, args: list[str]) -> list[str]:
        if len(args) != 2 or args[0] not in ("add", "remove"):
            raise ConsoleError("usage: blacklist add|remove NAME")
        return self.term.send(f"blacklist {args[0]} {self.card(args[1]).uid.hex()}")

    def _cmd_load(self, args: list[str]) -> list[str]:
        if len(args) != 2:
            raise ConsoleError("usage: load NAME 50.00")
        card = self.card(args[0])
        key = uidlist.uid_key(card.uid)
        queued = sum(1 for e in self.loads if e[:7] == key)
        seq = self.load_seq(card) + queued + 1
        self.loads.append(messages.pack_load(key, seq, cents(args[1]), messages.LOAD_TOPUP))
        return self.term.send("loads " + b"".join(self.loads).hex())

    def _cmd_time(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            raise ConsoleError("usage: time +SECONDS | time UTC")
        return self.term.send(f"time {args[0]}")

    def _cmd_journal(self, args: list[str]) -> list[str]:
        out = []
        for h in self.term.journal_hex():
            raw = bytes.fromhex(h)
            ok = "signed" if records.verify(raw, self.terminal_key) else "BAD MAC"
            out.append(f"{records.decode(raw)!r} {ok}")
        return out

    def _cmd_help(self, args: list[str]) -> list[str]:
        return (__doc__ or "").split("Commands (amounts in yuan)::")[1].split("Usage::")[0].strip("\n").splitlines()

    def _cmd_quit(self, args: list[str]) -> list[str]:
        raise EOFError


def show(lines: list[str]) -> str:
    """Firmware output as a person reads it: screens boxed, service answers plain."""
    screens = display_lines(lines)
    rest = [x for x in lines if not x.startswith("DISPLAY ") and x != "@ok poll"]
    return "\n".join([f"  [ {s} ]" for s in screens] + [f"  {x}" for x in rest])


def repl(console: Console, prompt: str, read: Callable[[str], str], echo: Callable[[str], None]) -> None:
    """Read a line, run it on the console, show what the terminal did; until end of input."""
    while True:
        try:
            line = read(prompt)
        except EOFError:
            return
        try:
            echo(show(console.execute(line)))
        except EOFError:
            return
        except ConsoleError as e:
            echo(f"  ! {e}")


def run(workspace: Path, reader: str = "pn532", read: Callable[[str], str] = input,
        echo: Callable[[str], None] = print) -> None:
    """The interactive loop of ``campuscard sim pos``."""
    with Console(workspace, reader) as console:
        echo(show(console.term.boot_lines))
        echo("cards: " + ", ".join(sorted(console.cards)) + "   (`help` lists the commands)")
        echo("network: down (no sync server here), so sales over the offline ceiling ask for the PIN; "
             "`net up` simulates an online terminal")
        repl(console, "pos> ", read, echo)
