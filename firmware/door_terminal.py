"""The running door terminal (role "door"): board, stores, the door application, the sync
client (which also syncs the access lists), its loop and service lines. ``firmware.main``
builds it instead of the POS when config.json says ``"role": "door"``; ``door_fail_mode``
there ("safe", the default, or "secure") names the kind of lock.

Service lines (technician / simulator), besides the POS terminal's ``time``, ``param``,
``net``, ``blacklist``, ``journal``, ``ack``, ``sync``, ``quit``:

==================================  ========================================================
``access``                          ``@access {json}``: version, and per list version, count
                                    and hash (hex)
``access add|remove <list> <uid>``  a local change of list ``0``/``allow`` or
                                    ``1``/``anytime`` (UID hex); its version goes up by one
``access reload``                   reopen the lists from flash (after a technician copied
                                    list files onto it)
``power off`` / ``power on``        mains lost / back (the unix board's relay prints what
                                    the lock does)
``relay``                           ``@relay open`` or ``@relay closed``
``stats [reset|probe|noprobe]``     ``@stats {json}``: grants, denials, polls, heap
==================================  ========================================================

Usage::

    DoorTerminal(board, cfg, code_heap, cfg.door_fail_mode).run()
"""

import binascii
import gc
import json

from firmware import texts, ui
from firmware.main import FIRMWARE_VERSION, Terminal

try:
    import micropython
except ImportError:
    micropython = None  # type: ignore[assignment]


def _list_index(name):
    if name in ("0", "allow"):
        return 0
    if name in ("1", "anytime"):
        return 1
    raise ValueError("list must be 0/allow or 1/anytime, got %r" % name)


class DoorTerminal(Terminal):
    """The door's stores and application behind the POS terminal's loop and service lines."""

    def __init__(self, board, cfg, code_heap=0, mode="safe"):
        from firmware.access import AccessLists
        from firmware.blacklist import Blacklist
        from firmware.card_id import CardId
        from firmware.door import Door
        from firmware.journal import Journal
        from firmware.params import Params

        self.code_heap = code_heap
        root = board.root
        self.board = board
        self.params = Params(root)
        self.journal = Journal(root + "/journal", cfg.terminal_key, max_records=cfg.journal_max)
        self.blacklist = Blacklist(root + "/blacklist")
        self.access = AccessLists(root + "/access", self.params)
        self.loads = None  # type: ignore[assignment]  # a door has no pending loads
        board.relay.fail_mode = mode
        card = CardId(board.reader, cfg.card_master, cfg.issuer_master)
        self.door = Door(card, self.journal, self.blacklist, self.access, self.params, board.display,
                         board.clock, board.relay, cfg.terminal_id)
        self.app = self.door  # type: ignore[assignment]  # what Terminal.poll and "net" call
        self.door.set_network_down_since(board.clock.now())  # down until the sync client says up
        self.sync = None
        if cfg.server_url:
            from firmware.sync import Sync

            self.sync = Sync.from_config(cfg, self.journal, self.blacklist, None, self.params, board.clock,
                                         FIRMWARE_VERSION, access=self.access)
        self.reader_ok = False
        self.poll_us = 0
        self.polls = 0
        self.heap_high = 0
        self.gc_probe = False
        self.cpu_clock = None
        self.poll_cpu = 0.0

    def service(self, word, rest):
        if word != "access" and word != "power" and word != "relay" and word != "loads":
            return super().service(word, rest)
        out = self.board.display.out
        try:
            if word == "access":
                self._access(rest)
            elif word == "power":
                if rest != "off" and rest != "on":
                    raise ValueError("usage: power off|on")
                self.door.power(rest == "on")
            elif word == "relay":
                out("@relay " + ("open" if self.board.relay.is_open() else "closed"))
            else:
                raise ValueError("a door terminal has no pending loads")
            out("@ok %s" % word)
        except Exception as e:  # noqa: BLE001 - a bad service line must not stop the terminal
            out("@error %s: %s" % (word, e))
        return True

    def _access(self, rest):
        parts = rest.split()
        acl = self.access
        if not parts:
            lists = [[acl.list_version(i), acl.count(i), binascii.hexlify(acl.list_hash(i)).decode()]
                     for i in (0, 1)]
            self.board.display.out("@access " + json.dumps({"version": acl.version(), "lists": lists}))
        elif parts[0] == "reload":
            from firmware.access import AccessLists

            acl.close()
            self.access = self.door.access = AccessLists(self.board.root + "/access", self.params)
            if self.sync is not None:
                self.sync.access = self.access
        elif len(parts) == 3 and (parts[0] == "add" or parts[0] == "remove"):
            uid = binascii.unhexlify(parts[2])
            if len(uid) != 4 and len(uid) != 7:
                raise ValueError("UID must be 4 or 7 bytes, got %d" % len(uid))
            key = uid if len(uid) == 7 else b"\x00\x00\x00" + uid
            acl.change(_list_index(parts[1]), key, parts[0] == "add")
        else:
            raise ValueError("usage: access [add|remove <list> <uid hex> | reload]")

    def _stats(self, rest):
        r = self.board.reader
        app = self.door
        if rest == "probe" or rest == "noprobe":
            self.gc_probe = rest == "probe"
            return
        if rest == "reset":
            r.reset_counters()
            self.poll_us = 0
            self.polls = 0
            app.granted = app.denied = 0
            gc.collect()
            self.heap_high = 0
            return
        d = {"granted": app.granted, "denied": app.denied, "unlogged": app.unlogged, "polls": self.polls,
             "poll_us": self.poll_us, "commands": r.commands, "card_ios": r.card_ios,
             "heap_high": self.heap_high, "code_heap": self.code_heap,
             "journal_unacked": self.journal.unacked_count(), "access_version": self.access.version()}
        if micropython is not None:
            d["mem_peak"] = micropython.mem_peak()  # type: ignore[attr-defined]
            d["mem_alloc"] = gc.mem_alloc()  # type: ignore[attr-defined]
        self.board.display.out("@stats " + json.dumps(d))

    def run(self):
        """The door's loop: reader polls, service lines, and the relay's pulse ending on time."""
        board = self.board
        relay = board.relay
        keypad = board.keypad
        self.start_reader()
        board.display.show(texts.T_DOOR_READY)
        while True:
            wait = board.poll_ms if board.poll_ms > 0 else -1
            left = relay.remaining_ms()
            if left >= 0 and (wait < 0 or left < wait):
                wait = left
            ev = keypad.poll(wait)
            relay.update()
            if ev is None:
                if board.poll_ms > 0:  # a polling board (the simulator polls on its "poll" lines)
                    self.poll()
                    self.sync_tick()
                continue
            kind = ev[0]
            if kind == ui.EV_POLL:
                self.poll()
            elif kind == ui.EV_SERVICE:
                if not self.service(ev[1][0], ev[1][1]):
                    return
            else:
                self.door.key(ev)
