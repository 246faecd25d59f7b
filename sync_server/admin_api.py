"""The admin API (JSON under ``/api/v1/admin/``): cards, merchants, terminals, parameters,
blacklist, anomalies, audit, housekeeping and (with ``--test-clock``) the clock.

Every request needs the admin token (``auth.require_admin``). Errors are 4xx with a JSON
body ``{"error": "..."}``.

==========================================  =============================================
``POST /merchants`` {name}                  add a merchant
``POST /terminals`` {merchant_id, role}     register a terminal: its provisioning bundle
``POST /cards`` {uid, card_no, holder_id,   issue a card (validity as UTC seconds or
type, valid_until[, valid_from]}             YYYY-MM-DD local dates)
``GET /cards/<ref>``                        card, chain, balances, loads, records, history
``POST /cards/<ref>/<action>``              report-loss, cancel-loss, replace {uid, card_no},
                                            top-up {amount}, suspend, resume,
                                            cancel {refund_to}, correct {amount, merchant_id
                                            or terminal_id + seq of the sale}
``POST /cards/bulk-freeze`` {cards, reason}  freeze many (graduation)
``GET|PUT /params[?merchant=ID]``           terminal parameters
``GET|PUT /settings``                       server settings
``GET /blacklist`` ``GET /anomalies``       lists
``GET /audit``                              ledger audit (``ok`` false on any difference)
``POST /sweep``                             run housekeeping now
``GET /clock`` ``POST /clock/advance``      server time; advance only with --test-clock
``/doors/...``                              door groups, grants, card groups (``doors_api``)
==========================================  =============================================
"""

from __future__ import annotations

import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from protocol import card_layout
from sync_server import auth, blacklist, cards, context, ledger, params, registry, sweep
from sync_server.errors import Forbidden, Invalid, NotFound, ServerError
from sync_server.store import records as rstore

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")
bp.before_request(auth.require_admin)


@bp.before_request
def _chain_state_on_disk() -> None:
    """Admin views read ``card_chain``: write the cached chain states first."""
    context.state().flush_chains()


@bp.errorhandler(ServerError)
def _server_error(e: ServerError) -> tuple[Response, int]:
    return jsonify(error=e.message), e.status


@bp.errorhandler(HTTPException)
def _http_error(e: HTTPException) -> tuple[Response, int]:
    return jsonify(error=f"{e.name}: {e.description}"), e.code or 400


_INT64 = 2**63  # what SQLite stores; a larger JSON number is refused before anything is looked up


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Invalid("request body must be a JSON object")
    _check_plain(data, "")
    return data


