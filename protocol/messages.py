"""Sync messages between terminals and the server: CBOR maps sealed with the terminal key.

On the wire a message is the CBOR map ``{"v": 1, "tid": terminal id, "body": bytes, "mac": bytes}``
where ``body`` is the deterministic CBOR of ``{"v", "type", "tid", "ts", "nonce", ...fields}``
and ``mac`` is HMAC-SHA256 of ``body`` under the terminal key. The server answers sealed with
the same key, echoing the request's nonce in ``re``, so a terminal can tell a fresh answer
from a replayed one. Receivers check the MAC, the type, the clock skew and (server side) the
nonce against those already seen.

========================  =========  ====================================================
type                      direction  fields
========================  =========  ====================================================
upload                    T -> S     records: [64-byte record, ...]; hb (optional): the
                                     heartbeat's fields, so that a cycle with records to
                                     send needs no heartbeat request of its own
ack                       S -> T     re, acked: highest contiguous seq stored,
                                     rejected: [[seq, reason], ...]; to an upload with hb
                                     also what heartbeat_ack carries (server_time, versions)
blacklist_req             T -> S     since: version held (0 = none); offset: first entry
                                     wanted of a full list sent in pages (optional, 0);
                                     max: most keys per answer the terminal takes (optional)
blacklist                 S -> T     re, version, full: bool, since, added: packed UIDs,
                                     removed: packed UIDs; a full list comes in pages:
                                     offset (first entry in added), total (entries in all).
                                     At most 1,000 keys an answer: a delta of more changes
                                     is sent as the full list in pages
loads_req                 T -> S     max: most entries per answer (optional)
loads                     S -> T     re, loads: packed 16-byte entries (see ``pack_load``),
                                     at most 400: the oldest pending; the others come in
                                     later answers as these are collected
params_req                T -> S     (none)
params                    S -> T     re, params: {name: int}, server_time, version
                                     (optional: the heartbeat's params_version)
heartbeat                 T -> S     journal_fill, unacked, last_seq, blacklist_version,
                                     access_version, offline_since, firmware, clock_drift
heartbeat_ack             S -> T     re, server_time; optional blacklist_version,
                                     params_version and loads_version (a fingerprint of the
                                     pending loads): a terminal that holds them may skip
                                     those requests
access_req                T -> S     since, hash: hash of the list held, list (door list
                                     index), offset (full-list page, optional), max (as
                                     blacklist_req)
access                    S -> T     re, version, hash, full: bool, added, removed, list,
                                     since (deltas), offset, total (full lists, as blacklist;
                                     at most 1,000 keys an answer, as blacklist)
========================  =========  ====================================================

Every answer fits a terminal's 8 KB answer buffer (``firmware.sync``).

Usage::

    from protocol import messages
    wire = messages.seal(key, 1001, "upload", {"records": recs}, now, nonce)
    tid = messages.peek_terminal(wire)
    msg = messages.unseal(wire, key, "upload", now)
"""

import struct

from protocol import cbor, crypto
from protocol.errors import DecodeError, MessageError

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

VERSION = const(1)
NONCE_SIZE = const(12)
MAX_SKEW = const(300)  # seconds a message's time may differ from the receiver's clock
MAX_RECORDS_PER_UPLOAD = const(2000)
LOAD_ENTRY_SIZE = const(16)

LOAD_TOPUP = const(1)
LOAD_CARD_TRANSFER = const(2)  # balance moved from a replaced card
LOAD_CORRECTION = const(3)

_INT = 0
_BYTES = 1
_STR = 2
_LIST = 3
_DICT = 4
_BOOL = 5
_TYPE_NAMES = ("int", "bytes", "str", "list", "map", "bool")

