"""A card's shadow balance comes from that card's own records (through the card index), not
from a sum over every record on the server: the card office looks cards up all day."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sync_server import context, create_app
from sync_server.store import ledger as lstore


def test_card_balance_reads_only_the_cards_records(tmp_path: Path) -> None:
    app = create_app({"DATABASE": str(tmp_path / "campus.db"), "TEST_CLOCK": False})
    with app.app_context():
        db = context.get_db()
        statements: list[str] = []
        db.conn.set_trace_callback(statements.append)
        lstore.card_balance(db, 1, 2, b"\x04\x01\x02\x03")
        lstore.card_credit(db, 2, b"\x04\x01\x02\x03")
        db.conn.set_trace_callback(None)
        plans = []
        probe = sqlite3.connect(str(tmp_path / "campus.db"))
        for sql in statements:
            if sql.lstrip().upper().startswith("SELECT"):
                plans += [row[-1] for row in probe.execute("EXPLAIN QUERY PLAN " + sql)]
        probe.close()
    assert plans, statements
    scans = [p for p in plans if p.startswith("SCAN") and "records" in p or p.startswith("SCAN r")]
    assert scans == [], plans
