"""The door terminal application: a card is tapped, checked, and the lock opens or stays shut.

One tap (:meth:`Door.poll`, called between reader polls) goes through, in this order:

1. identity: the identity sector is read and its issuer MAC checked (``firmware.card_id``);
   a card of another system, a blank or a cloned/altered card is refused;
2. validity: the card's validity period against the clock (an expired card is refused);
3. blacklist: lost, frozen or replaced cards (``firmware.blacklist``);
4. access lists: in list 1 ("anytime"), or in list 0 ("allow") outside the curfew window
   (``firmware.access``, at the local minute of ``params.tz_offset_s``);

then the relay releases the lock for ``params.door_pulse_ms``. Every grant and every denial is
a signed record in the journal: ``DOOR_GRANTED`` / ``DOOR_DENIED`` with ``aux`` the decision
code (``firmware.access``: 0 granted, 1 not listed, 2 curfew, 3 blacklisted, 4 expired, 5 not
yet valid, 6 identity MAC, 7 not a campus card), ``aux2`` the access-list version in force
(``AccessLists.version()``), counter, amount and balances 0, and the offline flags the sync
client reports. The lock opens only once its grant record is on flash: a full journal keeps
the door shut ("log full") until the sync client has uploaded and the server acknowledged
records (``Journal.ack`` then frees whole segments).

One decision per tap: the card decided last is not served again while it stays on the reader
(the PN532 and MFRC522 drivers find a card left on the reader again at every poll); it must
leave the field first. A card whose read fails half-way is asked to tap again, unrecorded.

Network loss changes nothing but the records' offline flag: the lists and the blacklist on
flash stay in force. Power loss (``power(False)``) is the lock's business: a fail-safe
(magnetic) lock opens without power, a fail-secure lock stays locked and the terminal goes on
on its battery; the display says which.

Usage::

    door = Door(CardId(reader, cm, im), journal, blacklist, AccessLists(root + "/access", params),
                params, display, clock, relay, terminal_id)
    door.poll()                     # serve the card on the reader, if any
"""

from firmware import limits, texts
from firmware.access import (
    DENY_BLACKLISTED,
    DENY_EXPIRED,
    DENY_IDENTITY_MAC,
    DENY_NOT_CAMPUS,
    DENY_NOT_YET_VALID,
    GRANTED,
)
from firmware.card_id import REJECT_IDENTITY_MAC, CardRejected, keep_uid, same_uid
from firmware.journal import JournalFull
from firmware.mifare import ReaderError
from protocol import records as rec

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

FAIL_SAFE = "safe"  # magnetic lock: released (door open) without power
FAIL_SECURE = "secure"  # battery lock: stays locked without mains, works on battery with cards

_CLOCK_MIN = const(946684800)  # 2000-01-01: below this the clock was never set
# Display text per decision code (firmware.access): granted, not listed, curfew, blacklisted,
# expired, not yet valid, identity MAC, not a campus card.
_TEXT = (texts.T_DOOR_OPEN, texts.T_DOOR_NOT_ALLOWED, texts.T_DOOR_CURFEW, texts.T_BLACKLISTED,
         texts.T_EXPIRED, texts.T_NOT_YET_VALID, texts.T_CARD_FORGED, texts.T_NOT_CAMPUS_CARD)