SCHEMAS = {
    "upload": (("records", _LIST),),
    "ack": (("re", _BYTES), ("acked", _INT), ("rejected", _LIST)),
    "blacklist_req": (("since", _INT),),
    "blacklist": (("re", _BYTES), ("version", _INT), ("full", _BOOL), ("since", _INT),
                  ("added", _BYTES), ("removed", _BYTES)),
    "loads_req": (),
    "loads": (("re", _BYTES), ("loads", _BYTES)),
    "params_req": (),
    "params": (("re", _BYTES), ("params", _DICT), ("server_time", _INT)),
    "heartbeat": (("journal_fill", _INT), ("unacked", _INT), ("last_seq", _INT),
                  ("blacklist_version", _INT), ("access_version", _INT), ("offline_since", _INT),
                  ("firmware", _STR), ("clock_drift", _INT)),
    "heartbeat_ack": (("re", _BYTES), ("server_time", _INT)),
    "access_req": (("since", _INT), ("hash", _BYTES)),
    "access": (("re", _BYTES), ("version", _INT), ("hash", _BYTES), ("full", _BOOL),
               ("added", _BYTES), ("removed", _BYTES)),
}


def _type_ok(value, kind):
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _BYTES:
        return isinstance(value, bytes)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _LIST:
        return isinstance(value, list)
    if kind == _DICT:
        return isinstance(value, dict)
    return isinstance(value, bool)


def validate(msg):
    """``MessageError`` unless ``msg`` has every field its type requires, of the right kind."""
    mtype = msg.get("type")
    schema = SCHEMAS.get(mtype) if isinstance(mtype, str) else None
    if schema is None:
        raise MessageError("unknown message type %r" % (mtype,))
    for name, kind in schema:
        if name not in msg:
            raise MessageError("%s message lacks field '%s'" % (mtype, name))
        if not _type_ok(msg[name], kind):
            raise MessageError("%s field '%s' must be %s, got %s" % (
                mtype, name, _TYPE_NAMES[kind], type(msg[name]).__name__))
    if mtype == "upload":
        if len(msg["records"]) > MAX_RECORDS_PER_UPLOAD:
            raise MessageError("upload holds %d records, at most %d allowed" % (
                len(msg["records"]), MAX_RECORDS_PER_UPLOAD))
        hb = msg.get("hb")
        if hb is not None:
            if not isinstance(hb, dict):
                raise MessageError("upload field 'hb' must be map, got %s" % type(hb).__name__)
            for name, kind in SCHEMAS["heartbeat"]:
                if not _type_ok(hb.get(name), kind):
                    raise MessageError("upload field 'hb' needs heartbeat field '%s' (%s)" % (
                        name, _TYPE_NAMES[kind]))


def seal(key, terminal_id, mtype, fields, ts, nonce, dumps=None):
    """The wire bytes of a message of ``mtype`` with ``fields``, MAC'd under ``key``.

    ``dumps``: an encoder with ``protocol.cbor.dumps``' exact output (a host passes cbor2's
    canonical mode, ~10x faster); the default is ``protocol.cbor.dumps``.
    """
    if len(nonce) != NONCE_SIZE:
        raise MessageError("nonce must be %d bytes, got %d" % (NONCE_SIZE, len(nonce)))
    msg = {"v": VERSION, "type": mtype, "tid": terminal_id, "ts": ts, "nonce": bytes(nonce)}
    for name in fields:
        msg[name] = fields[name]
    validate(msg)
    enc = dumps or cbor.dumps
    body = enc(msg)
    return enc({"v": VERSION, "tid": terminal_id, "body": body, "mac": crypto.hmac_sha256(key, body)})


def _envelope(data):
    try:
        env = cbor.loads(data)
    except DecodeError as e:
        raise MessageError("message is not valid CBOR: %s" % e.args[0])
    if not isinstance(env, dict):
        raise MessageError("message must be a CBOR map, got %s" % type(env).__name__)
    if env.get("v") != VERSION:
        raise MessageError("message version %r, expected %d" % (env.get("v"), VERSION))
    tid, body, mac = env.get("tid"), env.get("body"), env.get("mac")
    if not isinstance(tid, int) or isinstance(tid, bool) or not isinstance(body, bytes) \
            or not isinstance(mac, bytes):
        raise MessageError("message envelope needs int 'tid', bytes 'body' and bytes 'mac'")
    return tid, body, mac


