"""Door access as dorm managers run it: door groups and their doors, individual grants
(optionally anytime, optionally expiring: visitors), card groups granted to a door group.

A door group is a set of doors sharing lists (a dorm building); each door (a terminal with
role ``door``) belongs to at most one. A card group is named, and holds either the cards the
admin puts in it or every card of one type (``card_type``). Temporary cards carry no identity
function: they reach a door only through an individual grant (card groups skip them). Every
change recomputes the affected door groups' lists in the same transaction
(``access.refresh``), so a door gets it at its next sync.

Usage::

    doors.add_group(db, now, "Building 3")
    doors.assign(db, now, "Building 3", 2001)
    doors.grant_group(db, now, "Building 3", "b3-residents", cards=["S2024001", "S2024002"])
    doors.grant_group(db, now, "Building 3", "staff", card_type="staff", anytime=True)
    doors.grant(db, now, "Building 3", "T0001", until=now + 86400)   # a visitor for a day
    doors.revoke(db, now, "Building 3", "S2024001")
"""

from __future__ import annotations

from typing import Any

from protocol import card_layout, uidlist
from sync_server import access, cards, store
from sync_server.errors import Conflict, Invalid, NotFound
from sync_server.store import access as astore
from sync_server.store import cards as cstore
from sync_server.store import terminals as tstore

TYPE_NAMES = card_layout.CARD_TYPE_NAMES


def find_group(db: store.Database, ref: str | int) -> dict[str, Any]:
    """The door group with id or name ``ref``; ``NotFound`` otherwise."""
    row = astore.door_group(db, ref)
    if row is None and isinstance(ref, str) and ref.isdigit():
        row = astore.door_group(db, int(ref))
    if row is None:
        raise NotFound(f"Door group {ref} does not exist (add it with `campuscard door group-add`).")
    return row


def add_group(db: store.Database, now: int, name: str, note: str = "") -> dict[str, Any]:
    name = name.strip()
    if not name or name.isdigit():
        raise Invalid(f"a door group needs a name that is not a number, got {name!r}")
    with store.transaction(db):
        if astore.door_group(db, name) is not None:
            raise Conflict(f"Door group {name!r} already exists.")
        astore.add_door_group(db, name, note, now, access.EMPTY_HASH)
        access.refresh(db, find_group(db, name)["id"], now)
    return show(db, name)


def assign(db: store.Database, now: int, ref: str, terminal_id: int) -> dict[str, Any]:
    """Put door ``terminal_id`` into door group ``ref`` (out of the one it was in)."""
    with store.transaction(db):
        g = find_group(db, ref)
        t = tstore.terminal(db, terminal_id)
        if t is None:
            raise NotFound(f"Terminal {terminal_id} is not registered.")
        if t["role"] != "door":
            raise Invalid("Terminal {} is a {} terminal; only doors (role door) take access lists.".format(
                terminal_id, t["role"]))
        astore.assign_door(db, terminal_id, g["id"], now)
    return show(db, g["name"])


def _expiry(now: int, until: int | None) -> int | None:
    if until is not None and until <= now:
        raise Invalid(f"a grant must run until a time in the future, got {until} (now {now})")
    return until


def grant(db: store.Database, now: int, ref: str, card_ref: str, anytime: bool = False,
          until: int | None = None, note: str = "") -> dict[str, Any]:
    """Grant one card (any type, temporary cards included) the doors of group ``ref``;
    ``anytime`` also during the curfew, ``until`` an expiry (UTC seconds). Replaces the card's
    previous grant on this group."""
    with store.transaction(db):
        g = find_group(db, ref)
        card = cards.find(db, card_ref)
        if card["status"] != "active":
            raise Conflict("Card {} is {}; only active cards can be granted door access.".format(
                card["card_no"], card["status"]))
        astore.set_card_grant(db, g["id"], card["id"], anytime, _expiry(now, until), note, now)
        access.refresh(db, g["id"], now)
    return _result(db, g, card=card["card_no"], anytime=anytime, expires=until)


def revoke(db: store.Database, now: int, ref: str, card_ref: str) -> dict[str, Any]:
    """Withdraw a card's individual grant on group ``ref``."""
    with store.transaction(db):
        g = find_group(db, ref)
        card = cards.find(db, card_ref)
        if not astore.delete_card_grant(db, g["id"], card["id"]):
            raise NotFound("Card {} has no individual grant on door group {} (card groups granted there are "
                           "revoked with `campuscard door revoke-group`).".format(card["card_no"], g["name"]))
        access.refresh(db, g["id"], now)
    return _result(db, g, card=card["card_no"])


def _card_group(db: store.Database, now: int, name: str, card_type: str | None) -> dict[str, Any]:
    name = name.strip()
    if not name:
        raise Invalid("a card group needs a name")
    ctype = cards.type_of(card_type) if card_type is not None else None
    if ctype == card_layout.CARD_TEMPORARY:
        raise Invalid("temporary cards carry no identity function: grant them one by one with "
                      "`campuscard door grant`, not as a card group")
    cg = astore.card_group(db, name)
    if cg is None:
        astore.add_card_group(db, name, ctype, now)
        cg = astore.card_group(db, name)
        assert cg is not None
    elif card_type is not None and cg["card_type"] != ctype:
        raise Conflict(f"Card group {name!r} exists and is {_kind(cg)}; choose another name.")
    return cg


def _kind(cg: dict[str, Any]) -> str:
    return "every {} card".format(TYPE_NAMES[cg["card_type"]]) if cg["card_type"] else "a list of cards"


