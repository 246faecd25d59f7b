"""SQL for door access: door groups and their doors, card groups, grants, and the two UID
lists per door group with their versions and change log (see ``sync_server.access``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

_TEMPORARY = 4  # protocol.card_layout.CARD_TEMPORARY: no identity function, no group grants


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


# -- the change epoch: card events that may alter any door group's lists ---------------------


def epoch(db: Database) -> int:
    """Id of the last card event (0: none yet)."""
    row = db.execute("SELECT MAX(id) FROM access_dirty").fetchone()
    return row[0] or 0


def bump_epoch(db: Database, card_id: int) -> None:
    """Note that card ``card_id`` changed in a way door lists may care about."""
    db.execute("INSERT INTO access_dirty (card_id) VALUES (?)", [card_id])


def dirty_cards(db: Database, after: int, limit: int) -> list[int]:
    """Distinct cards of the events after id ``after`` (at most ``limit``)."""
    return [r[0] for r in db.execute("SELECT DISTINCT card_id FROM access_dirty WHERE id > ? LIMIT ?",
                                     [after, limit])]


def prune_dirty(db: Database) -> int:
    """Forget events every door group has taken in (keeping the newest, which is the epoch)."""
    return db.execute("DELETE FROM access_dirty WHERE id < (SELECT MAX(id) FROM access_dirty) AND "
                      "id <= (SELECT COALESCE(MIN(epoch), 0) FROM door_groups)").rowcount


# -- door groups and doors ---------------------------------------------------------------------


def add_door_group(db: Database, name: str, note: str, now: int, empty_hash: bytes) -> int:
    """A new door group whose lists 0 and 1 start empty at version 0."""
    cur = db.execute("INSERT INTO door_groups (name, note, created) VALUES (?, ?, ?)", [name, note, now])
    gid = int(cur.lastrowid or 0)
    db.conn.executemany("INSERT INTO access_versions (group_id, list, version, hash, count, at) "
                        "VALUES (?, ?, 0, ?, 0, ?)", [(gid, 0, empty_hash, now), (gid, 1, empty_hash, now)])
    return gid


def door_group(db: Database, ref: int | str) -> dict[str, Any] | None:
    column = "id" if isinstance(ref, int) else "name"
    rows = _rows(db.execute(f"SELECT * FROM door_groups WHERE {column} = ?", [ref]))
    return rows[0] if rows else None


def door_groups(db: Database) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT g.id, g.name, g.note, g.created, "
        "(SELECT COUNT(*) FROM doors d WHERE d.group_id = g.id) AS doors, "
        "(SELECT COUNT(*) FROM door_card_grants c WHERE c.group_id = g.id) AS card_grants, "
        "(SELECT COUNT(*) FROM door_group_grants c WHERE c.group_id = g.id) AS group_grants "
        "FROM door_groups g ORDER BY g.id"))


def assign_door(db: Database, tid: int, gid: int, now: int) -> None:
    db.execute("INSERT OR REPLACE INTO doors (terminal_id, group_id, assigned) VALUES (?, ?, ?)", [tid, gid, now])


def group_of_door(db: Database, tid: int) -> int | None:
    row = db.execute("SELECT group_id FROM doors WHERE terminal_id = ?", [tid]).fetchone()
    return None if row is None else row[0]


def doors_in(db: Database, gid: int) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT t.id AS terminal_id, t.name, t.merchant_id, t.status, t.last_seen, t.access_version, "
        "d.assigned FROM doors d JOIN terminals t ON t.id = d.terminal_id WHERE d.group_id = ? "
        "ORDER BY t.id", [gid]))


def set_refreshed(db: Database, gid: int, at_epoch: int, next_change: int | None) -> None:
    db.execute("UPDATE door_groups SET epoch = ?, next_change = ? WHERE id = ?", [at_epoch, next_change, gid])


def stale_groups(db: Database, at_epoch: int, now: int) -> list[int]:
    """Door groups computed before the last card event or before a grant/validity ran out."""
    return [r[0] for r in db.execute(
        "SELECT id FROM door_groups WHERE epoch != ? OR (next_change IS NOT NULL AND next_change <= ?)",
        [at_epoch, now])]


# -- card groups -----------------------------------------------------------------------------


def add_card_group(db: Database, name: str, card_type: int | None, now: int) -> int:
    cur = db.execute("INSERT INTO card_groups (name, card_type, created) VALUES (?, ?, ?)", [name, card_type, now])
    return int(cur.lastrowid or 0)


def card_group(db: Database, name: str) -> dict[str, Any] | None:
    rows = _rows(db.execute("SELECT * FROM card_groups WHERE name = ?", [name]))
    return rows[0] if rows else None


def card_groups(db: Database) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT g.id, g.name, g.card_type, g.created, "
        "(SELECT COUNT(*) FROM card_group_members m WHERE m.group_id = g.id) AS members "
        "FROM card_groups g ORDER BY g.id"))


def add_members(db: Database, cgid: int, card_ids: Iterable[int], now: int) -> int:
    cur = db.conn.executemany("INSERT OR IGNORE INTO card_group_members (group_id, card_id, added) VALUES (?, ?, ?)",
                              [(cgid, c, now) for c in card_ids])
    return cur.rowcount


def remove_members(db: Database, cgid: int, card_ids: Iterable[int]) -> int:
    cur = db.conn.executemany("DELETE FROM card_group_members WHERE group_id = ? AND card_id = ?",
                              [(cgid, c) for c in card_ids])
    return cur.rowcount


def groups_granting(db: Database, cgid: int) -> list[int]:
    """Door groups that grant card group ``cgid``."""
    return [r[0] for r in db.execute("SELECT group_id FROM door_group_grants WHERE card_group_id = ?", [cgid])]


def copy_card_access(db: Database, old_id: int, new_id: int, now: int) -> None:
    """Give a replacement card the old card's individual grants and card-group memberships."""
    db.execute("INSERT OR IGNORE INTO door_card_grants (group_id, card_id, anytime, expires, created, note) "
               "SELECT group_id, ?, anytime, expires, ?, note FROM door_card_grants WHERE card_id = ?",
               [new_id, now, old_id])
    db.execute("INSERT OR IGNORE INTO card_group_members (group_id, card_id, added) "
               "SELECT group_id, ?, ? FROM card_group_members WHERE card_id = ?", [new_id, now, old_id])


