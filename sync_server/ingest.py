"""Upload ingest: verify every record, check the terminal's hash chain and the cards' chains,
store each record exactly once, post the ledger lines and answer with an acknowledgement.

One upload is one transaction. A bad record never sinks the batch: it is reported in the
ack's ``rejected`` list (seq and reason) and in the anomalies table, the good ones are stored.
The ack's ``acked`` is the highest sequence up to which every record of the terminal is stored.
Gaps in a terminal's sequence stay open anomalies until filled. Records already stored are
acknowledged again and otherwise ignored, so retries are harmless.

An upload is checked in two steps: ``check`` needs no stored state, ``store_upload`` is the
transaction; ``ingest`` does both. The usual upload - well-formed records with consecutive
sequences - is checked in bulk (``Pending``, ``scan``): one ``struct.iter_unpack`` over the
whole batch, the record MACs and hash links computed in one loop (by the MAC helper process
when the server has one, ``macworker``), all MACs compared at once in constant time; in the
transaction its first link is compared with the stored chain. Anything else (a bad record,
a retry, a gap) goes through ``parse`` and ``_terminal_chain``, record by record, which say
what is wrong. Card states come from the server's cache and are changed in place (the cache
starts over from the database if the transaction fails); ``executemany`` for the record
rows; stored records are read only for duplicates, holes and suspected clones.

Usage::

    ack = ingest.ingest(db, keyring, terminal_row, msg["records"], now, claim=lambda: ...)
    # {"acked": 1200, "rejected": [[1187, "record MAC does not match ..."]]}
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from hmac import compare_digest
from operator import itemgetter
from typing import Any

from protocol import records, uidlist
from sync_server import cards, chain, macworker, store
from sync_server import status as st
from sync_server.chaincache import ChainCache
from sync_server.keys import KeyRing
from sync_server.macworker import MacWorker
from sync_server.store import cards as cstore
from sync_server.store import ledger as lstore
from sync_server.store import records as rstore
from sync_server.store import terminals as tstore

_SIZE = records.RECORD_SIZE
_UNPACK = chain.RECORD.unpack
_ITER_UNPACK = chain.RECORD.iter_unpack
_LINK_SIZE = records.LINK_SIZE
_TYPE, _PREV_LINK, _MAC = itemgetter(1), itemgetter(14), itemgetter(16)  # fields of chain.RECORD
_PLAIN_MONEY = frozenset((records.PURCHASE, records.LOAD))
HELPER_MIN_RECORDS = 32  # smaller uploads: the round trip to the MAC helper costs more than it saves
_PURCHASE, _LOAD, _REPAIR = records.PURCHASE, records.LOAD, records.TEARING_REPAIR
_KNOWN_TYPES = frozenset(range(1, len(records.TYPE_NAMES)))
_ROLLED_BACK = records.FLAG_ROLLED_BACK
_UNAUTHORISED = records.FLAG_UNAUTHORISED_OFFLINE
_VERSION = records.VERSION
_PAD = uidlist.PAD4
_POSTED = frozenset(st.POSTED)
_LINKED = st.LINKED
_BLOB = rstore.BLOB
if (macworker.SIZE, macworker.MAC_AT, macworker.TAG) != (_SIZE, _SIZE - records.MAC_SIZE, records.MAC_SIZE) \
        or records.LINK_SIZE != macworker.TAG:
    raise ImportError("protocol.records layout changed: update sync_server.macworker's constants")


def _link(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()[:records.LINK_SIZE]


def _seq_of(item: Any) -> int:
    if isinstance(item, bytes) and len(item) >= 12:
        return records.seq_of(item)
    return 0


def _consistent(f: tuple[Any, ...]) -> str | None:
    """Why a record's own numbers contradict each other, or None."""
    rtype, flags, counter, amount, before, after = f[1], f[2], f[9], f[10], f[11], f[12]
    if rtype == _PURCHASE:
        if amount <= 0 or before - amount != after:
            return f"purchase of {amount} must take the balance from {before} to {before - amount}, record says {after}"
    elif rtype == _LOAD:
        if amount <= 0 or before + amount != after:
            return f"load of {amount} must take the balance from {before} to {before + amount}, record says {after}"
    elif rtype == _REPAIR:
        if flags & _ROLLED_BACK:
            if before != after:
                return f"rolled-back repair must leave the balance at {before}, record says {after}"
            return None
        if amount <= 0 or abs(after - before) != amount:
            return f"finished repair of {amount} cannot take the balance from {before} to {after}"
    else:
        return None
    if counter < 1:
        return "money record with card counter 0 (the first event on a card has counter 1)"
    return None


