"""The terminal API: sealed CBOR messages over HTTP under ``/api/v1/terminal/``.

==========  ==============  ==============  ===============================================
Endpoint    Request         Answer          What
==========  ==============  ==============  ===============================================
upload      upload          ack             store records; ack = highest contiguous seq
                                            (with ``hb``: the heartbeat too, and its answer)
blacklist   blacklist_req   blacklist       delta since a version, or the full list in pages
loads       loads_req       loads           the 400 oldest pending loads of active cards
params      params_req      params          limits, switches, meal periods, server time
heartbeat   heartbeat       heartbeat_ack   journal fill, versions, offline since, firmware
access      access_req      access          a door's list 0 or 1: delta, or whole in pages
==========  ==============  ==============  ===============================================

Every answer fits a terminal's 8 KB answer buffer: at most 1,000 UID keys (blacklist, access
lists) or 400 pending loads per answer.

Every request is authenticated (``auth.terminal_request``) and its nonce claimed in the same
transaction as its effects. Answers are sealed with the terminal's key and echo the nonce in
``re``. Errors are 4xx with a CBOR body ``{"error": "..."}`` (never sealed: the caller may
not be who it claims).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from werkzeug.exceptions import HTTPException

from protocol import messages
from sync_server import access, auth, blacklist, context, ingest, params, store, sweep, upload, wire
from sync_server.errors import Forbidden, Invalid, ServerError
from sync_server.store import cards as cstore
from sync_server.store import terminals as tstore

bp = Blueprint("terminal", __name__, url_prefix="/api/v1/terminal")

CBOR = "application/cbor"


def _answer(req: auth.TerminalRequest, mtype: str, fields: dict[str, Any]) -> Response:
    fields = dict(fields, re=req.msg["nonce"])
    return Response(wire.reply(req.key, req.tid, mtype, fields, req.now), mimetype=CBOR)


def error_response(status: int, text: str) -> Response:
    return Response(wire.error_body(text, context.now()), status=status, mimetype=CBOR)


@bp.errorhandler(ServerError)
def _server_error(e: ServerError) -> Response:
    return error_response(e.status, e.message)


@bp.errorhandler(HTTPException)
def _http_error(e: HTTPException) -> Response:
    return error_response(e.code or 400, f"{e.name}: {e.description}")


def _optional_int(msg: dict[str, Any], name: str, lo: int, hi: int) -> int:
    """An optional integer field of a request (0 when absent), ``Invalid`` outside lo..hi."""
    value = msg.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise Invalid("{} field '{}' must be an integer {}..{}, got {!r}".format(msg["type"], name, lo, hi, value))
    return value


def _maybe_sweep(db: store.Database) -> None:
    st = context.state()
    now = context.now()
    if now - st.last_sweep < context.SWEEP_EVERY_S or not st.sweep_lock.acquire(blocking=False):
        return
    try:
        st.last_sweep = now
        st.flush_chains()
        sweep.run(db, now)
    except Exception:  # noqa: BLE001 - housekeeping must never fail a terminal's request
        current_app.logger.exception("sweep failed")
    finally:
        st.sweep_lock.release()


@bp.post("/upload")
def upload_() -> Response:
    st = context.state()
    with st.upload_lock:  # one upload's Python at a time (ServerState says why)
        req = auth.terminal_request("upload")
        pending = ingest.Pending(req.msg["records"], req.tid, st.keys, st.macs)
    pending.wait()  # the MAC helper works while another upload holds the lock
    hb = req.msg.get("hb")
    if hb is not None:
        _check_heartbeat(hb)
    with st.upload_lock:
        checked = ingest.check(req.msg["records"], req.tid, st.keys, pending)
    return _answer(req, "ack", st.commit_upload(checked, req))


@bp.post("/blacklist")
def blacklist_() -> Response:
    req = auth.terminal_request("blacklist_req")
    since = _optional_int(req.msg, "since", 0, 2**63 - 1)
    offset = _optional_int(req.msg, "offset", 0, 2**31 - 1)
    page = _optional_int(req.msg, "max", 0, blacklist.PAGE_KEYS) or blacklist.PAGE_KEYS
    db = context.get_db()
    _maybe_sweep(db)
    with store.transaction(db):
        auth.claim_nonce(db, req)
        tstore.touch(db, req.tid, context.now())
        fields = blacklist.delta(db, since, offset, page)
    return _answer(req, "blacklist", fields)


@bp.post("/loads")
def loads() -> Response:
    req = auth.terminal_request("loads_req")
    want = _optional_int(req.msg, "max", 0, params.MAX_LOADS_PER_REPLY) or params.MAX_LOADS_PER_REPLY
    db = context.get_db()
    _maybe_sweep(db)
    with store.transaction(db):
        auth.claim_nonce(db, req)
        tstore.touch(db, req.tid, context.now())
        rows = []
        if req.terminal["role"] == "pos":  # the oldest first; the rest at the next syncs
            limit = min(params.settings(db)["max_loads_per_reply"], want)
            rows = cstore.pending_loads(db, limit)
    packed = b"".join(messages.pack_load(uid, seq, amount, kind) for uid, seq, amount, kind in rows)
    return _answer(req, "loads", {"loads": packed})


@bp.post("/params")
def params_() -> Response:
    req = auth.terminal_request("params_req")
    db = context.get_db()
    now = context.now()
    with store.transaction(db):
        auth.claim_nonce(db, req)
        tstore.touch(db, req.tid, now)
    values = params.effective(db, req.terminal["merchant_id"])
    values["utc_offset_s"] = params.utc_offset_s(params.zone(db), now)
    values["tz_offset_s"] = values["utc_offset_s"]  # the firmware's name for it
    values["terminal_id"] = req.tid
    values["merchant_id"] = req.terminal["merchant_id"]
    return _answer(req, "params", {"params": values, "server_time": now, "version": params.version(db)})


_HEARTBEAT_INTS = ("journal_fill", "unacked", "last_seq", "blacklist_version", "access_version",
                   "offline_since", "clock_drift")


def _check_heartbeat(fields: dict[str, Any]) -> None:
    """Ranges of a heartbeat's fields (a heartbeat message, or an upload's ``hb``)."""
    for name in _HEARTBEAT_INTS:
        if not -2**31 <= fields[name] < 2**32:
            raise Invalid(f"heartbeat field {name} = {fields[name]} is out of range (32-bit expected)")
    if len(fields["firmware"]) > 64:
        raise Invalid("heartbeat firmware version is {} characters, at most 64".format(len(fields["firmware"])))


@bp.post("/heartbeat")
def heartbeat() -> Response:
    req = auth.terminal_request("heartbeat")
    _check_heartbeat(req.msg)
    db = context.get_db()
    _maybe_sweep(db)
    with store.transaction(db):
        auth.claim_nonce(db, req)
        tstore.save_heartbeat(db, req.tid, req.msg, context.now())
        versions = upload.versions(db)
    return _answer(req, "heartbeat_ack", dict(versions, server_time=context.now()))


@bp.post("/access")
def access_() -> Response:
    req = auth.terminal_request("access_req")
    if req.terminal["role"] != "door":
        raise Forbidden("terminal {} is a {} terminal: access lists go to doors only (register the door "
                        "with role door)".format(req.tid, req.terminal["role"]))
    since = _optional_int(req.msg, "since", 0, 2**63 - 1)
    lst = _optional_int(req.msg, "list", 0, 1)
    offset = _optional_int(req.msg, "offset", 0, 2**31 - 1)
    page = _optional_int(req.msg, "max", 0, access.PAGE_KEYS) or access.PAGE_KEYS
    held = req.msg["hash"]
    if len(held) not in (0, access.HASH_LEN):
        raise Invalid(f"access_req field 'hash' must be {access.HASH_LEN} bytes (or empty), got {len(held)}")
    db = context.get_db()
    _maybe_sweep(db)
    now = context.now()
    with store.transaction(db):
        auth.claim_nonce(db, req)
        tstore.touch(db, req.tid, now)
        fields = access.answer(db, req.tid, lst, since, held, offset, now, page)
    return _answer(req, "access", fields)
