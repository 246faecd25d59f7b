"""A door terminal (firmware under MicroPython) syncing with the real sync server process: its
grants and denials are uploaded and acknowledged like sales."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal_sim.door_console import DoorConsole
from tests.server_fixtures import ServerProcess

pytestmark = pytest.mark.e2e


def test_door_log_is_uploaded_and_acknowledged(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "campus.db")
    console = None
    try:
        m = srv.admin("POST", "/merchants", {"name": "Dorm 3"})
        b = srv.admin("POST", "/terminals", {"merchant_id": m["id"], "role": "door", "terminal_id": 1001})
        ws = tmp_path / "door"
        ws.mkdir()
        (ws / "secrets.json").write_text(json.dumps({k: b[k] for k in ("terminal_key", "card_master",
                                                                        "issuer_master")}))
        console = DoorConsole(ws, server_url=f"http://127.0.0.1:{srv.port}", merchant_id=m["id"])
        console.start()
        console.term.service(f"time {srv.now()}")
        assert "RELAY open 3000" in console.execute("tap alice")
        console.execute("tap carol")
        assert len(console.term.journal_hex()) == 2
        out = console.execute("sync")
        [line] = [x for x in out if x.startswith("@sync ")]
        assert "online=1 acked=2 unacked=0" in line, line
        assert console.term.journal_hex() == []
        hb = [t for t in srv.admin("GET", "/terminals") if t["id"] == 1001]
        assert hb, "the door is not listed by the server"
    finally:
        if console is not None:
            console.close()
        srv.stop()
