"""The versioned blacklist and the delta a terminal fetches.

Every add or remove bumps the version. A terminal that holds version ``since`` gets the UIDs
added and removed since then as packed sorted UID lists (``protocol.uidlist``, 7 bytes per
UID); a terminal with nothing (``since`` 0), one whose version the log no longer reaches,
one ahead of the server (database restored), one so far behind that the delta would be
larger than the list, or one whose delta holds more than ``PAGE_KEYS`` changes gets the full
list instead (``full`` true), in pages: ``added`` holds at most ``PAGE_KEYS`` keys from
``offset`` of ``total``, and the terminal asks for the next page with ``offset``. A page
answer of 1,000 keys or a delta of 1,000 changes is about 7.1 KB sealed: it fits the
terminal's 8 KB answer buffer.

Usage::

    fields = blacklist.delta(db, since=41)
    # {"version": 57, "full": False, "since": 41, "added": b"...", "removed": b"..."}
    blacklist.delta(db, since=0, offset=1000)   # the second page of the full list
"""

from __future__ import annotations

from typing import Any

from protocol import uidlist
from sync_server import store
from sync_server.store import cards as cstore

PAGE_KEYS = 1000  # UID keys per answer (a delta's added + removed, or a page of a full list)
_LOG_SCAN_MAX = 5 * PAGE_KEYS  # more logged changes than this: send the full list


def _pack(keys: list[bytes]) -> bytes:
    return b"".join(sorted(set(keys)))


def delta(db: store.Database, since: int, offset: int = 0, page: int = PAGE_KEYS) -> dict[str, Any]:
    """The ``blacklist`` message fields for a terminal holding version ``since`` (a full list
    from ``offset`` when the terminal is fetching one in pages); ``page`` caps the keys per
    answer (a terminal with little RAM asks for fewer)."""
    version = cstore.blacklist_version(db)
    floor = cstore.blacklist_floor(db)
    count = cstore.blacklist_count(db)
    if offset == 0 and 0 < since <= version and since >= floor:
        log = cstore.blacklist_log_since(db, since, _LOG_SCAN_MAX + 1)
        if len(log) <= _LOG_SCAN_MAX:
            # Each logged change flips membership: the first one after ``since`` says what the
            # terminal holds, the last one what the list holds now.
            first: dict[bytes, int] = {}
            last: dict[bytes, int] = {}
            for uid, added in log:
                first.setdefault(uid, added)
                last[uid] = added
            added_keys = [u for u, a in last.items() if a and first[u]]
            removed_keys = [u for u, a in last.items() if not a and not first[u]]
            n = len(added_keys) + len(removed_keys)
            if n <= page and n <= max(count, 1):
                return {"version": version, "full": False, "since": since, "added": _pack(added_keys),
                        "removed": _pack(removed_keys)}
    return {"version": version, "full": True, "since": since,
            "added": b"".join(cstore.blacklist_page(db, offset, page)), "removed": b"",
            "offset": offset, "total": count}


def entries(db: store.Database) -> dict[str, Any]:
    """The whole list with reasons, for the admin API."""
    return {"version": cstore.blacklist_version(db),
            "entries": [{"uid": uidlist.uid_from_key(e["uid"]).hex().upper(), "reason": e["reason"],
                         "version": e["version"], "added": e["added"], "expires": e["expires"]}
                        for e in cstore.blacklist_all(db)]}