def _moves_money(f: tuple[Any, ...]) -> bool:
    """True for a purchase, a load and a finished (not rolled-back) tearing repair."""
    return f[1] == _PURCHASE or f[1] == _LOAD or (f[1] == _REPAIR and not f[2] & _ROLLED_BACK)


def _invalid(f: tuple[Any, ...], tid: int) -> str | None:
    """Why a record (MAC checked, fields unpacked) cannot be stored for terminal ``tid``, or None."""
    if f[0] != _VERSION:
        return f"record version {f[0]}, expected {_VERSION}"
    if f[4] != tid:
        return f"record names terminal {f[4]} but terminal {tid} uploaded it"
    if f[5] == 0:
        return "record sequence 0 (terminal sequences start at 1)"
    if f[1] not in _KNOWN_TYPES:
        return f"unknown record type {f[1]}"
    if f[3] != 4 and f[3] != 7:
        return f"record UID length {f[3]}, expected 4 or 7"
    if f[3] == 7 and f[7][0] == 0:
        return "7-byte card UID may not start with 0x00"
    return _consistent(f)


class Run:
    """An upload whose every item is a valid record, in consecutive sequence order, each record
    carrying the link of the one before it (``scan``).

    ``joined`` holds the records end to end, ``links`` the link of each (the first 8 bytes of
    its SHA-256) concatenated.
    """

    __slots__ = ("raws", "fields", "joined", "links", "first", "last")

    def __init__(self, raws: list[bytes], fields: list[tuple[Any, ...]], joined: bytes, links: bytes) -> None:
        self.raws, self.fields, self.joined, self.links = raws, fields, joined, links
        self.first, self.last = fields[0][5], fields[-1][5]

    @classmethod
    def of(cls, joined: bytes, links: bytes) -> Run:
        """The run a ``Pending`` checked, from its records end to end and their links (the
        ingest process gets these two strings)."""
        return cls([joined[at:at + _SIZE] for at in range(0, len(joined), _SIZE)], list(_ITER_UNPACK(joined)),
                   joined, links)

    def last_link(self) -> bytes:
        return self.links[-_LINK_SIZE:]

    def follows(self, acked: int, acked_link: bytes | None, max_seq: int) -> bool:
        """True if the run comes right after the last stored record and its first record
        carries that record's link (then it is stored whole, nothing else to check)."""
        if self.first != acked + 1 or acked != max_seq:
            return False
        return self.fields[0][14] == (acked_link if acked else records.GENESIS_LINK)

    def good(self) -> dict[int, tuple[bytes, tuple[Any, ...]]]:
        """The records as ``parse`` returns them: seq -> (raw, fields)."""
        return {f[5]: (raw, f) for raw, f in zip(self.raws, self.fields)}


def _fields_ok(fields: list[tuple[Any, ...]], tid: int) -> bool:
    """True if every record is valid for terminal ``tid`` and the sequences run on by one."""
    seq = fields[0][5]
    if seq == 0:
        return False
    for f in fields:
        if f[5] != seq or f[0] != _VERSION or f[4] != tid:
            return False
        if not (f[1] == _PURCHASE and f[3] == 4 and f[10] > 0 and f[11] - f[10] == f[12] and f[9] > 0) \
                and _invalid(f, tid) is not None:
            return False
        seq += 1
    return True


