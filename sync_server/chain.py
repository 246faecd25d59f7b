"""The per-card chain check: records ordered by card counter must link, balance to balance.

Each money record (purchase, load, finished tearing repair) carries the card's counter after
the event and the balances before and after it. The linked prefix of a card's chain ends at
``head``: record head+1 links if its balance before equals the head's balance after.

Evidence and absence are told apart:

* Evidence of a clone or forged purse blacklists the card at once: a second, different record
  for a counter already used; a balance before higher than the chain allows (at head+1, or
  beyond a hole higher than the head balance plus every load still in transit).
* Absence - a hole in the counters - only makes the card ``pending``: the missing records may
  still sit in a terminal's journal. ``sweep`` escalates a hole older than the settle time to
  ``quarantined`` for review; it never freezes a card for records that have not arrived.
* A purchase and a tearing repair of the same torn transaction are one event (same card
  counter, amount and balance after; the repair names the original): posted once.

Usage::

    effects = chain.Effects()
    chain.check_card(card_state, new_events, lookup, now, effects)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import records
from sync_server import status as st

# The record layout as one struct, built from protocol.records' own definitions.
if (struct.calcsize(records._BODY_FMT) != records._LINK_AT
        or records._LINK_AT + records.LINK_SIZE != 52 or 52 + 4 != records._MAC_AT):
    raise ImportError("protocol.records layout changed: update sync_server.chain.RECORD")
RECORD = struct.Struct(records._BODY_FMT + f"{records.LINK_SIZE}s" + records._AUX2_FMT[1:]
                       + f"{records.MAC_SIZE}s")
MONEY_TYPES = (records.PURCHASE, records.LOAD, records.TEARING_REPAIR)


class Event:
    """One money record of a card, new in this upload or already stored."""

    __slots__ = ("rid", "tid", "seq", "type", "flags", "time", "counter", "amount", "before", "after",
                 "aux", "aux2", "raw", "status", "new", "twin")

    def __init__(self, f: tuple[Any, ...], raw: bytes, rid: int | None, status: int) -> None:
        (_, self.type, self.flags, _, self.tid, self.seq, self.time, _, _, self.counter, self.amount,
         self.before, self.after, self.aux, _, self.aux2, _) = f
        self.raw = raw
        self.rid = rid
        self.status = status
        self.new = rid is None
        self.twin: Event | None = None  # for a same-event record: the record of the event it repeats

    @classmethod
    def stored(cls, row: dict[str, Any]) -> Event:
        return cls(RECORD.unpack(row["raw"]), row["raw"], row["rid"], row["status"])

    def is_load(self) -> bool:
        return self.type == records.LOAD or (self.type == records.TEARING_REPAIR and self.after > self.before)

    def label(self) -> str:
        return f"terminal {self.tid} #{self.seq} ({records.TYPE_NAMES[self.type]}, {self.before} -> {self.after})"


class Lookup(Protocol):
    """Stored records the check needs on its rare paths."""

    def records_at(self, uid: bytes, counter: int) -> list[Event]: ...

    def pending_beyond(self, uid: bytes, head: int) -> list[Event]: ...

    def in_transit(self, card_id: int) -> int: ...


class CardState:
    """Chain state of one card (a row of ``card_chain``)."""

    __slots__ = ("uid", "blob", "card_id", "head", "head_balance", "top", "top_balance", "state", "since",
                 "credit_since")

    def __init__(self, uid: bytes, row: list[Any]) -> None:
        self.uid = uid
        self.blob = bytearray(uid)  # the uid as record rows bind it (store.records.BLOB)
        (self.card_id, self.head, self.head_balance, self.top, self.top_balance, self.state, self.since,
         self.credit_since) = row

    def copy(self) -> CardState:
        other = CardState.__new__(CardState)
        (other.uid, other.blob, other.card_id, other.head, other.head_balance, other.top, other.top_balance,
         other.state, other.since, other.credit_since) = (self.uid, self.blob, self.card_id, self.head,
                                                          self.head_balance, self.top, self.top_balance, self.state,
                                                          self.since, self.credit_since)
        return other

    def update_row(self) -> tuple[Any, ...]:
        return (self.head, self.head_balance, self.top, self.top_balance, self.state, self.since,
                self.credit_since, self.card_id)


@dataclass
class Effects:
    """What a check decided beyond the statuses of the new events."""

    relinked: list[tuple[int, int]] = field(default_factory=list)  # (status, rid) of stored records
    anomalies: list[tuple[str, int, int, bytes, str]] = field(default_factory=list)  # kind, tid, seq, uid, text
    blacklist: list[tuple[int, bytes, str]] = field(default_factory=list)  # card id, uid, reason
    resolved_holes: list[bytes] = field(default_factory=list)


def same_event(a: Event, b: Event) -> bool:
    """True if ``a`` and ``b`` are a torn transaction and its repair (or two such repairs)."""
    if a.counter != b.counter or a.amount != b.amount or a.after != b.after:
        return False
    ra, rb = a.type == records.TEARING_REPAIR, b.type == records.TEARING_REPAIR
    if ra and rb:
        return a.aux == b.aux and a.aux2 == b.aux2
    if not (ra or rb):
        return False
    rep, orig = (a, b) if ra else (b, a)
    if orig.type == records.PURCHASE:
        return rep.aux == orig.tid and rep.aux2 == orig.seq
    return orig.type == records.LOAD and rep.aux == 0 and rep.aux2 == orig.aux


def _flag(card: CardState, fx: Effects, kind: str, ev: Event, text: str, evidence: bool) -> None:
    fx.anomalies.append((kind, ev.tid, ev.seq, card.uid, text))
    if evidence:
        if card.state != "clone":
            fx.blacklist.append((card.card_id, card.uid, text))
        card.state, card.since = "clone", ev.time
    elif card.state not in ("clone", "break"):
        card.state, card.since = "break", ev.time


def _judge_duplicate(card: CardState, ev: Event, others: list[Event], fx: Effects) -> None:
    """``ev`` uses a counter that ``others`` already used: the same event or a clone."""
    twin = next((o for o in others if same_event(o, ev)), None)
    if twin is not None:
        ev.status, ev.twin = st.SAME_EVENT, twin
        return
    ev.status = st.CLONE
    if others:
        text = f"clone: card counter {ev.counter} used twice, by {others[0].label()} and by {ev.label()}"
    else:
        text = f"card counter {ev.counter} is behind the chain head {card.head} but no record holds it"
    _flag(card, fx, "clone", ev, text, evidence=bool(others))


def check_card(card: CardState, new: list[Event], lookup: Lookup, now: int, fx: Effects) -> None:
    """Set the status of every event in ``new`` and advance ``card``; side effects go to ``fx``."""
    new.sort(key=lambda e: (e.counter, e.seq))
    seen: dict[int, list[Event]] = {}
    fresh = []
    for ev in new:
        if ev.counter <= card.head:
            others = seen.get(ev.counter)
            if others is None:
                others = seen[ev.counter] = lookup.records_at(card.uid, ev.counter)
            _judge_duplicate(card, ev, others, fx)
            others.append(ev)
        else:
            fresh.append(ev)
    candidates = fresh
    if card.top > card.head:
        candidates = lookup.pending_beyond(card.uid, card.head) + fresh
        candidates.sort(key=lambda e: (e.counter, e.new, e.rid or 0, e.seq))
    was_hole = card.top > card.head
    i, n = 0, len(candidates)
    bound: int | None = None
    while i < n:
        first = candidates[i]
        j = i + 1
        while j < n and candidates[j].counter == first.counter:
            if candidates[j].new:
                _judge_duplicate(card, candidates[j], candidates[i:j], fx)
            j += 1
        if first.counter == card.head + 1:
            _link(card, first, fx)
        else:
            if bound is None:
                bound = card.head_balance + lookup.in_transit(card.card_id)
            if first.new:
                first.status = st.PENDING
                if first.before > bound:
                    first.status = st.CLONE
                    _flag(card, fx, "forged_balance", first,
                          f"forged purse: balance before {first.before} at counter {first.counter} is more than the "
                          "chain allows "
                          f"({bound} after counter {card.head} plus loads in transit)", evidence=True)
            elif first.is_load():
                bound += first.amount
        i = j
    for ev in new:
        if ev.status in st.POSTED and ev.counter > card.top:
            card.top, card.top_balance = ev.counter, ev.after
            if ev.after < 0:
                card.credit_since = card.credit_since or min(ev.time, now)
            else:
                card.credit_since = None
    hole = card.top > card.head
    if hole and card.state == "ok":
        card.state, card.since = "pending", now
        fx.anomalies.append(("chain_hole", 0, 0, card.uid,
                             f"card counters {card.head + 1}..{_next_after(candidates, card.head) - 1} have not "
                             "arrived yet (pending, not frozen)"))
    elif was_hole and not hole:
        if card.state in ("pending", "quarantined"):
            card.state, card.since = "ok", None
        fx.resolved_holes.append(card.uid)


def _next_after(events: list[Event], head: int) -> int:
    return min((e.counter for e in events if e.counter > head + 1), default=head + 2)


def _link(card: CardState, ev: Event, fx: Effects) -> None:
    status = st.LINKED
    if ev.before != card.head_balance:
        status = st.BREAK
        if ev.before > card.head_balance:
            _flag(card, fx, "forged_balance", ev,
                  f"forged purse: balance before {ev.before} at counter {ev.counter} is higher than the chain allows "
                  f"({card.head_balance} after counter {card.head})", evidence=True)
        else:
            _flag(card, fx, "balance_drop", ev,
                  f"chain break: balance before {ev.before} at counter {ev.counter} is lower than "
                  f"{card.head_balance} after counter {card.head} "
                  "(money left the card without a record); quarantined for review", evidence=False)
    if ev.new:
        ev.status = status
    elif ev.status == st.PENDING:
        fx.relinked.append((status, ev.rid or 0))
    card.head, card.head_balance = ev.counter, ev.after
