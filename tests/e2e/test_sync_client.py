"""The firmware's sync client (MicroPython) against the real server: a blacklist too big for
one answer arrives in pages and is committed whole; unchanged lists and parameters are not
fetched again; the clock is set from the server; a server that refuses says why."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from terminal_sim.campus import Campus

pytestmark = pytest.mark.e2e


def test_paged_blacklist_params_and_clock(tmp_path: Path) -> None:
    with Campus(tmp_path / "campus") as campus:
        canteen = campus.merchant("West canteen", per_txn_limit=4000)
        till = campus.pos("till-1", canteen)
        uids = [f"04{i:06X}" for i in range(1, 1201)]
        for i, uid in enumerate(uids):
            campus.admin("POST", "/cards", {"uid": uid, "card_no": f"G{i}", "holder_id": f"grad{i}",
                                            "type": "student", "valid_until": int(time.time()) + 86400 * 30})
        frozen = campus.admin("POST", "/cards/bulk-freeze", {"cards": uids, "reason": "graduated"})
        assert len(frozen["frozen"]) == 1200
        till.term.service("time -3600")  # an hour slow: the server's time puts it right

        report = campus.sync(till)
        assert report["online"] == "1" and report["error"] == "-", report
        stats = json.loads(next(x for x in till.term.service("stats") if x.startswith("@stats "))[7:])
        assert stats["blacklist_count"] == 1200  # two pages (1,000 + 200), one list
        assert int(report["blacklist"]) >= 1200
        assert abs(stats["clock"] - time.time()) < 5
        assert stats["params"]["per_txn_limit"] == 4000

        # nothing changed: the heartbeat says so, and the cycle is the heartbeat alone
        before = stats["sync_requests"]
        again = campus.sync(till)
        assert again["blacklist"] == report["blacklist"]
        stats = json.loads(next(x for x in till.term.service("stats") if x.startswith("@stats "))[7:])
        assert stats["sync_requests"] - before == 1

        # one more card lost: a small delta, applied on top of the paged list
        campus.card("lou", "04FF0001", "student", balance=1000)
        campus.admin("POST", "/cards/04FF0001/report-loss", {"reason": "lost"})
        report = campus.sync(till)
        stats = json.loads(next(x for x in till.term.service("stats") if x.startswith("@stats "))[7:])
        assert stats["blacklist_count"] == 1201


def _stats(unit) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(next(x for x in unit.term.service("stats") if x.startswith("@stats "))[7:])


def test_a_cycle_with_sales_to_send_is_one_request_carrying_the_heartbeat(tmp_path: Path) -> None:
    with Campus(tmp_path / "campus") as campus:
        till = campus.pos("till-1", campus.merchant("East canteen"))
        ann = campus.card("ann", "04A10001", balance=5000)
        campus.sync(till)  # lists, parameters, the pending top-ups
        campus.sale(till, ann, 300)  # ann's top-up load and a sale
        campus.sync(till)  # the load collected: the pending loads change, fetched again
        time.sleep(3.1)  # past the double-tap guard
        campus.sale(till, ann, 700)
        till.term.service("time -3600")  # and the clock an hour slow: refused once, then re-stamped

        before = _stats(till)["sync_requests"]
        report = campus.sync(till)
        stats = _stats(till)
        assert report["online"] == "1" and report["error"] == "-", report
        # one refused for the clock, one accepted: no heartbeat request of its own
        assert stats["sync_requests"] - before == 2
        assert abs(stats["clock"] - time.time()) < 5  # the upload's answer set the clock
        assert [r.amount for r in campus.stored(till)] == [5000, 300, 700]

        terminal = next(t for t in campus.admin("GET", "/terminals") if t["id"] == till.tid)
        # the heartbeat that came with the upload, as the terminal holds it once acknowledged
        assert terminal["last_seq"] == 3 and terminal["unacked"] == 0 and terminal["firmware"], terminal

        before = stats["sync_requests"]
        campus.sync(till)  # nothing to send: the heartbeat alone
        assert _stats(till)["sync_requests"] - before == 1