class Pending:
    """An upload being checked in bulk, in two halves: the constructor sends the records to
    the MAC helper (if given) and checks their fields; ``run`` collects the MACs and links
    (computing them here without a helper) and says whether the upload is a ``Run``.
    ``wait`` blocks, without the GIL, until the helper has answered."""

    __slots__ = ("items", "tid", "ring", "worker", "joined", "fields", "job", "answer")

    def __init__(self, items: list[Any], tid: int, ring: KeyRing, worker: MacWorker | None = None) -> None:
        self.items, self.tid, self.ring, self.worker = items, tid, ring, worker
        self.joined: bytes | None = None
        self.fields: list[tuple[Any, ...]] | None = None
        self.job = self.answer = None
        if not items or set(map(type, items)) != {bytes} or set(map(len, items)) != {_SIZE}:
            return
        self.joined = b"".join(items)
        if worker is not None and len(items) >= HELPER_MIN_RECORDS:
            self.job = worker.submit(ring.terminal_key(tid), self.joined)
        fields = list(_ITER_UNPACK(self.joined))
        if _fields_ok(fields, tid):
            self.fields = fields

    def wait(self) -> None:
        if self.job is not None and self.worker is not None:
            self.answer = self.worker.result(self.job, len(self.items))
            self.job = None

    def run(self) -> Run | None:
        self.wait()
        if self.fields is None or self.joined is None:
            return None
        if self.answer is not None:
            macs, links = self.answer
        else:
            verifier = self.ring.verifier(self.tid)
            macs, links = macworker.digest(verifier.key, self.joined, (verifier.inner, verifier.outer))
        if not compare_digest(macs, b"".join(map(_MAC, self.fields))):  # one constant-time compare
            return None
        if b"".join(map(_PREV_LINK, self.fields[1:])) != links[:-_LINK_SIZE]:
            return None  # a record that does not carry its predecessor's link: parse, then say which
        return Run(self.items, self.fields, self.joined, links)


def scan(items: list[Any], tid: int, ring: KeyRing) -> Run | None:
    """The usual upload checked in bulk: a ``Run`` if every item is a 64-byte record with a
    good MAC and valid fields and the sequences are consecutive; None otherwise (then
    ``parse`` checks the items one by one and says what is wrong)."""
    return Pending(items, tid, ring).run()


class _StoreLookup:
    """The rare-path reads of ``chain.check_card``: from the database, and the records of this
    upload already taken on the fast path (``taken``: (uid, counter) -> events), which are not
    stored yet but hold their counters as much as stored ones do."""

    def __init__(self, db: store.Database, taken: dict[tuple[bytes, int], list[chain.Event]] | None = None) -> None:
        self.db = db
        self.taken = taken or {}

    def records_at(self, uid: bytes, counter: int) -> list[chain.Event]:
        rows = rstore.card_records(self.db, uid, counter=counter, statuses=st.POSTED + (st.SAME_EVENT,))
        return [chain.Event.stored(r) for r in rows] + self.taken.get((uid, counter), [])

    def pending_beyond(self, uid: bytes, head: int) -> list[chain.Event]:
        rows = rstore.card_records(self.db, uid, min_counter=head, statuses=(st.PENDING, st.CLONE))
        return [chain.Event.stored(r) for r in rows]

    def in_transit(self, card_id: int) -> int:
        return cstore.in_transit(self.db, card_id)


