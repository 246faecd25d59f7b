"""Door access lists: the two UID lists of each door group, their versions, and the ``access``
answer a door gets (a delta since the version it holds, or the whole list in pages).

========  ===========  ===================================================================
list      name         cards
========  ===========  ===================================================================
0         ``allow``    every card the door group lets in outside the curfew, including
                       those of list 1 (so moving a card between lists never leaves a gap)
1         ``anytime``  cards let in during the curfew too: individual anytime grants and
                       card groups granted anytime (staff, dorm managers)
========  ===========  ===================================================================

A card is listed while it is ``active``, within its validity, and holds a grant in force:
an individual grant (``door_card_grants``, optionally anytime, optionally expiring), or a
card group granted to the door group (listed members, or every card of a type) — temporary
cards only through individual grants. The lists are materialised in ``access_lists`` and
recomputed (``refresh``) when a grant changes or a grant or card validity ran out, and
brought up to date for the cards of the card events since (``store.access.bump_epoch``:
status changes, issue, replacement; ``catch_up``) before a door is answered and in the
sweep. Each change of a list is a new version of it, its keys added and removed logged, its
hash kept. (A whole recomputation reads every granted card: ~70 ms for 20,000; catching up
on a few card events reads those cards only.)

Hash of a list: the first 16 bytes of SHA-256 over its packed ascending 7-byte keys
(``protocol.uidlist``; an empty list: SHA-256 of no bytes), as ``firmware.uidstore`` computes.

Usage::

    fields = access.answer(db, terminal_id, lst=0, since=12, held_hash=h, offset=0, now=now)
    # {"version": 14, "hash": b"...", "full": False, "since": 12, "list": 0, "added": ..., "removed": ...}
"""

from __future__ import annotations

import hashlib
from typing import Any

from sync_server import store
from sync_server.blacklist import PAGE_KEYS
from sync_server.store import access as astore

LIST_NAMES = ("allow", "anytime")
HASH_LEN = 16
EMPTY_HASH = hashlib.sha256(b"").digest()[:HASH_LEN]
_LOG_SCAN_MAX = 5 * PAGE_KEYS  # more logged changes than this: send the whole list
_CATCH_UP_MAX = 2000  # more cards touched since a door group last looked: recompute it whole


def list_hash(keys: list[bytes]) -> bytes:
    """First 16 bytes of SHA-256 of the packed ascending ``keys``."""
    return hashlib.sha256(b"".join(sorted(keys))).digest()[:HASH_LEN]


def _store_version(db: store.Database, gid: int, lst: int, added: set[bytes], removed: set[bytes],
                   now: int, whole: set[bytes] | None = None) -> int:
    """A new version of list ``lst`` with these changes (``whole``: the new list, if known)."""
    version = astore.current_version(db, gid, lst)["version"] + 1
    if whole is None:
        whole = (set(astore.list_keys(db, gid, lst)) | added) - removed
    astore.add_version(db, gid, lst, version, sorted(added), sorted(removed), list_hash(list(whole)),
                       len(whole), now)
    return version


def _wanted(rows: list[tuple[bytes, int, int | None, int]], now: int, next_change: int | None
            ) -> tuple[tuple[set[bytes], set[bytes]], int | None]:
    """Lists 0 and 1 of grant rows, and the first time one of them runs out."""
    want: tuple[set[bytes], set[bytes]] = (set(), set())
    for uid, anytime, expires, valid_until in rows:
        want[0].add(uid)
        if anytime:
            want[1].add(uid)
        for t in (expires, valid_until + 1):
            if t is not None and t > now and (next_change is None or t < next_change):
                next_change = t
    return want, next_change


def refresh(db: store.Database, gid: int, now: int) -> None:
    """Recompute door group ``gid``'s lists whole; store a new version of each one that
    changed. Call inside a write transaction."""
    at_epoch = astore.epoch(db)
    want, next_change = _wanted(astore.wanted(db, gid, now), now, None)
    for lst in (0, 1):
        have = set(astore.list_keys(db, gid, lst))
        if want[lst] != have:
            _store_version(db, gid, lst, want[lst] - have, have - want[lst], now, want[lst])
    astore.set_refreshed(db, gid, at_epoch, next_change)


