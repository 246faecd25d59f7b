"""The versioned blacklist and the delta a terminal fetches.

Every add or remove bumps the version. A terminal that holds version ``since`` gets the UIDs
added and removed since then as packed sorted UID lists (``protocol.uidlist``, 7 bytes per
UID); a terminal with nothing (``since`` 0), one whose version the log no longer reaches,
one ahead of the server (database restored) or one so far behind that the delta would be
larger than the list gets the full list instead (``full`` true, ``added`` = whole list).

Usage::

    fields = blacklist.delta(db, since=41)
    # {"version": 57, "full": False, "since": 41, "added": b"...", "removed": b"..."}
"""

from __future__ import annotations

from typing import Any

from protocol import uidlist
from sync_server import store
from sync_server.store import cards as cstore


def _pack(keys: list[bytes]) -> bytes:
    return b"".join(sorted(set(keys)))


def delta(db: store.Database, since: int) -> dict[str, Any]:
    """The ``blacklist`` message fields for a terminal holding version ``since``."""
    version = cstore.blacklist_version(db)
    floor = cstore.blacklist_floor(db)
    if 0 < since <= version and since >= floor:
        log = cstore.blacklist_log_since(db, since)
        first: dict[bytes, int] = {}
        for uid, added in log:
            first.setdefault(uid, added)
        now_in = set(cstore.blacklist_uids(db)) if log else set()
        added_keys = [u for u, a in first.items() if a and u in now_in]
        removed_keys = [u for u, a in first.items() if not a and u not in now_in]
        if len(added_keys) + len(removed_keys) <= max(len(now_in), 1):
            return {"version": version, "full": False, "since": since, "added": _pack(added_keys),
                    "removed": _pack(removed_keys)}
    return {"version": version, "full": True, "since": since, "added": _pack(cstore.blacklist_uids(db)),
            "removed": b""}


def entries(db: store.Database) -> dict[str, Any]:
    """The whole list with reasons, for the admin API."""
    return {"version": cstore.blacklist_version(db),
            "entries": [{"uid": uidlist.uid_from_key(e["uid"]).hex().upper(), "reason": e["reason"],
                         "version": e["version"], "added": e["added"], "expires": e["expires"]}
                        for e in cstore.blacklist_all(db)]}
