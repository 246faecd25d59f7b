"""The admin API of door access (JSON under ``/api/v1/admin/doors/``), on the admin blueprint
(so the admin token, error handling and chain flush are the admin API's own).

==============================================  ================================================
``GET /doors/groups``                           door groups (with list versions), card groups
``POST /doors/groups`` {name[, note]}           add a door group
``GET /doors/groups/<ref>``                     its doors (in sync or not), grants and lists
``GET /doors/groups/<ref>/lists/<0|1>``         the UIDs on list 0 (allow) or 1 (anytime)
``POST /doors/groups/<ref>/assign``             {terminal_id}: a door joins the group
``POST /doors/groups/<ref>/grant``              {card[, anytime, until, note]}: one card
``POST /doors/groups/<ref>/revoke``             {card}
``POST /doors/groups/<ref>/grant-group``        {card_group[, type | cards, anytime, until]}
``POST /doors/groups/<ref>/revoke-group``       {card_group[, cards]}: the grant, or members
==============================================  ================================================

``<ref>`` is the door group's id or name; cards are card numbers or UID hex; ``until`` is UTC
seconds or a local YYYY-MM-DD date (valid through its end). ``POST .../doors`` and
``POST .../grants`` are the same as ``assign`` and ``grant`` (collection-style names).

Usage::

    curl -H "Authorization: Bearer $TOKEN" -d '{"card": "S2024001", "anytime": true}' \\
         -H 'Content-Type: application/json' http://server/api/v1/admin/doors/groups/Building%203/grant
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from sync_server import admin_api, context, doors
from sync_server.admin_api import bp
from sync_server.errors import Invalid, NotFound


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise Invalid(f"field {name!r} must be true or false, got {value!r}")
    return value


def _until(db: Any, data: dict[str, Any]) -> int | None:
    value = data.get("until")
    return None if value is None else admin_api.when(db, value, True)


def _refs(data: dict[str, Any], name: str) -> list[str] | None:
    refs = data.get(name)
    if refs is None:
        return None
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise Invalid(f"field {name!r} must be a list of card numbers or UIDs")
    return refs


_ALIASES = {"doors": "assign", "grants": "grant"}


@bp.get("/doors/groups")
def door_groups() -> Any:
    return jsonify(doors.list_all(context.get_db()))


@bp.post("/doors/groups")
def add_door_group() -> Any:
    data = admin_api.body()
    return jsonify(doors.add_group(context.get_db(), context.now(), admin_api.field(data, "name", str),
                                   admin_api.field(data, "note", str, ""))), 201


@bp.get("/doors/groups/<ref>")
def show_door_group(ref: str) -> Any:
    return jsonify(doors.show(context.get_db(), ref, context.now()))


@bp.get("/doors/groups/<ref>/lists/<int:lst>")
def door_group_list(ref: str, lst: int) -> Any:
    return jsonify(doors.members(context.get_db(), ref, lst, context.now()))


@bp.post("/doors/groups/<ref>/<action>")
def door_group_action(ref: str, action: str) -> Any:
    data = admin_api.body()
    db = context.get_db()
    now = context.now()
    field = admin_api.field
    action = _ALIASES.get(action, action)
    if action == "assign":
        out = doors.assign(db, now, ref, field(data, "terminal_id", int))
    elif action == "grant":
        out = doors.grant(db, now, ref, field(data, "card", str), _flag(data, "anytime"), _until(db, data),
                          field(data, "note", str, ""))
    elif action == "revoke":
        out = doors.revoke(db, now, ref, field(data, "card", str))
    elif action == "grant-group":
        out = doors.grant_group(db, now, ref, field(data, "card_group", str), field(data, "type", str, None),
                                _refs(data, "cards"), _flag(data, "anytime"), _until(db, data))
    elif action == "revoke-group":
        out = doors.revoke_group(db, now, ref, field(data, "card_group", str), _refs(data, "cards"))
    else:
        raise NotFound(f"unknown door group action {action!r}: assign, grant, revoke, grant-group, revoke-group")
    return jsonify(out)
