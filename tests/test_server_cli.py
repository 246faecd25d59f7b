"""The ``campuscard`` server-side commands as a card-office user runs them, against the
database of a running server: audit (including an injected imbalance), cards, merchants,
terminals; and a server without ``--test-clock`` refusing to move its clock."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.server_fixtures import Campus, ServerProcess, Terminal, snapshot


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("cli") / "campus.db"
    server = ServerProcess.start(db, test_clock=False)
    try:
        yield server
    finally:
        server.stop()


def run(srv: ServerProcess, *args: str, ok: bool = True):
    """``campuscard <args>`` with ``--db`` after the (sub)command name."""
    split = 2 if args[0] in ("card", "merchant", "terminal") else 1
    result = srv.campuscard(*args[:split], "--db", str(srv.db), *args[split:])
    if ok and result.returncode != 0:
        raise AssertionError(f"campuscard {' '.join(args)} failed ({result.returncode}): "
                             f"{result.stdout}{result.stderr}")
    return result


def test_clock_cannot_be_moved_without_test_clock(srv: ServerProcess) -> None:
    status, body = srv.admin_raw("POST", "/clock/advance", {"seconds": 3600})
    assert status == 403 and "--test-clock" in body["error"]


def test_audit_finds_an_injected_imbalance(srv: ServerProcess) -> None:
    campus = Campus(srv)
    term = campus.terminal()
    card = campus.card(money=5000, term=term)
    assert term.upload([card.buy(term, 1500)])["rejected"] == []
    clean = run(srv, "audit")
    assert "audit OK" in clean.stdout and "journal: 6 lines, sum 0 (balanced)" in clean.stdout

    conn = sqlite3.connect(srv.db, isolation_level=None)
    purse, = conn.execute("SELECT purse_acct FROM cards WHERE card_no = ?", [card.card_no]).fetchone()
    payable, = conn.execute("SELECT payable_acct FROM merchants WHERE id = ?", [campus.merchant["id"]]).fetchone()
    try:
        conn.execute("INSERT INTO postings (id, kind, time) VALUES (9001, 'upload', 0)")
        conn.execute("INSERT INTO entries (posting, account, amount) VALUES (9001, ?, 250)", [payable])
        bad = run(srv, "audit", ok=False)
        assert bad.returncode == 1
        assert "sum 250 (NOT ZERO)" in bad.stdout
        assert "posting 9001 (upload) does not balance: sums to 250" in bad.stdout
        assert bad.stdout.rstrip().endswith("audit FAILED")

        conn.execute("INSERT INTO entries (posting, account, amount) VALUES (9001, ?, -250)", [purse])
        moved = run(srv, "audit", ok=False)  # balanced, but money left a card without a record
        assert moved.returncode == 1 and "(balanced)" in moved.stdout
        assert f"card {card.card_no}" in moved.stdout and "difference -250" in moved.stdout
        assert "-250 posted without a record" in moved.stdout
        report = json.loads(run(srv, "audit", "--json", ok=False).stdout)
        assert report["ok"] is False and report["differences"][0]["difference"] == -250
    finally:
        conn.execute("DELETE FROM entries WHERE posting = 9001")
        conn.execute("DELETE FROM postings WHERE id = 9001")
        conn.close()
    assert run(srv, "audit").returncode == 0


def test_merchant_terminal_and_card_commands(srv: ServerProcess, tmp_path) -> None:
    assert "merchant" in run(srv, "merchant", "add", "East Shop").stdout
    bundle = json.loads(run(srv, "terminal", "register", "--merchant", "East Shop", "--role", "pos",
                            "--server-url", "http://campus:8080").stdout)
    assert set(bundle) == {"terminal_id", "merchant_id", "role", "server_url", "terminal_key", "card_master",
                           "issuer_master"}
    assert bundle["server_url"] == "http://campus:8080" and len(bytes.fromhex(bundle["terminal_key"])) == 32
    term = Terminal(srv, bundle)  # the bundle really works against the running server
    assert term.call("params", "params_req", {})["params"]["terminal_id"] == bundle["terminal_id"]

    issued = json.loads(run(srv, "card", "issue", "--uid", "04112233", "--card-no", "S1", "--holder", "2024001",
                            "--type", "student", "--valid-until", "2099-07-31").stdout)
    assert (issued["uid"], issued["status"], issued["type"]) == ("04112233", "active", "student")
    refused = run(srv, "card", "issue", "--uid", "04112234", "--card-no", "V1", "--holder", "visitor",
                  "--type", "temporary", "--valid-until", "2099-01-01", ok=False)
    assert refused.returncode == 1 and "at most one year" in refused.stderr
    assert "in transit" in run(srv, "card", "top-up", "S1", "--amount", "2000").stdout
    assert "on the blacklist" in run(srv, "card", "report-loss", "S1").stdout
    assert "active again" in run(srv, "card", "cancel-loss", "04112233").stdout
    assert "suspended" in run(srv, "card", "suspend", "S1").stdout
    assert "active" in run(srv, "card", "resume", "S1").stdout
    listfile = tmp_path / "graduates.txt"
    listfile.write_text("S1\nNOPE\n")
    out = run(srv, "card", "bulk-freeze", str(listfile)).stdout
    assert "frozen 1, skipped 0, unknown 1" in out and "unknown: NOPE" in out
    cancelled = run(srv, "card", "cancel", "S1", "--refund-to", "donation").stdout
    assert "final balance 2000, donated 2000" in cancelled  # the uncollected top-up comes back
    shown = json.loads(run(srv, "card", "show", "S1").stdout)
    assert shown["status"] == "cancelled" and shown["shadow_balance"] == 0
    assert shown["loads"][0]["status"] == "cancelled"
    again = run(srv, "card", "report-loss", "S1", ok=False)
    assert again.returncode == 1 and "Card S1 is cancelled" in again.stderr
    assert run(srv, "audit").returncode == 0


def test_unknown_card_message(srv: ServerProcess) -> None:
    before = snapshot(srv.db)
    out = run(srv, "card", "show", "NOSUCH", ok=False)
    assert out.returncode == 1 and "Card NOSUCH is not registered" in out.stderr
    assert snapshot(srv.db) == before


def test_admin_token_is_printed(srv: ServerProcess) -> None:
    out = run(srv, "admin-token")
    assert out.stdout.strip() == "test-admin-token-0123456789"  # from CAMPUSCARD_ADMIN_TOKEN