# -- grants ----------------------------------------------------------------------------------


def set_card_grant(db: Database, gid: int, card_id: int, anytime: bool, expires: int | None, note: str,
                   now: int) -> None:
    db.execute("INSERT OR REPLACE INTO door_card_grants (group_id, card_id, anytime, expires, created, note) "
               "VALUES (?, ?, ?, ?, ?, ?)", [gid, card_id, int(anytime), expires, now, note])


def delete_card_grant(db: Database, gid: int, card_id: int) -> bool:
    return db.execute("DELETE FROM door_card_grants WHERE group_id = ? AND card_id = ?",
                      [gid, card_id]).rowcount > 0


def set_group_grant(db: Database, gid: int, cgid: int, anytime: bool, expires: int | None, now: int) -> None:
    db.execute("INSERT OR REPLACE INTO door_group_grants (group_id, card_group_id, anytime, expires, created) "
               "VALUES (?, ?, ?, ?, ?)", [gid, cgid, int(anytime), expires, now])


def delete_group_grant(db: Database, gid: int, cgid: int) -> bool:
    return db.execute("DELETE FROM door_group_grants WHERE group_id = ? AND card_group_id = ?",
                      [gid, cgid]).rowcount > 0


def card_grants(db: Database, gid: int) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT c.card_no, c.uid, c.type, c.status, c.valid_until, g.anytime, g.expires, g.created, g.note "
        "FROM door_card_grants g JOIN cards c ON c.id = g.card_id WHERE g.group_id = ? ORDER BY c.card_no",
        [gid]))


def group_grants(db: Database, gid: int) -> list[dict[str, Any]]:
    return _rows(db.execute(
        "SELECT cg.name, cg.card_type, g.anytime, g.expires, g.created, "
        "(SELECT COUNT(*) FROM card_group_members m WHERE m.group_id = cg.id) AS members "
        "FROM door_group_grants g JOIN card_groups cg ON cg.id = g.card_group_id WHERE g.group_id = ? "
        "ORDER BY cg.name", [gid]))


def wanted(db: Database, gid: int, now: int, card_ids: list[int] | None = None
           ) -> list[tuple[bytes, int, int | None, int]]:
    """(uid, anytime, grant expiry, card valid_until) of every grant now in force for door group
    ``gid``: individual grants, and group grants (listed members or every card of a type) of
    cards that are not temporary; only active cards within their validity. With ``card_ids``,
    only for those cards."""
    live = "c.status = 'active' AND c.valid_until >= :now AND (g.expires IS NULL OR g.expires > :now)"
    if card_ids is not None:
        live += " AND c.id IN (SELECT value FROM json_each(:ids))"
    return db.execute(
        "SELECT c.uid, g.anytime, g.expires, c.valid_until FROM door_card_grants g "
        f"JOIN cards c ON c.id = g.card_id WHERE g.group_id = :gid AND {live} "
        "UNION ALL "
        "SELECT c.uid, g.anytime, g.expires, c.valid_until FROM door_group_grants g "
        "JOIN card_group_members m ON m.group_id = g.card_group_id JOIN cards c ON c.id = m.card_id "
        f"WHERE g.group_id = :gid AND c.type != :temp AND {live} "
        "UNION ALL "
        "SELECT c.uid, g.anytime, g.expires, c.valid_until FROM door_group_grants g "
        "JOIN card_groups cg ON cg.id = g.card_group_id JOIN cards c ON c.type = cg.card_type "
        f"WHERE g.group_id = :gid AND cg.card_type IS NOT NULL AND c.type != :temp AND {live}",
        {"gid": gid, "now": now, "temp": _TEMPORARY, "ids": json.dumps(card_ids or [])}).fetchall()