def parse(items: list[Any], tid: int, ring: KeyRing) -> tuple[dict[int, tuple[bytes, tuple[Any, ...]]],
                                                                list[list[Any]]]:
    """Check each item on its own: (seq -> (raw, fields) of good records, [[seq, reason]])."""
    verifier = ring.verifier(tid)
    inner, outer, mac_at, mac_size = verifier.inner, verifier.outer, _SIZE - records.MAC_SIZE, records.MAC_SIZE
    good: dict[int, tuple[bytes, tuple[Any, ...]]] = {}
    rejected: list[list[Any]] = []
    for i, raw in enumerate(items):
        if type(raw) is not bytes or len(raw) != _SIZE:
            what = f"{len(raw)} bytes" if isinstance(raw, bytes) else type(raw).__name__
            rejected.append([_seq_of(raw), f"item {i} is not a {_SIZE}-byte record (got {what})"])
            continue
        h = inner.copy()  # HMAC-SHA256 with the pads precomputed (keys.RecordVerifier.ok, inlined)
        h.update(raw[:mac_at])
        o = outer.copy()
        o.update(h.digest())
        if not compare_digest(o.digest()[:mac_size], raw[mac_at:]):
            rejected.append([_seq_of(raw), f"record MAC does not match terminal {tid}'s key (tampered, or signed "
                                           "by another terminal)"])
            continue
        f = _UNPACK(raw)
        seq = f[5]
        if (f[1] == _PURCHASE and f[0] == _VERSION and f[4] == tid and seq and f[3] == 4 and f[10] > 0
                and f[11] - f[10] == f[12] and f[9] > 0 and seq not in good):
            good[seq] = (raw, f)  # the common case: a well-formed purchase on a 4-byte UID
            continue
        reason = _invalid(f, tid)
        if reason is None and seq in good and good[seq][0] != raw:
            reason = f"two different records #{seq} in one upload"
        if reason is not None:
            rejected.append([seq, reason])
        else:
            good[seq] = (raw, f)
    return good, rejected


class Checked:
    """An upload checked on its own (``check``): the bulk ``run``, or the records ``parse``
    found good and the ones it rejected."""

    __slots__ = ("tid", "run", "good", "rejected")

    def __init__(self, tid: int, run: Run | None, good: dict[int, tuple[bytes, tuple[Any, ...]]],
                 rejected: list[list[Any]]) -> None:
        self.tid, self.run, self.good, self.rejected = tid, run, good, rejected


def check(items: list[Any], tid: int, ring: KeyRing, pending: Pending | None = None) -> Checked:
    """Everything about an upload that needs no stored state: MACs, fields, sequence order
    (``pending``: the bulk check already begun). Runs before ``store_upload``."""
    run = (pending or Pending(items, tid, ring)).run()
    if run is not None:
        return Checked(tid, run, {}, [])
    good, rejected = parse(items, tid, ring)
    return Checked(tid, None, good, rejected)


