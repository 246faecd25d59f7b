"""Opening sealed terminal messages on the server: ``protocol.messages.unseal`` at cbor2 speed.

``open_message`` is the server's one definition of "check and open a message". It has
exactly the semantics and error texts of ``protocol.messages.unseal``: the envelope is read
with ``protocol.cbor`` (strict, bounded), the MAC with ``hmac``; the authenticated body is
decoded with cbor2's C extension and accepted only if it re-encodes to the same bytes and
holds nothing ``protocol.cbor`` would refuse; anything else is decoded by ``protocol.cbor``
so its error text is the one reported. Replies are sealed with ``protocol.messages.seal``.
Error texts keep unseal's ``%`` formatting (``%d`` of a bool prints 1, an f-string True).

Usage::

    msg = wire.open_message(body, key, "upload", now)   # MessageError subclasses on failure
    reply = wire.reply(key, tid, "ack", {"re": msg["nonce"], ...}, now)
"""

from __future__ import annotations

import hmac
import os
from typing import Any

import cbor2

from protocol import cbor, messages
from protocol.errors import DecodeError, MessageError

_INT_MIN = -(2 ** 64)
_INT_MAX = 2 ** 64 - 1
_MAX_DEPTH = 16


class SignatureError(MessageError):
    """The message MAC does not match the terminal's key."""


class StaleError(MessageError):
    """The message time is outside the allowed skew."""


def envelope(data: bytes) -> tuple[int, bytes, bytes]:
    """(terminal id, body, mac) of a sealed message; ``MessageError`` if malformed."""
    try:
        env = decode_body(data)
    except DecodeError as e:
        raise MessageError("message is not valid CBOR: %s" % e.args[0]) from None  # noqa: UP031
    if not isinstance(env, dict):
        raise MessageError("message must be a CBOR map, got %s" % type(env).__name__)  # noqa: UP031
    if env.get("v") != messages.VERSION:
        raise MessageError("message version %r, expected %d" % (env.get("v"), messages.VERSION))  # noqa: UP031
    tid, body, mac = env.get("tid"), env.get("body"), env.get("mac")
    if not isinstance(tid, int) or isinstance(tid, bool) or not isinstance(body, bytes) \
            or not isinstance(mac, bytes):
        raise MessageError("message envelope needs int 'tid', bytes 'body' and bytes 'mac'")
    return tid, body, mac


_LEAVES = (bytes, str, bool, type(None))


def _plain(value: Any, depth: int) -> bool:
    """True if ``value`` holds only what ``protocol.cbor`` decodes (no floats, tags, ...)."""
    kind = type(value)
    if kind in _LEAVES:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX
    if depth >= _MAX_DEPTH:
        return False
    if kind is list:
        for item in value:
            if type(item) not in _LEAVES and not _plain(item, depth + 1):
                return False
        return True
    if kind is dict:
        for k, v in value.items():
            kt = type(k)
            if not (kt is str or kt is bytes or (kt is int and _INT_MIN <= k <= _INT_MAX)):
                return False
            if type(v) not in _LEAVES and not _plain(v, depth + 1):
                return False
        return True
    return False


def decode_body(body: bytes) -> Any:
    """The value of ``body`` exactly as ``protocol.cbor.loads`` would return it (or its
    ``DecodeError``): cbor2's answer where it is plain and canonical, else protocol.cbor's."""
    try:
        value = cbor2.loads(body)
        if _plain(value, 0) and cbor2.dumps(value, canonical=True) == body:
            return value
    except Exception:  # noqa: BLE001 - any cbor2 trouble: let protocol.cbor give the verdict
        pass
    return cbor.loads(body)


def open_message(data: bytes, key: bytes, expected_type: str | None = None, now: int | None = None,
                 max_skew: int = messages.MAX_SKEW,
                 env: tuple[int, bytes, bytes] | None = None) -> dict[str, Any]:
    """Check and open a message exactly like ``protocol.messages.unseal``; ``env``: its
    ``envelope(data)`` when the caller has it already.

    :raises SignatureError: bad MAC. :raises StaleError: time outside ``max_skew``.
    :raises MessageError: anything else malformed, with unseal's wording.
    """
    tid, body, mac = env or envelope(data)
    if not hmac.compare_digest(hmac.digest(key, body, "sha256"), mac):
        raise SignatureError("bad message signature for terminal %d" % tid)  # noqa: UP031
    try:
        msg = decode_body(body)
    except DecodeError as e:
        raise MessageError("message body is not valid CBOR: %s" % e.args[0]) from None  # noqa: UP031
    if not isinstance(msg, dict) or msg.get("v") != messages.VERSION:
        raise MessageError("message body must be a version %d map" % messages.VERSION)  # noqa: UP031
    if msg.get("tid") != tid:
        raise MessageError("message body names terminal %r, envelope %d" % (msg.get("tid"), tid))  # noqa: UP031
    ts, nonce = msg.get("ts"), msg.get("nonce")
    if not isinstance(ts, int) or not isinstance(nonce, bytes) or len(nonce) != messages.NONCE_SIZE:
        raise MessageError("message needs int 'ts' and a %d-byte 'nonce'" % messages.NONCE_SIZE)  # noqa: UP031
    messages.validate(msg)
    if expected_type is not None and msg["type"] != expected_type:
        raise MessageError("expected a %s message, got %s" % (expected_type, msg["type"]))  # noqa: UP031
    if now is not None and not -max_skew <= ts - now <= max_skew:
        raise StaleError("message time %d is %d s from server time %d: stale or clock wrong"  # noqa: UP031
                         % (ts, ts - now, now))
    return msg


def dumps(value: Any) -> bytes:
    """``protocol.cbor.dumps`` at cbor2 speed: canonical cbor2 is byte-identical for every type
    ``protocol.cbor`` encodes (tests/test_cbor_cross.py)."""
    return cbor2.dumps(value, canonical=True)


def reply(key: bytes, tid: int, mtype: str, fields: dict[str, Any], now: int) -> bytes:
    """A sealed server answer (fresh nonce; ``fields`` carries ``re``)."""
    return messages.seal(key, tid, mtype, fields, now, os.urandom(messages.NONCE_SIZE), dumps)


def error_body(text: str, now: int | None = None) -> bytes:
    """The CBOR body of a 4xx answer to a terminal. ``server_time`` (unsigned, a hint only) lets
    a terminal whose clock drifted beyond the allowed skew stamp its next request right; the
    sealed answer to that request then sets its clock."""
    body: dict[str, Any] = {"error": text}
    if now is not None:
        body["server_time"] = now
    return cbor2.dumps(body, canonical=True)