def listed_among(db: Database, gid: int, lst: int, card_ids: list[int]) -> set[bytes]:
    """The UIDs of ``card_ids`` that are on list ``lst`` of door group ``gid`` now."""
    return {r[0] for r in db.execute(
        "SELECT c.uid FROM cards c WHERE c.id IN (SELECT value FROM json_each(?)) AND EXISTS "
        "(SELECT 1 FROM access_lists a WHERE a.group_id = ? AND a.list = ? AND a.uid = c.uid)",
        [json.dumps(card_ids), gid, lst])}


# -- the lists, their versions and the change log -----------------------------------------------


def list_keys(db: Database, gid: int, lst: int) -> list[bytes]:
    return [r[0] for r in db.execute("SELECT uid FROM access_lists WHERE group_id = ? AND list = ? ORDER BY uid",
                                     [gid, lst])]


def list_page(db: Database, gid: int, lst: int, offset: int, limit: int) -> list[bytes]:
    return [r[0] for r in db.execute("SELECT uid FROM access_lists WHERE group_id = ? AND list = ? ORDER BY uid "
                                     "LIMIT ? OFFSET ?", [gid, lst, limit, offset])]


def current_version(db: Database, gid: int, lst: int) -> dict[str, Any]:
    """``{version, hash, count, at}`` of the list in force."""
    rows = _rows(db.execute("SELECT version, hash, count, at FROM access_versions WHERE group_id = ? AND list = ? "
                            "ORDER BY version DESC LIMIT 1", [gid, lst]))
    return rows[0] if rows else {"version": 0, "hash": b"", "count": 0, "at": 0}


def version_hash(db: Database, gid: int, lst: int, version: int) -> bytes | None:
    """The hash of an older version still in the log; None if unknown or pruned."""
    row = db.execute("SELECT hash FROM access_versions WHERE group_id = ? AND list = ? AND version = ?",
                     [gid, lst, version]).fetchone()
    return None if row is None else bytes(row[0])


def add_version(db: Database, gid: int, lst: int, version: int, added: list[bytes], removed: list[bytes],
                hash: bytes, count: int, now: int) -> None:
    """Store a new version of a list: its rows changed, the change logged, the hash kept."""
    conn = db.conn
    conn.executemany("INSERT INTO access_lists (group_id, list, uid) VALUES (?, ?, ?)",
                     [(gid, lst, u) for u in added])
    conn.executemany("DELETE FROM access_lists WHERE group_id = ? AND list = ? AND uid = ?",
                     [(gid, lst, u) for u in removed])
    conn.executemany("INSERT INTO access_log (group_id, list, version, uid, added) VALUES (?, ?, ?, ?, ?)",
                     [(gid, lst, version, u, 1) for u in added] + [(gid, lst, version, u, 0) for u in removed])
    db.execute("INSERT INTO access_versions (group_id, list, version, hash, count, at) VALUES (?, ?, ?, ?, ?, ?)",
               [gid, lst, version, hash, count, now])


def log_since(db: Database, gid: int, lst: int, since: int, limit: int) -> list[tuple[bytes, int]]:
    """(uid, added) of the changes after version ``since``, oldest first, at most ``limit``."""
    return db.execute("SELECT uid, added FROM access_log WHERE group_id = ? AND list = ? AND version > ? "
                      "ORDER BY version LIMIT ?", [gid, lst, since, limit]).fetchall()


def prune_log(db: Database, before: int) -> int:
    """Forget versions older than ``before`` (each list keeps its newest); returns rows dropped.
    A door holding a forgotten version gets the whole list."""
    dropped = 0
    for gid, lst, newest in db.execute("SELECT group_id, list, MAX(version) FROM access_versions "
                                       "GROUP BY group_id, list").fetchall():
        row = db.execute("SELECT MAX(version) FROM access_versions WHERE group_id = ? AND list = ? AND at < ? "
                         "AND version < ?", [gid, lst, before, newest]).fetchone()
        if row[0] is None:
            continue
        dropped += db.execute("DELETE FROM access_versions WHERE group_id = ? AND list = ? AND version <= ?",
                              [gid, lst, row[0]]).rowcount
        db.execute("DELETE FROM access_log WHERE group_id = ? AND list = ? AND version <= ?", [gid, lst, row[0]])
    return dropped
