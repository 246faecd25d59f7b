"""The ingest process (``sync_server.ingest_process``): ``campuscard server`` runs every upload's
transaction in it, a process that dies or is killed is started again by the next upload with
no record or chain state lost, and admin views see the chain states it holds in memory."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import cbor2
import pytest

from protocol import messages, records, uidlist
from sync_server import cards, create_app, ingest_process, registry
from tests.server_fixtures import Campus, ServerProcess


def _ingest_pids(srv: ServerProcess) -> list[int]:
    return [p for p in srv.pids() if b"sync_server.ingest_process" in Path(f"/proc/{p}/cmdline").read_bytes()]


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # dead once its state is Z (not yet reaped) or it is gone
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not die")


def test_a_killed_ingest_process_is_started_again_and_loses_nothing(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "i.db")
    try:
        campus = Campus(srv)
        term = campus.terminal()
        card = campus.card(money=5000, term=term)
        ack = term.upload([card.buy(term, 100), card.buy(term, 200)])
        assert (ack["acked"], ack["rejected"]) == (3, [])
        first = _ingest_pids(srv)
        assert len(first) == 1, srv.pids()  # one ingest process beside the MAC helper
        _kill(first[0])  # its chain states were in memory only (not flushed yet)

        ack = term.upload([card.buy(term, 300)])  # the next upload starts another one
        assert (ack["acked"], ack["rejected"]) == (4, [])
        second = _ingest_pids(srv)
        assert len(second) == 1 and second != first
        shown = card.show(srv)  # the admin view asks the new process for its states
        assert (shown["chain"]["head_counter"], shown["chain"]["head_balance"], shown["chain"]["state"]) == (
            4, 4400, "ok")
        assert [r["status"] for r in shown["records"]] == ["linked"] * 4
    finally:
        srv.stop()


def test_the_ingest_process_writes_its_chain_states_and_leaves_with_the_server(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "s.db")
    try:
        campus = Campus(srv)
        term = campus.terminal()
        card = campus.card(money=5000, term=term)
        assert term.upload([card.buy(term, 100)])["rejected"] == []
        pids = _ingest_pids(srv)
    finally:
        srv.stop()
    assert len(pids) == 1 and not Path(f"/proc/{pids[0]}").exists()
    with sqlite3.connect(tmp_path / "s.db") as conn:  # written as it left, not derived at the next start
        row = conn.execute("SELECT ch.head_counter, ch.head_balance FROM card_chain ch JOIN cards c "
                           "ON c.id = ch.card_id WHERE c.card_no = ?", [card.card_no]).fetchone()
    assert row == (2, 4900)


def test_a_hung_ingest_process_answers_503_and_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_process, "ANSWER_TIMEOUT_S", 1.0)
    app = create_app({"DATABASE": str(tmp_path / "h.db"), "INGEST_PROCESS": True})
    state = app.extensions["campuscard"]
    try:
        db, now = state.pool.get(), int(time.time())
        merchant = registry.add_merchant(db, now, "Canteen")
        bundle = registry.register_terminal(db, now, state.keys, merchant["id"], "pos", "till", None, "http://x")
        tid, key = bundle["terminal_id"], bytes.fromhex(bundle["terminal_key"])
        uid = bytes.fromhex("04A1B2C3")
        cards.issue(db, now, uidlist.uid_key(uid), "C1", "h1", 2, now, now + 86400)
        cards.top_up(db, now, "C1", 5000)
        link = records.GENESIS_LINK

        def upload(seq: int, *fields: int) -> tuple[int, dict]:
            nonlocal link
            rec = records.build(key, link, *fields[:1], 0, tid, seq, now, uid, *fields[1:])
            wire = messages.seal(key, tid, "upload", {"records": [rec]}, now, os.urandom(messages.NONCE_SIZE))
            r = app.test_client().post("/api/v1/terminal/upload", data=wire, content_type="application/cbor")
            if r.status_code == 200:
                link = records.link_of(rec)
                return 200, messages.unseal(r.data, key, "ack", None)
            return r.status_code, cbor2.loads(r.data)

        assert upload(1, records.LOAD, 1, 5000, 0, 5000, 1)[1]["acked"] == 1
        hung = state.ingester.pid
        os.kill(hung, signal.SIGSTOP)
        status, body = upload(2, records.PURCHASE, 2, 300, 5000, 4700)
        assert status == 503 and "ingest process" in body["error"] and "send the request again" in body["error"]
        assert not Path(f"/proc/{hung}").exists()  # killed and reaped, not left behind
        status, ack = upload(2, records.PURCHASE, 2, 300, 5000, 4700)  # the terminal sends it again
        assert status == 200 and (ack["acked"], ack["rejected"]) == (2, [])
        assert state.ingester.pid != hung
    finally:
        state.close()
