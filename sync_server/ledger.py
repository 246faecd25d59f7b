"""The double-entry shadow ledger's audit: conservation and every card against its records.

Accounts: one purse and one credit-wallet account per card (the purse holds the positive
part of the balance, the credit account the negative part, so their sum is the card's shadow
balance); one payable and one held (unauthorised-offline sales) account per merchant; top-up
money received, loads in transit, refunds paid, donations, fees and suspense. The journal is
``entries`` plus the card lines carried by the records themselves (see ``store.schema``).

``audit`` checks that every posting balances and the whole journal sums to zero, and that
each card's shadow balance equals the balance its highest-counter record reports, adjusted
only by postings that legitimately move money off a card without a record (refund, transfer
to a replacement, withdrawn loads, credit repaid out of a replacement's top-up). Loads in
transit are not on the card yet on either side.
A card whose chain is still ``pending`` (records not yet uploaded) is listed but does not
fail the audit; every other difference does. Two accounts are checked against the world as
well: loads in transit must equal the loads not collected yet, and suspense must be empty
(it holds money a record moved that the server could not place: a load collected twice or
after it was withdrawn, a debit naming an unknown terminal; the anomalies say which).

Usage::

    report = ledger.audit(db)
    report["ok"], report["differences"]
"""

from __future__ import annotations

from typing import Any

from protocol import uidlist
from sync_server import status as st
from sync_server import store
from sync_server.store import cards as cstore
from sync_server.store import ledger as lstore

ADJUSTMENT_KINDS = ("refund", "transfer_out", "load_cancel", "debt_repay")


def audit(db: store.Database) -> dict[str, Any]:
    """Check conservation and every card; ``ok`` is False if anything does not add up."""
    total, lines = lstore.journal_total(db)
    unbalanced = lstore.unbalanced_postings(db)
    orphans = lstore.orphan_lines(db)
    reported = lstore.reported_balances(db, st.POSTED, st.CLONE)
    differences, pending = [], []
    rows = lstore.card_audit_rows(db, ADJUSTMENT_KINDS)
    for row in rows:
        counter, balance = reported.get(row["card_id"], (0, 0))
        expected = balance + row["adjustments"]
        diff = row["shadow"] - expected
        if diff == 0:
            continue
        item = {"card_no": row["card_no"], "uid": uidlist.uid_from_key(row["uid"]).hex().upper(),
                "shadow": row["shadow"],
                "expected": expected, "difference": diff, "last_counter": counter, "reported": balance,
                "unexplained_postings": row["unexplained"], "status": row["status"],
                "chain": row["state"], "reason": row["reason"]}
        (pending if row["state"] == "pending" and not row["unexplained"] else differences).append(item)
    balances = lstore.balances_by_kind(db)
    by_kind = {b["kind"]: b["balance"] for b in balances}
    accounts = []
    waiting = cstore.pending_loads_total(db)
    if by_kind.get("in_transit", 0) != waiting:
        accounts.append({"account": "in_transit", "balance": by_kind.get("in_transit", 0), "expected": waiting,
                         "why": "loads in transit must equal the loads not collected yet"})
    if by_kind.get("suspense", 0):
        accounts.append({"account": "suspense", "balance": by_kind["suspense"], "expected": 0,
                         "why": "money a record moved that the server could not place: see the load_mismatch and "
                                "suspense anomalies"})
    return {
        "ok": total == 0 and not unbalanced and not orphans and not differences and not accounts,
        "journal_sum": total, "journal_lines": lines, "unbalanced_postings": unbalanced,
        "orphan_lines": orphans, "cards_checked": len(rows), "differences": differences,
        "pending": pending, "accounts": accounts, "balances": balances,
    }


def format_report(report: dict[str, Any]) -> list[str]:
    """Human-readable lines of an audit report (amounts in cents)."""
    out = ["journal: {} lines, sum {} {}".format(report["journal_lines"], report["journal_sum"],
                                             "(balanced)" if report["journal_sum"] == 0 else "(NOT ZERO)")]
    for p in report["unbalanced_postings"]:
        out.append("posting {} ({}) does not balance: sums to {}".format(p["posting"], p["kind"], p["sum"]))
    if report["orphan_lines"]:
        out.append("{} journal lines name an account that does not exist".format(report["orphan_lines"]))
    for b in report["balances"]:
        out.append("  {:<15} {:5d} accounts  {:12d}".format(b["kind"], b["accounts"], b["balance"]))
    for a in report["accounts"]:
        out.append("{} holds {}, should hold {}: {}".format(a["account"], a["balance"], a["expected"], a["why"]))
    out.append("cards checked: {}".format(report["cards_checked"]))
    for d in report["differences"]:
        extra = f"; {d['unexplained_postings']} posted without a record" if d["unexplained_postings"] else ""
        if d["reason"]:
            extra += "; " + d["reason"]
        out.append(f"card {d['card_no']} ({d['uid']}, {d['status']}, chain {d['chain']}): shadow {d['shadow']}, "
                   f"records say {d['expected']} -> difference {d['difference']}{extra}")
    for d in report["pending"]:
        out.append(f"card {d['card_no']}: records still arriving (chain pending): shadow {d['shadow']}, "
                   f"records so far say {d['expected']}")
    out.append("audit {}".format("OK" if report["ok"] else "FAILED"))
    return out