def peek_terminal(data):
    """The terminal id a message claims, read before its key is known (not yet trusted)."""
    return _envelope(data)[0]


def unseal(data, key, expected_type=None, now=None, max_skew=MAX_SKEW):
    """Check and open a message: MAC, version, type, terminal id and clock skew.

    :param now: receiver's UTC time; None skips the skew check (a terminal whose clock is unset).
    :raises MessageError: saying what was wrong.
    """
    tid, body, mac = _envelope(data)
    if not crypto.compare_digest(crypto.hmac_sha256(key, body), mac):
        raise MessageError("bad message signature for terminal %d" % tid)
    try:
        msg = cbor.loads(body)
    except DecodeError as e:
        raise MessageError("message body is not valid CBOR: %s" % e.args[0])
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        raise MessageError("message body must be a version %d map" % VERSION)
    if msg.get("tid") != tid:
        raise MessageError("message body names terminal %r, envelope %d" % (msg.get("tid"), tid))
    ts, nonce = msg.get("ts"), msg.get("nonce")
    if not isinstance(ts, int) or not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise MessageError("message needs int 'ts' and a %d-byte 'nonce'" % NONCE_SIZE)
    validate(msg)
    if expected_type is not None and msg["type"] != expected_type:
        raise MessageError("expected a %s message, got %s" % (expected_type, msg["type"]))
    if now is not None and not -max_skew <= ts - now <= max_skew:
        raise MessageError("message time %d is %d s from server time %d: stale or clock wrong" % (
            ts, ts - now, now))
    return msg


# --- pending loads ----------------------------------------------------------------------


def pack_load(uid_key7, seq, amount, kind):
    """One 16-byte pending-load entry: UID key, kind, per-card load sequence, amount in cents."""
    if len(uid_key7) != 7:
        raise MessageError("load UID key must be 7 bytes")
    return bytes(uid_key7) + struct.pack("<BIi", kind, seq, amount)


def unpack_load(entry):
    """``(uid_key7, seq, amount, kind)`` of a 16-byte pending-load entry."""
    if len(entry) != LOAD_ENTRY_SIZE:
        raise MessageError("load entry must be 16 bytes, got %d" % len(entry))
    kind, seq, amount = struct.unpack_from("<BIi", entry, 7)
    return bytes(entry[:7]), seq, amount, kind


# --- streaming an upload ------------------------------------------------------------------
# A terminal with a 64 KB heap cannot hold a large batch and its encoding at once. These
# helpers give the exact bytes ``seal(key, tid, "upload", {"records": recs}, ts, nonce)``
# produces, in pieces: the records are read from flash twice (once for the MAC, once to send).

_RECORD_ITEM_HEAD = b"\x58\x40"  # CBOR byte string of 64 bytes


def upload_body_prefix(terminal_id, ts, nonce, count, hb=None):
    """The body bytes that precede the records: the map up to the records array head.
    ``hb``: the heartbeat fields to send along (see the ``upload`` message), or None."""
    if count > MAX_RECORDS_PER_UPLOAD:
        raise MessageError("upload holds %d records, at most %d allowed" % (count, MAX_RECORDS_PER_UPLOAD))
    msg = {"v": VERSION, "type": "upload", "tid": terminal_id, "ts": ts, "nonce": bytes(nonce), "records": []}
    if hb is not None:
        msg["hb"] = hb
    # Canonical key order puts "records" (the longest key) last.
    empty = cbor.dumps(msg)
    return empty[:-1] + cbor.head(4, count)


def upload_body_size(prefix, count):
    return len(prefix) + count * (len(_RECORD_ITEM_HEAD) + 64)


def record_item_head():
    return _RECORD_ITEM_HEAD


def upload_envelope_prefix(terminal_id, mac, body_size):
    """The envelope bytes before the body: ``{"v", "mac", "tid", "body"}`` up to the body's head."""
    empty = cbor.dumps({"v": VERSION, "tid": terminal_id, "mac": bytes(mac), "body": b""})
    return empty[:-1] + cbor.head(2, body_size)