def _check_plain(value: Any, where: str) -> None:
    """Refuse numbers SQLite cannot hold and text that is not valid Unicode, anywhere in a body."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise Invalid(f"{where or 'a value'} = {value} is out of range (64-bit integers)")
    elif isinstance(value, float):
        raise Invalid(f"{where or 'a value'} = {value!r}: amounts, ids and times are whole numbers")
    elif isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise Invalid(f"{where or 'a value'} is not valid Unicode text") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, "a field name")
            _check_plain(v, f"field {k!r}")
    elif isinstance(value, list):
        for v in value:
            _check_plain(v, where)


def _field(data: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in data:
        if default is ...:
            raise Invalid(f"missing field {name!r}")
        return default
    value = data[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise Invalid(f"field {name!r} must be an integer, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise Invalid(f"field {name!r} must be a string, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise Invalid(f"field {name!r} must be true or false, got {value!r}")
    return value


def _arg_int(name: str, default: int | None, lo: int, hi: int) -> int | None:
    """An integer query argument within lo..hi (``default`` when absent)."""
    text = request.args.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise Invalid(f"query argument {name} must be an integer, got {text!r}") from None
    if not lo <= value <= hi:
        raise Invalid(f"query argument {name} must be {lo}..{hi}, got {value}")
    return value


body, field = _body, _field  # for the routes other modules add to this blueprint (doors_api)


def when(db: Any, value: Any, end_of_day: bool) -> int:
    """UTC seconds from an int or a local YYYY-MM-DD date (start or end of that day)."""
    if isinstance(value, int) and not isinstance(value, bool):
        t = value
    elif isinstance(value, str):
        try:
            d = datetime.date.fromisoformat(value)
        except ValueError:
            raise Invalid(f"date {value!r} must be YYYY-MM-DD") from None
        tz = params.zone(db)
        try:
            t = params.local_date_end(tz, d) if end_of_day else params.local_date_start(tz, d)
        except (OverflowError, ValueError):
            t = -1
    else:
        raise Invalid(f"time {value!r} must be UTC seconds or a YYYY-MM-DD date")
    if not 0 <= t <= card_layout.VALIDITY_MAX:
        raise Invalid(f"time {value!r} is outside 1970-01-01..2106-02-07 (cards carry 32-bit UTC seconds)")
    return t


@bp.post("/merchants")
def add_merchant() -> Any:
    data = _body()
    return jsonify(registry.add_merchant(context.get_db(), context.now(), _field(data, "name", str))), 201


@bp.get("/merchants")
def list_merchants() -> Any:
    return jsonify(registry.merchants(context.get_db()))


@bp.post("/terminals")
def register_terminal() -> Any:
    data = _body()
    db = context.get_db()
    bundle = registry.register_terminal(
        db, context.now(), context.state().keys, _field(data, "merchant_id", int), _field(data, "role", str, "pos"),
        _field(data, "name", str, ""), _field(data, "terminal_id", int, None),
        _field(data, "server_url", str, None) or request.host_url.rstrip("/"))
    return jsonify(bundle), 201


@bp.get("/terminals")
def list_terminals() -> Any:
    return jsonify(registry.terminals(context.get_db()))


@bp.post("/cards")
def issue_card() -> Any:
    data = _body()
    db = context.get_db()
    now = context.now()
    card = cards.issue(db, now, cards.parse_uid(_field(data, "uid", str)), _field(data, "card_no", str),
                       _field(data, "holder_id", str), cards.type_of(data.get("type", "student")),
                       when(db, data.get("valid_from", now), False),
                       when(db, _field(data, "valid_until", object), True))
    return jsonify(card), 201


@bp.post("/cards/bulk-freeze")
def bulk_freeze() -> Any:
    data = _body()
    refs = data.get("cards")
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise Invalid("field 'cards' must be a list of card numbers or UIDs")
    return jsonify(cards.bulk_freeze(context.get_db(), context.now(), refs, _field(data, "reason", str, "graduated")))


@bp.get("/cards/<ref>")
def show_card(ref: str) -> Any:
    return jsonify(cards.show(context.get_db(), ref))


@bp.post("/cards/<ref>/<action>")
def card_action(ref: str, action: str) -> Any:
    data = _body()
    db = context.get_db()
    now = context.now()
    if action == "report-loss":
        out = cards.report_loss(db, now, ref, _field(data, "reason", str, "reported lost"))
    elif action == "cancel-loss":
        out = cards.cancel_loss(db, now, ref)
    elif action == "replace":
        out = cards.replace(db, now, ref, cards.parse_uid(_field(data, "uid", str)), _field(data, "card_no", str))
    elif action == "top-up":
        out = cards.top_up(db, now, ref, _field(data, "amount", int), _field(data, "note", str, "top-up"))
    elif action == "suspend":
        out = cards.suspend(db, now, ref, _field(data, "reason", str, "suspended"))
    elif action == "resume":
        out = cards.resume(db, now, ref)
    elif action == "cancel":
        out = cards.cancel(db, now, ref, _field(data, "refund_to", str, "bank"), _field(data, "force", bool, False))
    elif action == "correct":
        tid, seq = _field(data, "terminal_id", int, None), _field(data, "seq", int, None)
        if (tid is None) != (seq is None):
            raise Invalid("a correction names a sale by both terminal_id and seq")
        out = cards.correct(db, now, ref, _field(data, "amount", int), _field(data, "merchant_id", int, None),
                            _field(data, "note", str, "correction"), None if tid is None else (tid, seq))
    else:
        raise NotFound(f"unknown card action {action!r}")
    return jsonify(out)


@bp.get("/params")
def get_params() -> Any:
    merchant = _arg_int("merchant", None, 1, 2**31 - 1)
    return jsonify(params.effective(context.get_db(), merchant))


@bp.put("/params")
def put_params() -> Any:
    merchant = _arg_int("merchant", 0, 0, 2**31 - 1) or 0
    return jsonify(params.set_params(context.get_db(), _body(), merchant))


@bp.get("/settings")
def get_settings() -> Any:
    return jsonify(params.settings(context.get_db()))


@bp.put("/settings")
def put_settings() -> Any:
    return jsonify(params.set_settings(context.get_db(), _body()))


@bp.get("/blacklist")
def get_blacklist() -> Any:
    return jsonify(blacklist.entries(context.get_db()))


@bp.get("/anomalies")
def get_anomalies() -> Any:
    rows = rstore.anomalies(context.get_db(), request.args.get("status", "open") or None,
                            request.args.get("kind"), _arg_int("limit", 200, 1, 10_000) or 200)
    for r in rows:
        r["uid"] = cards.uid_hex(r["uid"]) if r["uid"] and len(r["uid"]) == 7 else None
    return jsonify(rows)


@bp.get("/audit")
def get_audit() -> Any:
    return jsonify(ledger.audit(context.get_db()))


@bp.post("/sweep")
def run_sweep() -> Any:
    return jsonify(sweep.run(context.get_db(), context.now()))


@bp.get("/clock")
def get_clock() -> Any:
    clock = context.state().clock
    return jsonify(now=clock.now(), adjustable=clock.adjustable)


@bp.post("/clock/advance")
def advance_clock() -> Any:
    clock = context.state().clock
    if not clock.adjustable:
        raise Forbidden("the server clock is real time; start the server with --test-clock to advance it")
    seconds = _field(_body(), "seconds", int)
    if not 0 <= seconds <= 10 * 365 * 86400:
        raise Invalid(f"seconds must be 0..315360000, got {seconds}")
    now = clock.advance(seconds)  # type: ignore[attr-defined]
    return jsonify(now=now, sweep=sweep.run(context.get_db(), now))