class Door:
    """The door's tap handling; ``poll`` serves the card on the reader, ``power`` reports mains."""

    def __init__(self, card, journal, blacklist, access, params, display, clock, relay, terminal_id):
        self.card = card
        self.journal = journal
        self.blacklist = blacklist
        self.access = access
        self.params = params
        self.display = display
        self.clock = clock
        self.relay = relay
        self.terminal_id = terminal_id
        self.granted = 0
        self.denied = 0
        self.unlogged = 0  # decisions the journal refused (full or failing flash)
        self.powered = True
        self._rec = bytearray(rec.RECORD_SIZE)
        self._done = bytearray(8)  # card decided last, still on the reader; [7] = UID length
        self._down_since = 0
        self._unauthorised = False

    # -- outside world --------------------------------------------------------------------

    def set_network_down_since(self, t):
        """The sync client reports the network down since UTC ``t`` (0: up again)."""
        self._down_since = t

    def set_unauthorised_offline(self, flag):
        """The sync client reports the terminal kept offline by hand: records say so."""
        self._unauthorised = flag

    def power(self, on):
        """Mains lost (False) or back (True): the lock does what its kind does; say so."""
        self.powered = on
        self.relay.set_power(on)
        if on:
            self.display.show(texts.T_POWER_RESTORED, None, texts.T_DOOR_READY)
        elif self.relay.fail_mode == FAIL_SAFE:
            self.display.show(texts.T_POWER_LOST_OPEN)
        else:
            self.display.show(texts.T_POWER_LOST_BATTERY)

    def key(self, ev):
        """A door has no keypad use: key events are ignored."""

    def retry_held(self):
        return True

    # -- the tap ------------------------------------------------------------------------------

    def poll(self):
        """Poll the reader once; a card not decided yet is checked, recorded and let in or not."""
        c = self.card
        try:
            n = c.select()
        except ReaderError:
            return  # the air or the reader hiccupped: the next poll tries again
        if not n:
            self._done[7] = 0  # the field is empty: the next card is a new tap
            return
        if same_uid(self._done, c.uid, n):
            return  # still on the reader since its decision: not a new tap
        now = self.clock.now()
        if now < _CLOCK_MIN:
            self.display.show(texts.T_CLOCK_NOT_SET)  # no validity, no curfew, no record possible
            self._mark()
            return
        try:
            c.read_identity()
        except CardRejected as e:
            self._decided(now, DENY_IDENTITY_MAC if e.code == REJECT_IDENTITY_MAC else DENY_NOT_CAMPUS)
            return
        except ReaderError:
            self.display.show(texts.T_TAP_AGAIN)
            return
        self._decided(now, self.decide(now))

    def decide(self, now):
        """The decision code for the card just read (identity checked) at UTC ``now``."""
        c = self.card
        ident = c.identity
        v = limits.validity(now, ident.valid_from, ident.valid_until)
        if v == limits.EXPIRED:
            return DENY_EXPIRED
        if v == limits.NOT_YET_VALID:
            return DENY_NOT_YET_VALID
        if self.blacklist.is_blacklisted(c.uid_mv, c.uid_len):
            return DENY_BLACKLISTED
        return self.access.allowed(c.uid_mv, c.uid_len, limits.local_minute(now, self.params.tz_offset_s))

    def _decided(self, now, reason):
        """Record the decision, then open (a grant whose record is on flash) and show it."""
        logged = self._log(now, reason)
        self._mark()
        if reason == GRANTED:
            if not logged:
                self.display.show(texts.T_LOG_FULL_CLOSED)
                return
            self.granted += 1
            self.relay.pulse(self.params.door_pulse_ms)
            self.display.show(texts.T_DOOR_OPEN)
            return
        self.denied += 1
        self.display.show(_TEXT[reason], None, 0 if logged else texts.T_JOURNAL_FULL)

    def _mark(self):
        c = self.card
        keep_uid(self._done, c.uid, c.uid_len)

    def _log(self, now, reason):
        """Journal the decision as a signed record; False if the journal refused it."""
        flags = 0
        if self._down_since:
            flags |= rec.FLAG_OFFLINE
        if self._unauthorised:
            flags |= rec.FLAG_UNAUTHORISED_OFFLINE
        c = self.card
        rec.encode_into(self._rec, rec.DOOR_GRANTED if reason == GRANTED else rec.DOOR_DENIED, flags,
                        self.terminal_id, self.journal.next_seq(), now, c.uid_mv, 0, 0, 0, 0, reason,
                        self.access.version())
        try:
            self.journal.append(self._rec)
        except (JournalFull, OSError):
            self.unlogged += 1
            return False
        return True
