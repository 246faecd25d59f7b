"""Periodic housekeeping: the time-driven rules of the card office.

* a chain hole older than the settle time: ``pending`` -> ``quarantined`` for review
  (never frozen: the card keeps working; the anomaly names terminals still holding records);
* a card in credit longer than ``credit_repay_days``: frozen and blacklisted (for credit left
  on a replaced card, the card that replaced it);
* a replaced card after ``replacement_wait_s`` (72 h) whose chain has settled and while no
  terminal says it holds unuploaded records: its balance, less the replacement fee, becomes a
  pending load for the new card (an anomaly ``transfer_waiting`` names the terminals meanwhile);
* blacklist entries of cards past their validity leave the list; old log entries and nonces
  are pruned; the record index catches up;
* door access lists are recomputed where a card event or an expiry changed them (doors would
  otherwise trigger it at their next sync) and versions older than ``access_log_keep_s`` are
  forgotten.

The server runs it at most every 30 s from terminal traffic, and on ``POST /admin/sweep``.

Usage::

    summary = sweep.run(db, now)      # {"quarantined": 0, "frozen": 1, "transferred": 0, ...}
"""

from __future__ import annotations

from typing import Any

from protocol import messages
from sync_server import access, cards, chaincache, params, store
from sync_server.store import access as astore
from sync_server.store import cards as cstore
from sync_server.store import records as rstore
from sync_server.store import terminals as tstore


def run(db: store.Database, now: int) -> dict[str, Any]:
    s = params.settings(db)
    out = {"quarantined": 0, "frozen": 0, "transferred": 0, "transfers_waiting": 0, "expired": 0, "nonces_pruned": 0,
           "door_groups_refreshed": 0}
    with store.transaction(db):
        holders = tstore.holding_records(db)
        for c in cstore.stale_pending_chains(db, now - s["settle_time_s"]):
            cstore.set_chain_state(db, c["id"], "quarantined", now)
            chaincache.bump_epoch(db)
            who = cards.holders_text(holders) if holders else "none"
            rstore.add_anomalies(db, [(now, "chain_quarantined", None, None, c["uid"],
                                       "card {}: counters after {} still missing after the settle time; "
                                       "quarantined for review (terminals still holding records: "
                                       "{})".format(c["card_no"], c["head_counter"], who))])
            out["quarantined"] += 1
        days = s["credit_repay_days"]
        for c in cstore.overdue_credit(db, now - days * 86400):
            card = cstore.card(db, card_id=c["id"])
            if card is None:
                continue
            cards.set_status(db, card, "frozen", "credit of {} not repaid within {} "
                                                 "days".format(-c["top_balance"], days),
                       now)
            out["frozen"] += 1
        tills = [h for h in holders if h["role"] == "pos"]  # doors hold no sales
        for old in cstore.replaced_in_credit(db, now - days * 86400):  # the debt follows the holder
            debt = -cards.shadow_balance(db, old)
            heir = cards.successor(db, old)
            if debt > 0 and heir is not None and heir["status"] == "active":
                cards.set_status(db, heir, "frozen", "credit of {} left on replaced card {} not repaid within {} "
                                                     "days".format(debt, old["card_no"], days), now)
                out["frozen"] += 1
        for old in cstore.due_transfers(db, now - s["replacement_wait_s"]):
            if old["chain_state"] in ("pending", "quarantined"):
                continue  # records of the old card still missing: wait for them
            if tills:  # any of them may hold a sale of the old card: moving now would pay it twice
                rstore.add_anomaly_once(db, now, "transfer_waiting", old["uid"],
                                        "card {}: balance not moved to its replacement yet: records still held by "
                                        "{} may include its sales".format(old["card_no"], cards.holders_text(tills)))
                out["transfers_waiting"] += 1
                continue
            heir = cards.successor(db, old)
            if heir is None or heir["status"] == "cancelled":
                rstore.add_anomaly_once(db, now, "transfer_blocked", old["uid"],
                                        "card {}: its replacement {} is cancelled, so its balance cannot move; "
                                        "cancel card {} to refund it".format(old["card_no"], heir["card_no"] if heir
                                                                             else "?", old["card_no"]))
                continue
            cards.transfer(db, now, old, s["replacement_fee"])
            rstore.resolve_anomalies(db, "transfer_waiting", now, uid=old["uid"])
            out["transferred"] += 1
        for uid in cstore.blacklist_expired(db, now):
            cstore.blacklist_remove(db, uid, now)
            out["expired"] += 1
        cstore.prune_blacklist_log(db, now - s["blacklist_log_keep_s"])
        out["door_groups_refreshed"] = access.refresh_stale(db, now)
        astore.prune_log(db, now - s["access_log_keep_s"])
        astore.prune_dirty(db)
        out["nonces_pruned"] = tstore.prune_nonces(db, now - 2 * messages.MAX_SKEW)
        rstore.catch_up_index(db, 1)
    return out
