"""Sealed sync messages: MAC, schema, skew, envelope errors; pending-load entries."""

import support

from protocol import cbor, messages, records
from protocol.errors import MessageError

KEY = b"T" * 32
NOW = 1764057600
NONCE = b"0123456789ab"


def _upload(n=3):
    recs = []
    prev = records.GENESIS_LINK
    for i in range(n):
        rec = records.build(KEY, prev, records.PURCHASE, 0, 1001, i + 1, NOW, b"\x04\x01\x02\x03", i + 1, 100,
                            1000 - 100 * i, 900 - 100 * i)
        recs.append(rec)
        prev = records.link_of(rec)
    return messages.seal(KEY, 1001, "upload", {"records": recs}, NOW, NONCE), recs


def test_seal_unseal_round_trip():
    wire, recs = _upload()
    assert messages.peek_terminal(wire) == 1001
    msg = messages.unseal(wire, KEY, "upload", NOW + 10)
    assert msg["records"] == recs and msg["nonce"] == NONCE and msg["ts"] == NOW


def test_every_message_type_seals_with_its_fields():
    samples = {
        "ack": {"re": NONCE, "acked": 5, "rejected": [[6, "bad MAC"]]},
        "blacklist_req": {"since": 3},
        "blacklist": {"re": NONCE, "version": 4, "full": False, "since": 3, "added": b"", "removed": b""},
        "loads_req": {},
        "loads": {"re": NONCE, "loads": messages.pack_load(b"\x00\x00\x00\x04\x01\x02\x03", 1, 5000, 1)},
        "params_req": {},
        "params": {"re": NONCE, "params": {"daily_limit": 20000}, "server_time": NOW},
        "heartbeat": {"journal_fill": 12, "unacked": 3, "last_seq": 9, "blacklist_version": 4,
                      "access_version": 0, "offline_since": 0, "firmware": "0.1.0", "clock_drift": -2},
        "heartbeat_ack": {"re": NONCE, "server_time": NOW},
        "access_req": {"since": 0, "hash": b""},
        "access": {"re": NONCE, "version": 1, "hash": b"h" * 8, "full": True, "added": b"", "removed": b""},
    }
    for mtype, fields in samples.items():
        msg = messages.unseal(messages.seal(KEY, 7, mtype, fields, NOW, NONCE), KEY, mtype, NOW)
        for name in fields:
            assert msg[name] == fields[name], (mtype, name)


def test_wrong_key_or_tampered_body_is_refused():
    wire, _ = _upload()
    e = support.raises(MessageError, messages.unseal, wire, b"U" * 32)
    assert "signature" in str(e)
    env = cbor.loads(wire)
    body = bytearray(env["body"])
    body[-1] ^= 1
    env["body"] = bytes(body)
    support.raises(MessageError, messages.unseal, cbor.dumps(env), KEY)


def test_stale_or_future_time_is_refused():
    wire, _ = _upload()
    e = support.raises(MessageError, messages.unseal, wire, KEY, None, NOW + messages.MAX_SKEW + 1)
    assert "stale" in str(e)
    support.raises(MessageError, messages.unseal, wire, KEY, None, NOW - messages.MAX_SKEW - 1)
    assert messages.unseal(wire, KEY, None, None)["type"] == "upload"


def test_wrong_type_and_schema_errors_name_the_field():
    wire, _ = _upload()
    e = support.raises(MessageError, messages.unseal, wire, KEY, "heartbeat", NOW)
    assert "expected a heartbeat" in str(e)
    e = support.raises(MessageError, messages.seal, KEY, 1, "blacklist_req", {"since": "3"}, NOW, NONCE)
    assert "'since' must be int" in str(e)
    e = support.raises(MessageError, messages.seal, KEY, 1, "blacklist_req", {}, NOW, NONCE)
    assert "lacks field 'since'" in str(e)
    e = support.raises(MessageError, messages.seal, KEY, 1, "nonsense", {}, NOW, NONCE)
    assert "unknown message type" in str(e)
    support.raises(MessageError, messages.seal, KEY, 1, "loads_req", {}, NOW, b"short")


def test_envelope_errors():
    for bad in (b"", b"\xff", cbor.dumps([1, 2]), cbor.dumps({"v": 2}), cbor.dumps({"v": 1, "tid": "x"})):
        support.raises(MessageError, messages.peek_terminal, bad)
    body = cbor.dumps({"v": 1, "type": "loads_req", "tid": 8, "ts": NOW, "nonce": NONCE})
    from protocol import crypto

    forged = cbor.dumps({"v": 1, "tid": 7, "body": body, "mac": crypto.hmac_sha256(KEY, body)})
    e = support.raises(MessageError, messages.unseal, forged, KEY)
    assert "names terminal 8" in str(e)


def test_load_entries():
    key7 = b"\x00\x00\x00\x04\x01\x02\x03"
    entry = messages.pack_load(key7, 3, 2500, messages.LOAD_TOPUP)
    assert len(entry) == messages.LOAD_ENTRY_SIZE
    assert messages.unpack_load(entry) == (key7, 3, 2500, messages.LOAD_TOPUP)
    support.raises(MessageError, messages.unpack_load, entry[:15])


def test_streamed_upload_equals_sealed_upload():
    from protocol import crypto

    # The whole-message seal needs the batch in RAM twice: small batches on a 64 KB heap.
    for n in (0, 1, 3, 12) if support.IS_MICROPYTHON else (0, 1, 3, 24, 300):
        recs = [bytes([i % 256]) * 64 for i in range(n)]
        prefix = messages.upload_body_prefix(1001, NOW, NONCE, n)
        body = prefix + b"".join(messages.record_item_head() + r for r in recs)
        assert len(body) == messages.upload_body_size(prefix, n)
        mac = crypto.hmac_sha256(KEY, body)
        wire = messages.upload_envelope_prefix(1001, mac, len(body)) + body
        assert wire == messages.seal(KEY, 1001, "upload", {"records": recs}, NOW, NONCE)


HB = {"journal_fill": 12, "unacked": 3, "last_seq": 40, "blacklist_version": 7, "access_version": 0,
      "offline_since": 0, "firmware": "0.1.0", "clock_drift": -2}


def test_streamed_upload_with_heartbeat_equals_sealed_upload():
    recs = [bytes([i]) * 64 for i in range(3)]
    prefix = messages.upload_body_prefix(1001, NOW, NONCE, 3, HB)
    body = prefix + b"".join(messages.record_item_head() + r for r in recs)
    mac = crypto_mac(body)
    wire = messages.upload_envelope_prefix(1001, mac, len(body)) + body
    assert wire == messages.seal(KEY, 1001, "upload", {"records": recs, "hb": HB}, NOW, NONCE)
    assert messages.unseal(wire, KEY, "upload", NOW)["hb"] == HB


def test_upload_heartbeat_must_carry_every_heartbeat_field():
    for bad, why in (([1], "must be map"), (dict(HB, unacked="3"), "'unacked' (int)"),
                     ({"firmware": "x"}, "'journal_fill' (int)")):
        e = support.raises(MessageError, messages.seal, KEY, 1001, "upload", {"records": [], "hb": bad}, NOW,
                           NONCE)
        assert why in str(e), str(e)


def crypto_mac(body):
    from protocol import crypto

    return crypto.hmac_sha256(KEY, body)