def catch_up(db: store.Database, gid: int, now: int) -> None:
    """Bring ``gid``'s lists up to date: whole if a grant or validity ran out or many cards
    changed, else for the cards of the card events it has not seen. In a write transaction."""
    row = astore.door_group(db, gid)
    if row is None:
        return
    at_epoch = astore.epoch(db)
    if (row["next_change"] is not None and row["next_change"] <= now) or row["epoch"] < 0:
        refresh(db, gid, now)
        return
    if row["epoch"] == at_epoch:
        return
    ids = astore.dirty_cards(db, row["epoch"], _CATCH_UP_MAX + 1)
    if len(ids) > _CATCH_UP_MAX:
        refresh(db, gid, now)
        return
    want, next_change = _wanted(astore.wanted(db, gid, now, ids), now, row["next_change"])
    for lst in (0, 1):
        have = astore.listed_among(db, gid, lst, ids)
        if want[lst] != have:
            _store_version(db, gid, lst, want[lst] - have, have - want[lst], now)
    astore.set_refreshed(db, gid, at_epoch, next_change)


def refresh_stale(db: store.Database, now: int) -> int:
    """Catch up every door group that missed card events or whose grants ran out; how many."""
    stale = astore.stale_groups(db, astore.epoch(db), now)
    for gid in stale:
        catch_up(db, gid, now)
    return len(stale)


def _net_changes(log: list[tuple[bytes, int]]) -> tuple[list[bytes], list[bytes]]:
    """Keys added and removed overall by a run of exact changes (each one flips membership)."""
    first: dict[bytes, int] = {}
    last: dict[bytes, int] = {}
    for uid, added in log:
        first.setdefault(uid, added)
        last[uid] = added
    added_keys = sorted(u for u, a in last.items() if a and first[u])
    removed_keys = sorted(u for u, a in last.items() if not a and not first[u])
    return added_keys, removed_keys


def answer(db: store.Database, tid: int, lst: int, since: int, held_hash: bytes, offset: int,
           now: int, page: int = PAGE_KEYS) -> dict[str, Any]:
    """The ``access`` message fields for door ``tid`` holding version ``since`` of list ``lst``
    with hash ``held_hash`` (empty: unchecked), asking for a whole list from ``offset``.

    A delta when the door's version is still in the log, its hash matches that version's, and
    the changes are at most ``page`` (``PAGE_KEYS`` unless the door asks for fewer) and no more
    than the list; otherwise the whole list, ``page`` keys per answer. A door in no door group
    gets an empty list at version 0.
    Call inside the request's write transaction (it may recompute the lists).
    """
    gid = astore.group_of_door(db, tid)
    if gid is not None:
        catch_up(db, gid, now)
        cur = astore.current_version(db, gid, lst)
    else:
        cur = {"version": 0, "hash": EMPTY_HASH, "count": 0}
    version, h, count = cur["version"], cur["hash"], cur["count"]
    base = {"version": version, "hash": h, "list": lst, "since": since}
    if gid is not None and since > 0 and offset == 0 and since <= version:
        old_hash = h if since == version else astore.version_hash(db, gid, lst, since)
        if old_hash is not None and (not held_hash or held_hash == old_hash):
            log = astore.log_since(db, gid, lst, since, _LOG_SCAN_MAX + 1) if since < version else []
            if len(log) <= _LOG_SCAN_MAX:
                added, removed = _net_changes(log)
                n = len(added) + len(removed)
                if n <= page and n <= max(count, 1):
                    return dict(base, full=False, added=b"".join(added), removed=b"".join(removed))
    keys = astore.list_page(db, gid, lst, offset, page) if gid is not None else []
    return dict(base, full=True, added=b"".join(keys), removed=b"", offset=offset, total=count)


def lists_of(db: store.Database, gid: int) -> list[dict[str, Any]]:
    """Version, count and hash (hex) of both lists of door group ``gid``, for the admin."""
    out = []
    for lst in (0, 1):
        cur = astore.current_version(db, gid, lst)
        out.append({"list": lst, "name": LIST_NAMES[lst], "version": cur["version"], "count": cur["count"],
                    "hash": bytes(cur["hash"]).hex(), "changed": cur["at"]})
    return out
