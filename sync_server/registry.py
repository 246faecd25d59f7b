"""Merchants and their terminals; registering a terminal yields its provisioning bundle.

A terminal belongs to exactly one merchant for life (it is never lent to another). The
bundle holds what a technician's provisioning tool writes to the device: its id, merchant,
role, the server URL, its own key and the card and issuer masters it derives card keys from.

Usage::

    m = registry.add_merchant(db, now, "North Canteen")
    bundle = registry.register_terminal(db, now, keyring, m["id"], "pos", "till 1", None, url)
"""

from __future__ import annotations

from typing import Any

from sync_server import store
from sync_server.errors import Conflict, Invalid, NotFound
from sync_server.keys import KeyRing
from sync_server.store import terminals as tstore

ROLES = ("pos", "door")


def add_merchant(db: store.Database, now: int, name: str) -> dict[str, Any]:
    name = name.strip()
    if not name:
        raise Invalid("a merchant needs a name")
    with store.transaction(db):
        if tstore.merchant(db, name) is not None:
            raise Conflict(f"Merchant {name!r} already exists.")
        mid = tstore.add_merchant(db, name, now)
    return {"id": mid, "name": name}


def merchants(db: store.Database) -> list[dict[str, Any]]:
    return [{"id": m["id"], "name": m["name"], "created": m["created"]} for m in tstore.merchants(db)]


def find_merchant(db: store.Database, ref: str | int) -> dict[str, Any]:
    m = tstore.merchant(db, int(ref) if isinstance(ref, int) or ref.isdigit() else ref)
    if m is None:
        raise NotFound(f"Merchant {ref} does not exist (add it with `campuscard merchant add`).")
    return m


def register_terminal(db: store.Database, now: int, ring: KeyRing, merchant_id: int, role: str, name: str,
                      terminal_id: int | None, server_url: str) -> dict[str, Any]:
    """Register a terminal and return its provisioning bundle (keys in hex)."""
    if role not in ROLES:
        raise Invalid(f"terminal role must be pos or door, got {role!r}")
    if terminal_id is not None and not 0 < terminal_id <= 0xFFFFFFFF:
        raise Invalid(f"terminal id must be 1..4294967295, got {terminal_id}")
    with store.transaction(db):
        find_merchant(db, merchant_id)
        if terminal_id is not None and tstore.terminal(db, terminal_id) is not None:
            raise Conflict("Terminal {} is already registered (to merchant "
                           "{}).".format(terminal_id, tstore.terminal(db, terminal_id)["merchant_id"]))
        tid = tstore.add_terminal(db, terminal_id, merchant_id, role, name, now)
    return bundle(db, ring, tid, server_url)


def bundle(db: store.Database, ring: KeyRing, tid: int, server_url: str) -> dict[str, Any]:
    t = tstore.terminal(db, tid)
    if t is None:
        raise NotFound(f"Terminal {tid} is not registered.")
    return {"terminal_id": tid, "merchant_id": t["merchant_id"], "role": t["role"], "server_url": server_url,
            "terminal_key": ring.terminal_key(tid).hex(), "card_master": ring.card_master.hex(),
            "issuer_master": ring.issuer_master.hex()}


def terminals(db: store.Database) -> list[dict[str, Any]]:
    out = []
    for t in tstore.terminals(db):
        t = dict(t)
        t["acked_link"] = t["acked_link"].hex() if t["acked_link"] else None
        out.append(t)
    return out


def set_enabled(db: store.Database, tid: int, enabled: bool) -> None:
    with store.transaction(db):
        if tstore.terminal(db, tid) is None:
            raise NotFound(f"Terminal {tid} is not registered.")
        tstore.set_terminal_status(db, tid, "active" if enabled else "disabled")