def ingest(db: store.Database, ring: KeyRing, terminal: dict[str, Any], items: list[Any], now: int,
           claim: Callable[[], None] = lambda: None, cache: ChainCache | None = None,
           poke: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Store an upload; returns ``{"acked": seq, "rejected": [[seq, reason], ...]}``.

    :param claim: called first inside the transaction (the request nonce is claimed there).
    :param cache: the server's card chain cache (a throwaway one if None).
    :param poke: told after the commit how many records were stored (the server's upkeep
        thread's ``poke``); without it the card index catches up here when due.
    """
    return store_upload(db, check(items, terminal["id"], ring), terminal, now, claim, cache, poke)


def store_upload(db: store.Database, checked: Checked, terminal: dict[str, Any], now: int,
                 claim: Callable[[], None] = lambda: None, cache: ChainCache | None = None,
                 poke: Callable[[int], None] | None = None, finish: Callable[[int], None] | None = None
                 ) -> dict[str, Any]:
    """The stored-state half of ``ingest``: terminal chain, card chains, ledger, one transaction.
    ``claim()`` runs first in it and ``finish(acked)`` last (the nonce, the heartbeat)."""
    tid = terminal["id"]
    if checked.tid != tid:
        raise ValueError(f"upload checked for terminal {checked.tid}, stored for {tid}")
    cache = cache or ChainCache(write_through=True)
    run, good, rejected = checked.run, checked.good, list(checked.rejected)
    loaded = False
    try:
        with store.transaction(db):
            claim()
            acked, acked_link, max_seq = rstore.terminal_chain(db, tid)
            if run is not None and run.follows(acked, acked_link, max_seq):
                raws, fields = run.raws, run.fields
                acked = max_seq = run.last
                acked_link = run.last_link()
            else:
                if run is not None:
                    good = run.good()
                accepted = _terminal_chain(db, tid, good, acked, acked_link, max_seq, rejected)
                acked, acked_link, max_seq = _advance(db, tid, accepted, acked, acked_link, max_seq, now)
                raws = [v[0] for v in accepted.values()]
                fields = [v[1] for v in accepted.values()]
            loaded = True
            fx, unknown, states = _cards(db, terminal, raws, fields, now, cache)
            anomalies = [(now, "rejected_record", tid, seq, None, reason) for seq, reason in rejected]
            anomalies += [(now, kind, t or tid, s or None, uid, text) for kind, t, s, uid, text in fx.anomalies]
            anomalies += [(now, "unknown_card", tid, seq, uid, f"card {cards.uid_hex(uid)} was never issued "
                           "here; record stored, not posted") for uid, seq in unknown.items()]
            rstore.add_anomalies(db, anomalies)
            for uid in fx.resolved_holes:
                rstore.resolve_anomalies(db, "chain_hole", now, uid=uid)
                rstore.resolve_anomalies(db, "chain_quarantined", now, uid=uid)
            for card_id, _uid, reason in fx.blacklist:
                cards.block(db, card_id, reason, now)
            rstore.set_terminal_chain(db, tid, acked, acked_link, max_seq, now)
            if finish is not None:
                finish(acked)
            cache.install(db, states)  # last: nothing but the commit can fail after it
    except BaseException:
        if loaded:  # card states in the cache may have changed: start over from the database
            cache.reset(db)
        raise
    if poke is not None:
        poke(len(raws))
    else:
        rstore.catch_up_index(db)
    return {"acked": acked, "rejected": rejected}


def _terminal_chain(db: store.Database, tid: int, good: dict[int, tuple[bytes, tuple[Any, ...]]], acked: int,
                    acked_link: bytes | None, max_seq: int, rejected: list[list[Any]]
                    ) -> dict[int, tuple[bytes, tuple[Any, ...]]]:
    """Drop duplicates and records that do not chain to their stored neighbours."""
    if not good:
        return {}
    seqs = sorted(good)
    lo, hi = seqs[0], seqs[-1]
    stored: dict[int, bytes] = {}
    if lo - 1 <= max_seq and not (lo - 1 == acked == max_seq):
        stored = rstore.stored_raw(db, tid, lo - 1, hi + 1)
    accepted: dict[int, tuple[bytes, tuple[Any, ...]]] = {}
    links: dict[int, bytes] = {}
    for seq in seqs:
        raw, f = good[seq]
        old = stored.get(seq)
        if old is not None:
            if old != raw:
                rejected.append([seq, f"conflicts with the stored record #{seq} (same sequence, different content)"])
            continue
        prev = seq - 1
        expect = None
        if prev == 0:
            expect = records.GENESIS_LINK
        elif prev in links:
            expect = links[prev]
        elif prev in accepted:
            expect = links[prev] = _link(accepted[prev][0])
        elif prev in stored:
            expect = links[prev] = _link(stored[prev])
        elif prev == acked:
            expect = acked_link
        if expect is not None and f[14] != expect:
            rejected.append([seq, f"record #{seq} does not chain: link {f[14].hex()}, expected {expect.hex()} (hash "
                                  f"of #{prev})"])
            continue
        nxt = stored.get(seq + 1)
        if nxt is not None:
            mine = links[seq] = _link(raw)
            if records.prev_link_of(nxt) != mine:
                rejected.append([seq, f"stored record #{seq + 1} does not chain to this record #{seq}"])
                continue
        accepted[seq] = (raw, f)
    return accepted


def _advance(db: store.Database, tid: int, accepted: dict[int, tuple[bytes, tuple[Any, ...]]], acked: int,
             acked_link: bytes | None, max_seq: int, now: int) -> tuple[int, bytes | None, int]:
    """New (acked, link at acked, max seq) after storing ``accepted``; opens and closes gap anomalies."""
    if not accepted:
        return acked, acked_link, max_seq
    top = max(max_seq, max(accepted))
    have = set(accepted)
    if max_seq > acked:
        have.update(rstore.seqs_above(db, tid, acked))
    a = acked
    while a + 1 in have:
        a += 1
    if a != acked:
        raw = accepted[a][0] if a in accepted else rstore.stored_raw(db, tid, a, a)[a]
        acked_link = _link(raw)
    if top > a or max_seq > acked:
        _update_gaps(db, tid, a, top, have, now)
    return a, acked_link, top


def _update_gaps(db: store.Database, tid: int, acked: int, top: int, have: set[int], now: int) -> None:
    old = {first: (last, since) for first, last, since in rstore.gaps(db, tid)}
    new: list[tuple[int, int, int]] = []
    s = acked + 1
    while s <= top:
        if s in have:
            s += 1
            continue
        e = s
        while e + 1 <= top and e + 1 not in have:
            e += 1
        since = min((v[1] for k, v in old.items() if k <= e and v[0] >= s), default=now)
        new.append((s, e, since))
        s = e + 1
    rstore.replace_gaps(db, tid, new)
    firsts = {g[0] for g in new}
    for first in old:  # an anomaly names a gap by its first sequence: a gap filled from the front is a new one
        if first not in firsts:
            rstore.resolve_anomalies(db, "seq_gap", now, terminal_id=tid, seq=first)
    rstore.add_anomalies(db, [(now, "seq_gap", tid, a, None,
                               f"terminal {tid}: records #{a}..#{b} missing; the ack stays at #{acked} until they "
                               "arrive") for a, b, _ in new if a not in old])


def _cards(db: store.Database, terminal: dict[str, Any], raws: list[bytes], fields: list[tuple[Any, ...]],
           now: int, cache: ChainCache) -> tuple[chain.Effects, dict[bytes, int], dict[bytes, chain.CardState]]:
    """Chain-check, post and store the accepted records (in sequence order); returns
    (effects, unknown uids, the batch's card states).

    The common case - the record at counter head+1 starting from the head balance on a card
    with no hole - is decided inline; everything else goes through ``chain.check_card``.
    """
    tid = terminal["id"]
    fx = chain.Effects()
    unknown: dict[bytes, int] = {}
    if not raws:
        return fx, unknown, {}
    uids = [f[7] if f[3] == 7 else _PAD + f[7][:4] for f in fields]
    if set(map(_TYPE, fields)) <= _PLAIN_MONEY:  # the usual batch: purchases and loads only
        money = set(uids)
    else:
        money = {uid for uid, f in zip(uids, fields) if _moves_money(f)}
    states = cache.load(db, list(money))
    posting = lstore.new_posting(db, "upload", now, terminal_id=tid) if states else None
    poster = _Poster(db, terminal, now)
    payable, held = poster.own_accounts()
    paid = kept = 0
    flat: list[Any] = []  # the record rows end to end (rstore.write_batch)
    row = flat.extend
    later: list[tuple[int, bytes, tuple[Any, ...], bytes, int]] = []  # rows that need more than the fast path
    slow: dict[bytes, list[chain.Event]] = {}
    events: dict[int, chain.Event] = {}
    get = states.get
    for raw, f, uid in zip(raws, fields, uids):
        _, rtype, flags, _, _, seq, ts, _, _, counter, amount, before, after, _, _, _, _ = f
        if rtype != _PURCHASE and rtype != _LOAD and (rtype != _REPAIR or flags & _ROLLED_BACK):
            row((tid, seq, _BLOB(uid), counter, rtype, flags, ts, amount, after, st.NO_MONEY, 0, 0, 0, None,
                 _BLOB(raw)))
            continue
        card = get(uid)
        if card is None:
            unknown.setdefault(uid, seq)
            row((tid, seq, _BLOB(uid), counter, rtype, flags, ts, amount, after, st.UNKNOWN_CARD, 0, 0, 0, None,
                 _BLOB(raw)))
        elif card.top == card.head and counter == card.head + 1 and before == card.head_balance \
                and uid not in slow:
            card.head = card.top = counter
            card.head_balance = card.top_balance = after
            if after < 0:
                card.credit_since = card.credit_since or min(ts, now)
            elif card.credit_since is not None:
                card.credit_since = None
            if rtype != _PURCHASE:
                later.append((seq, raw, f, uid, st.LINKED))
                continue
            if before >= 0 and after >= 0:
                purse, credit = after - before, 0
            else:
                purse, credit = cards.split(before, after)
            if flags & _UNAUTHORISED:
                kept += amount
                row((tid, seq, card.blob, counter, rtype, flags, ts, amount, after, _LINKED, 1, purse, credit,
                     posting, _BLOB(raw)))
            else:
                paid += amount
                row((tid, seq, card.blob, counter, rtype, flags, ts, amount, after, _LINKED, 0, purse, credit,
                     posting, _BLOB(raw)))
        else:
            ev = events[seq] = chain.Event(f, raw, None, 0)
            slow.setdefault(uid, []).append(ev)
            later.append((seq, raw, f, uid, 0))
    if slow:
        taken: dict[tuple[bytes, int], list[chain.Event]] = {}
        for raw, f, uid in zip(raws, fields, uids):  # the slow cards' records taken before they went slow
            if uid in slow and f[5] not in events and _moves_money(f):
                taken.setdefault((uid, f[9]), []).append(chain.Event(f, raw, None, st.LINKED))
        lookup = _StoreLookup(db, taken)
        for uid, evs in slow.items():
            chain.check_card(states[uid], evs, lookup, now, fx)
    poster.prefetch([states[uid].card_id for _, _, f, uid, _ in later if f[1] != _PURCHASE])
    lines = poster.lines
    lines[payable] += paid
    lines[held] += kept
    for seq, raw, f, uid, code in later:
        code = code or events[seq].status
        purse = credit = 0
        flags = f[2]
        if code == st.SAME_EVENT and f[1] == _PURCHASE:
            twin = events[seq].twin  # a tearing repair posted first, by its own till's flag: the sale's decides
            if (twin is not None and twin.type == _REPAIR and twin.status in _POSTED and twin.aux == tid
                    and (twin.flags ^ flags) & _UNAUTHORISED):
                moved = f[10] if flags & _UNAUTHORISED else -f[10]
                lines[held] += moved
                lines[payable] -= moved
        if code in _POSTED:
            purse, credit = cards.split(f[11], f[12])
            if f[1] == _PURCHASE:
                lines[held if flags & _UNAUTHORISED else payable] += f[10]
            else:
                poster.counterpart(f, states[uid].card_id, fx)
        row((tid, seq, _BLOB(uid), f[9], f[1], flags, f[6], f[10], f[12], code, 1 if flags & _UNAUTHORISED else 0,
             purse, credit, posting if purse or credit else None, _BLOB(raw)))
    if posting is not None:
        lstore.add_entries(db, posting, list(lines.items()))
    rstore.write_batch(db, flat, fx.relinked, (tid, now, len(raws), len(flat) // rstore.ROW_WIDTH, 0))
    poster.finish()
    return fx, unknown, states


class _Poster:
    """The counterparts of the card lines of one upload: merchants, loads in transit, suspense.

    Pending loads of the batch's cards are read in one query (``prefetch``), accounts once.
    """

    def __init__(self, db: store.Database, terminal: dict[str, Any], now: int) -> None:
        self.db = db
        self.now = now
        self.tid = terminal["id"]
        self.lines: dict[int, int] = defaultdict(int)
        self.collected: list[tuple[int, int, int, int, int]] = []
        self._loads: dict[tuple[int, int], tuple[int, str]] = {}
        self._accounts: dict[str, int] = {}
        self._merchants: dict[int, tuple[int, int] | None] = {}
        self._merchant_of = {self.tid: terminal["merchant_id"]}

    def prefetch(self, card_ids: list[int]) -> None:
        """Read the pending loads of the cards that collected loads in this batch."""
        if card_ids:
            self._loads = cstore.pending_loads_of(self.db, card_ids)

    def own_accounts(self) -> tuple[int, int]:
        """(payable, held) accounts of the uploading terminal's merchant."""
        accts = self._merchant_accounts(self.tid)
        if accts is None:
            raise RuntimeError(f"terminal {self.tid} has no merchant")
        return accts

    def _account(self, kind: str) -> int:
        acct = self._accounts.get(kind)
        if acct is None:
            acct = self._accounts[kind] = lstore.account(self.db, kind)
        return acct

    def _merchant_accounts(self, tid: int) -> tuple[int, int] | None:
        if tid not in self._merchant_of:
            self._merchant_of.update(tstore.merchants_of(self.db, [tid]))
        mid = self._merchant_of.get(tid)
        if mid is None:
            return None
        if mid not in self._merchants:
            m = tstore.merchant(self.db, mid)
            self._merchants[mid] = (m["payable_acct"], m["held_acct"]) if m else None
        return self._merchants[mid]

    def counterpart(self, f: tuple[Any, ...], card_id: int, fx: chain.Effects) -> None:
        """Post the other side of a load, a repair, or a purchase named by a repair."""
        ev = chain.Event(f, b"", None, 0)
        delta = ev.after - ev.before
        if delta < 0:
            merchant_tid = ev.tid if ev.type == _PURCHASE else ev.aux
            accts = self._merchant_accounts(merchant_tid)
            if accts is None:
                fx.anomalies.append(("suspense", ev.tid, ev.seq, None, f"debit of {-delta} names terminal "
                                     f"{merchant_tid}, which is not registered; posted to suspense"))
                self.lines[self._account("suspense")] -= delta
                return
            self.lines[accts[1] if ev.flags & _UNAUTHORISED else accts[0]] -= delta
            return
        load_seq = ev.aux if ev.type == _LOAD else ev.aux2
        if ev.type == _REPAIR and ev.aux != 0:
            load_seq = cstore.oldest_pending_load(self.db, card_id, ev.amount) or 0
        found = self._loads.pop((card_id, load_seq), None)
        if found is not None and found[0] == ev.amount:
            self.collected.append((self.now, ev.tid, ev.seq, card_id, load_seq))
            self.lines[self._account("in_transit")] -= delta
            return
        found = found or cstore.loads_by_seq(self.db, [(card_id, load_seq)]).get((card_id, load_seq))
        if found is not None and (card_id, load_seq) in {(c[3], c[4]) for c in self.collected}:
            found = (found[0], "collected")
        why = "no such load" if found is None else f"load {load_seq} is {found[1]} for {found[0]}"
        fx.anomalies.append(("load_mismatch", ev.tid, ev.seq, None, f"card collected load {load_seq} of "
                             f"{ev.amount} but the server has {why}; posted to suspense"))
        self.lines[self._account("suspense")] -= delta

    def finish(self) -> None:
        if self.collected:
            cstore.collect_loads(self.db, self.collected)