def _cards(db: store.Database, refs: list[str]) -> tuple[list[int], list[str], list[str]]:
    """(card ids, temporary cards skipped, unknown refs) of card numbers or UIDs."""
    found = cstore.cards_by_refs(db, refs)
    ids, temporary, unknown = [], [], []
    for ref in refs:
        c = found.get(ref)
        if c is None:
            unknown.append(ref)
        elif c["type"] == card_layout.CARD_TEMPORARY:
            temporary.append(ref)
        else:
            ids.append(c["id"])
    return ids, temporary, unknown


def grant_group(db: store.Database, now: int, ref: str, card_group: str, card_type: str | None = None,
                members: list[str] | None = None, anytime: bool = False, until: int | None = None
                ) -> dict[str, Any]:
    """Grant card group ``card_group`` the doors of group ``ref`` (creating the card group if
    new: of ``card_type``, or a list), first adding ``members`` (card numbers or UIDs) to it.
    Temporary cards are skipped, unknown ones reported; nothing is added if any is unknown."""
    with store.transaction(db):
        g = find_group(db, ref)
        cg = _card_group(db, now, card_group, card_type)
        ids, temporary, unknown = _cards(db, members or [])
        if unknown:
            raise NotFound("Cards not registered: {} (nothing was changed).".format(", ".join(unknown[:20])))
        if ids and cg["card_type"]:
            raise Invalid(f"card group {card_group!r} is {_kind(cg)}; it takes no listed cards")
        added = astore.add_members(db, cg["id"], ids, now)
        astore.set_group_grant(db, g["id"], cg["id"], anytime, _expiry(now, until), now)
        for gid in set(astore.groups_granting(db, cg["id"])):
            access.refresh(db, gid, now)
    return _result(db, g, card_group=cg["name"], kind=_kind(cg), added=added, skipped_temporary=temporary,
                   anytime=anytime, expires=until)


def revoke_group(db: store.Database, now: int, ref: str, card_group: str, members: list[str] | None = None
                 ) -> dict[str, Any]:
    """Without ``members``: withdraw card group ``card_group``'s grant on group ``ref``. With
    them: take those cards out of the card group (every door group granting it loses them)."""
    with store.transaction(db):
        g = find_group(db, ref)
        cg = astore.card_group(db, card_group)
        if cg is None:
            raise NotFound(f"Card group {card_group!r} does not exist.")
        if members:
            ids, _, unknown = _cards(db, members)
            if unknown:
                raise NotFound("Cards not registered: {} (nothing was changed).".format(", ".join(unknown[:20])))
            removed = astore.remove_members(db, cg["id"], ids)
            for gid in set(astore.groups_granting(db, cg["id"])):
                access.refresh(db, gid, now)
            return _result(db, g, card_group=cg["name"], removed=removed)
        if not astore.delete_group_grant(db, g["id"], cg["id"]):
            raise NotFound("Card group {!r} is not granted on door group {}.".format(cg["name"], g["name"]))
        access.refresh(db, g["id"], now)
    return _result(db, g, card_group=cg["name"], revoked=True)


def _result(db: store.Database, g: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return dict(fields, door_group=g["name"], lists=access.lists_of(db, g["id"]))


def show(db: store.Database, ref: str | int, now: int | None = None) -> dict[str, Any]:
    """A door group: its doors (and whether each holds the current lists), grants and lists.
    With ``now``, lists out of date (card events, expiries) are recomputed first."""
    g = find_group(db, ref)
    if now is not None:
        with store.transaction(db):
            access.catch_up(db, g["id"], now)
    lists = access.lists_of(db, g["id"])
    total = lists[0]["version"] + lists[1]["version"]
    doors = [dict(d, in_sync=d["access_version"] == total) for d in astore.doors_in(db, g["id"])]
    grants = [{"card_no": r["card_no"], "uid": cards.uid_hex(r["uid"]), "type": TYPE_NAMES[r["type"]],
               "card_status": r["status"], "anytime": bool(r["anytime"]), "expires": r["expires"],
               "granted": r["created"], "note": r["note"]} for r in astore.card_grants(db, g["id"])]
    groups = [{"card_group": r["name"], "kind": _kind(r), "members": r["members"], "anytime": bool(r["anytime"]),
               "expires": r["expires"], "granted": r["created"]} for r in astore.group_grants(db, g["id"])]
    return {"id": g["id"], "name": g["name"], "note": g["note"], "doors": doors, "card_grants": grants,
            "group_grants": groups, "lists": lists}


def list_all(db: store.Database) -> dict[str, Any]:
    """Every door group (with its list versions) and every card group."""
    out = []
    for g in astore.door_groups(db):
        out.append(dict(g, lists=access.lists_of(db, g["id"])))
    return {"door_groups": out,
            "card_groups": [dict(cg, kind=_kind(cg)) for cg in astore.card_groups(db)]}


def members(db: store.Database, ref: str, lst: int, now: int) -> dict[str, Any]:
    """The UIDs (hex) on list ``lst`` of a door group, as its doors get it."""
    if lst not in (0, 1):
        raise Invalid(f"list must be 0 (allow) or 1 (anytime), got {lst}")
    g = find_group(db, ref)
    with store.transaction(db):
        access.catch_up(db, g["id"], now)
    cur = access.lists_of(db, g["id"])[lst]
    keys = astore.list_keys(db, g["id"], lst)
    return dict(cur, door_group=g["name"], uids=[uidlist.uid_from_key(k).hex().upper() for k in keys])
