"""``sync_server.wire.open_message`` must behave exactly like ``protocol.messages.unseal``:
same result for good messages, same error text for every bad one (hostile CBOR included)."""

from __future__ import annotations

import os

import cbor2
import pytest

from protocol import cbor, crypto, messages
from protocol.errors import MessageError
from sync_server import wire

KEY = bytes(range(32))
NOW = 1_800_000_000
NONCE = bytes(12)


def _sealed_body(body: bytes, tid: int = 7, key: bytes = KEY) -> bytes:
    """An envelope around an arbitrary body, correctly MAC'd (only a key holder can do this)."""
    return cbor.dumps({"v": 1, "tid": tid, "body": body, "mac": crypto.hmac_sha256(key, body)})


def _good_body(**extra: object) -> dict[str, object]:
    msg: dict[str, object] = {"v": 1, "type": "upload", "tid": 7, "ts": NOW, "nonce": NONCE,
                              "records": [os.urandom(64) for _ in range(3)]}
    msg.update(extra)
    return msg


BODIES = {
    "canonical": cbor.dumps(_good_body()),
    "unsorted keys": cbor2.dumps(_good_body()),  # cbor2 default: insertion order
    "float field": cbor2.dumps(_good_body(extra=1.5), canonical=True),
    "tag": cbor2.dumps(_good_body(extra=cbor2.CBORTag(99, 1)), canonical=True),
    "bignum": cbor2.dumps(_good_body(extra=2 ** 70), canonical=True),
    "undefined": cbor2.dumps(_good_body(extra=cbor2.undefined), canonical=True),
    "indefinite list": bytes.fromhex("a3617601647479706566706172616d735f") + b"\xff",
    "duplicate key": bytes.fromhex("a2617601617601"),
    "truncated": cbor.dumps(_good_body())[:-5],
    "huge declared length": bytes.fromhex("5bffffffffffffffff00"),
    "deep nesting": b"\x81" * 40 + b"\x00",
    "not a map": cbor.dumps([1, 2, 3]),
    "wrong version": cbor.dumps(_good_body(v=2)),
    "other terminal in body": cbor.dumps(_good_body(tid=8)),
    "short nonce": cbor.dumps(_good_body(nonce=b"x")),
    "records not a list": cbor.dumps(_good_body(records=b"abc")),
    "unknown type": cbor.dumps(_good_body(type="gossip")),
    "stale": cbor.dumps(_good_body(ts=NOW - 301)),
    "future": cbor.dumps(_good_body(ts=NOW + 400)),
    "bool ts": cbor2.dumps(_good_body(ts=True), canonical=True),
    "too many records": cbor.dumps(_good_body(records=[b""] * 2001)),
    "bad utf-8": bytes.fromhex("a1617662ff"),
    "empty": b"",
}

ENVELOPES = {
    "garbage": b"\xff\x00\x01",
    "truncated": _sealed_body(BODIES["canonical"])[:20],
    "list": cbor.dumps([1, 7, b"", b""]),
    "tid as text": cbor.dumps({"v": 1, "tid": "7", "body": b"", "mac": b""}),
    "no mac": cbor.dumps({"v": 1, "tid": 7, "body": b""}),
    "bool tid": cbor2.dumps({"v": 1, "tid": True, "body": b"", "mac": b""}, canonical=True),
    "version 9": cbor.dumps({"v": 9, "tid": 7, "body": b"", "mac": b""}),
    "bad mac": cbor.dumps({"v": 1, "tid": 7, "body": BODIES["canonical"], "mac": bytes(32)}),
    "huge length": bytes.fromhex("a4617601637469640764626f64795bffffffffffffffff"),
    "float in envelope": cbor2.dumps({"v": 1.0, "tid": 7, "body": b"", "mac": b""}),
}


def _outcome(fn, data: bytes) -> tuple[str, object]:
    try:
        return "ok", fn(data, KEY, "upload", NOW)
    except MessageError as e:
        return "error", e.args[0]


@pytest.mark.parametrize("name", sorted(BODIES))
def test_body_same_verdict_as_unseal(name: str) -> None:
    data = _sealed_body(BODIES[name])
    expected = _outcome(messages.unseal, data)
    assert _outcome(wire.open_message, data) == expected, name


@pytest.mark.parametrize("name", sorted(ENVELOPES))
def test_envelope_same_verdict_as_unseal(name: str) -> None:
    expected = _outcome(messages.unseal, ENVELOPES[name])
    assert expected[0] == "error"
    assert _outcome(wire.open_message, ENVELOPES[name]) == expected, name


def test_good_message_opens_with_the_same_content() -> None:
    recs = [os.urandom(64) for _ in range(1000)]
    data = messages.seal(KEY, 7, "upload", {"records": recs}, NOW, NONCE)
    assert wire.open_message(data, KEY, "upload", NOW) == messages.unseal(data, KEY, "upload", NOW)


def test_signature_and_staleness_have_their_own_error_classes() -> None:
    data = messages.seal(KEY, 7, "params_req", {}, NOW, NONCE)
    with pytest.raises(wire.SignatureError, match="bad message signature for terminal 7"):
        wire.open_message(data, bytes(32), "params_req", NOW)
    with pytest.raises(wire.StaleError, match="stale or clock wrong"):
        wire.open_message(data, KEY, "params_req", NOW + 1000)
    with pytest.raises(MessageError, match="expected a upload message, got params_req"):
        wire.open_message(data, KEY, "upload", NOW)
