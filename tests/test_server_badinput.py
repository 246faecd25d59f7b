"""Hostile and malformed input on every terminal endpoint: always a 4xx whose CBOR body says
what was wrong, never a 500, and nothing stored changes."""

from __future__ import annotations

import os

import cbor2
import pytest

from protocol import cbor, crypto, messages
from tests.server_fixtures import Campus, ServerProcess, Terminal, make_server, snapshot

ENDPOINTS = {
    "upload": ("upload", {"records": []}),
    "blacklist": ("blacklist_req", {"since": 0}),
    "loads": ("loads_req", {}),
    "params": ("params_req", {}),
    "heartbeat": ("heartbeat", {"journal_fill": 1, "unacked": 0, "last_seq": 0, "blacklist_version": 0,
                                "access_version": 0, "offline_since": 0, "firmware": "x", "clock_drift": 0}),
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    yield from make_server(tmp_path_factory, "badinput")


@pytest.fixture(scope="module")
def term(srv: ServerProcess) -> Terminal:
    campus = Campus(srv)
    t = campus.terminal()
    card = campus.card(money=5000, term=t)
    t.upload([card.buy(t, 100)])
    return t


def signed_body(term: Terminal, body: bytes) -> bytes:
    """An envelope whose MAC is right for an arbitrary (possibly malformed) body."""
    return cbor.dumps({"v": 1, "tid": term.tid, "body": body, "mac": crypto.hmac_sha256(term.key, body)})


def body_of(term: Terminal, mtype: str, fields: dict, **over: object) -> dict:
    msg = {"v": 1, "type": mtype, "tid": term.tid, "ts": term.srv.now(), "nonce": os.urandom(12)}
    msg.update(fields)
    msg.update(over)
    return msg


def hostile_inputs(term: Terminal, endpoint: str) -> dict[str, tuple[bytes, int, str]]:
    """name -> (request body, expected status, text the error must contain)."""
    mtype, fields = ENDPOINTS[endpoint]
    good = term.seal(mtype, fields)
    other = "params_req" if mtype != "params_req" else "loads_req"
    wrong_field = {"upload": {"records": b"x"}, "blacklist": {"since": "x"}, "loads": {"extra": 1.5},
                   "params": {"extra": cbor2.CBORTag(1, 0)}, "heartbeat": {"journal_fill": "full"}}[endpoint]
    encode = cbor2.dumps if endpoint in ("loads", "params") else cbor.dumps
    return {
        "empty": (b"", 400, "empty request body"),
        "garbage": (b"\xff\xfe\xfd", 400, "not valid CBOR"),
        "truncated": (good[:len(good) // 2], 400, "truncated"),
        "huge declared length": (bytes.fromhex("a4617601637469641903e964626f64795bffffffffffffffff"), 400,
                                 "truncated"),
        "deep nesting": (b"\x81" * 100 + b"\x00", 400, "nest deeper"),
        "indefinite": (b"\x9f\x01\x02\xff", 400, "indefinite"),
        "float": (cbor2.dumps(1.5), 400, "floats are not supported"),
        "envelope is a list": (cbor.dumps([1, term.tid, b"", b""]), 400, "must be a CBOR map"),
        "tid is text": (cbor.dumps({"v": 1, "tid": str(term.tid), "body": b"", "mac": b""}), 400, "needs int 'tid'"),
        "negative tid": (cbor.dumps({"v": 1, "tid": -5, "body": b"", "mac": b""}), 403, "not registered"),
        "huge tid": (cbor.dumps({"v": 1, "tid": 2 ** 64 - 1, "body": b"", "mac": b""}), 403, "not registered"),
        "unknown terminal": (messages.seal(os.urandom(32), 424242, mtype, fields, term.srv.now(), os.urandom(12)),
                             403, "terminal 424242 is not registered"),
        "bad signature": (term.seal(mtype, fields, key=os.urandom(32)), 401, "bad message signature"),
        "stale": (term.seal(mtype, fields, ts=term.srv.now() - 3600), 400, "stale or clock wrong"),
        "wrong type": (term.seal(other, {}), 400, f"expected a {mtype} message"),
        "signed garbage body": (signed_body(term, b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff"), 400,
                                "body is not valid CBOR"),
        "signed wrong field": (signed_body(term, encode(body_of(term, mtype, fields, **wrong_field))), 400,
                               "must be" if endpoint in ("upload", "blacklist", "heartbeat") else "not supported"),
        "signed other terminal": (signed_body(term, cbor.dumps(body_of(term, mtype, fields, tid=term.tid + 1))),
                                  400, "names terminal"),
        "oversized": (os.urandom(300 * 1024), 413, "Too Large"),
    }


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_hostile_input_gets_4xx_and_changes_nothing(srv: ServerProcess, term: Terminal, endpoint: str) -> None:
    cases = hostile_inputs(term, endpoint)
    before = snapshot(srv.db)
    failures = []
    for name, (data, status, text) in cases.items():
        got, body, ctype = srv.request("POST", "/api/v1/terminal/" + endpoint, data,
                                       {"Content-Type": "application/cbor"})
        error = cbor2.loads(body).get("error", "") if ctype == "application/cbor" else body[:100]
        if got != status or text not in str(error):
            failures.append(f"{name}: {got} {error!r} (expected {status} with {text!r})")
    assert failures == []
    assert snapshot(srv.db) == before


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_replayed_nonce_is_refused_on_every_endpoint(srv: ServerProcess, term: Terminal, endpoint: str) -> None:
    mtype, fields = ENDPOINTS[endpoint]
    wire = term.seal(mtype, fields)
    assert term.post(endpoint, wire)[0] == 200
    before = snapshot(srv.db)
    status, body = term.post(endpoint, wire)
    assert status == 409 and "replayed request" in body["error"]
    assert snapshot(srv.db) == before


def test_wrong_method_and_unknown_path(srv: ServerProcess) -> None:
    status, body, ctype = srv.request("GET", "/api/v1/terminal/upload")
    assert status == 405 and ctype == "application/cbor" and "Method Not Allowed" in cbor2.loads(body)["error"]
    status, body, ctype = srv.request("POST", "/api/v1/terminal/nothing", b"\xa0")
    assert status == 404 and ctype == "application/cbor"


def test_out_of_range_heartbeat_values_are_refused(srv: ServerProcess, term: Terminal) -> None:
    _, fields = ENDPOINTS["heartbeat"]
    before = snapshot(srv.db)
    for name, value in (("journal_fill", 2 ** 63), ("clock_drift", -(2 ** 64)), ("unacked", 2 ** 40)):
        status, body = term.post("heartbeat", term.seal("heartbeat", dict(fields, **{name: value})))
        assert status == 400 and name in body["error"]
    status, body = term.post("heartbeat", term.seal("heartbeat", dict(fields, firmware="x" * 500)))
    assert status == 400 and "firmware" in body["error"]
    assert snapshot(srv.db) == before


def test_too_many_records_in_one_upload(srv: ServerProcess, term: Terminal) -> None:
    body = cbor.dumps(body_of(term, "upload", {"records": [bytes(64)] * 2001}))
    status, _, _ = srv.request("POST", "/api/v1/terminal/upload", signed_body(term, body))
    assert status in (400, 413)


def test_admin_api_needs_the_token(srv: ServerProcess) -> None:
    status, body = srv.admin_raw("GET", "/audit", token="wrong")
    assert status == 401 and "wrong admin token" in body["error"]
    status, body, _ = srv.request("GET", "/api/v1/admin/audit")
    assert status == 401
    status, body = srv.admin_raw("POST", "/cards", {"uid": "zz", "card_no": 5})
    assert status == 400 and "error" in body
    status, body = srv.admin_raw("POST", "/cards", ["not", "an", "object"])
    assert status == 400 and "JSON object" in body["error"]


def test_admin_bad_input_gets_4xx_and_changes_nothing(srv: ServerProcess) -> None:
    campus = Campus(srv)
    card = campus.card(money=3000, term=campus.terminal())
    issue = {"uid": "04ABCDEF", "card_no": "BAD-1", "holder_id": "h", "valid_until": 2_000_000_000}
    cases = [
        ("POST", "/terminals", {"merchant_id": 10**30}, "out of range"),
        ("POST", "/cards", dict(issue, valid_until=10**30), "out of range"),
        ("POST", "/cards", dict(issue, valid_until="9999-12-31"), "2106"),
        ("POST", "/cards", dict(issue, type="identity", valid_from=-10**18), "1970"),
        ("POST", "/cards", dict(issue, card_no="\ud800"), "not valid Unicode"),
        ("POST", f"/cards/{card.card_no}/correct", {"amount": 5, "merchant_id": 10**30}, "out of range"),
        ("POST", f"/cards/{card.card_no}/cancel", {"refund_to": "bank", "force": "false"}, "true or false"),
        ("GET", "/anomalies?limit=1000000000000000000000000", None, "limit must be"),
        ("PUT", "/params?merchant=100000000000000000000000", {"per_txn_limit": 5}, "merchant must be"),
        ("PUT", "/settings", {"settle_time_s": 10**30}, "out of range"),
        ("PUT", "/settings", {"settle_time_s": -1}, "settle_time_s must be 0.."),
        ("PUT", "/settings", {"replacement_fee": -500}, "replacement_fee must be 0.."),  # would create money
        ("PUT", "/settings", {"replacement_wait_s": 12.9}, "whole numbers"),
        ("PUT", "/settings", {"timezone": 8}, "must be a string"),
    ]
    srv.admin("GET", "/clock")  # admin requests first write the cached chain states: not a change
    before = snapshot(srv.db)
    failures = []
    for method, path, body, text in cases:
        status, answer = srv.admin_raw(method, path, body)
        if status != 400 or text not in str((answer or {}).get("error")):
            failures.append(f"{method} {path} {body!r}: {status} {answer!r} (expected 400 with {text!r})")
    assert failures == []
    assert snapshot(srv.db) == before
    assert srv.admin("POST", "/sweep")["transferred"] == 0  # the housekeeping still runs
