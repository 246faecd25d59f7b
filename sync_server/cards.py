"""Card lifecycle: issue, loss and un-report, replacement, top-up, suspension, cancellation,
bulk freeze, corrections, and the blacklist moves each of them makes.

Every function takes the database and the time and runs in one transaction. A card is found
by card number or UID hex (``find``). Status words: active, lost, replaced, suspended,
frozen, cancelled, blocked (clone or forged purse). Every status but active puts the card on
the blacklist; it leaves the list when it becomes active again or its validity ends.

Usage::

    c = cards.issue(db, now, uid=bytes.fromhex("04A1B2C3"), card_no="S2024001", holder_id="2024001",
                    ctype=CARD_STUDENT, valid_from=now, valid_until=now + 4 * 365 * 86400)
    cards.top_up(db, now, "S2024001", 10000)          # a pending load of 100.00
    cards.report_loss(db, now, "S2024001")            # on the blacklist at once
"""

from __future__ import annotations

import datetime
from typing import Any

from protocol import card_layout, messages, records, uidlist
from protocol.errors import ProtocolError
from sync_server import params, store
from sync_server.errors import Conflict, Invalid, NotFound
from sync_server.store import access as astore
from sync_server.store import cards as cstore
from sync_server.store import ledger as lstore
from sync_server.store import records as rstore
from sync_server.store import terminals as tstore

SHORT_TERM_TYPES = (card_layout.CARD_IDENTITY, card_layout.CARD_TEMPORARY)
MAX_LOAD = 1_000_000  # 10,000.00 in one load


def type_of(name: str | int) -> int:
    """Card type number from its name (staff, student, identity, temporary) or number."""
    if isinstance(name, int) and 0 < name < len(card_layout.CARD_TYPE_NAMES):
        return name
    if isinstance(name, str) and name.lower() in card_layout.CARD_TYPE_NAMES[1:]:
        return card_layout.CARD_TYPE_NAMES.index(name.lower())
    raise Invalid("unknown card type {!r}: use one of {}".format(name, ", ".join(card_layout.CARD_TYPE_NAMES[1:])))


def parse_uid(text: str | bytes) -> bytes:
    """The 7-byte UID key of a UID given as hex (4 or 7 bytes) or bytes."""
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else bytes(text)
        return uidlist.uid_key(raw)
    except (ValueError, ProtocolError) as e:
        raise Invalid(f"card UID {text!r} must be 4 or 7 bytes of hex (e.g. 04A1B2C3): {e}") from None


def uid_hex(key: bytes) -> str:
    return uidlist.uid_from_key(key).hex().upper()


def find(db: store.Database, ref: str) -> dict[str, Any]:
    """The card with card number ``ref``, or UID ``ref`` in hex; ``NotFound`` otherwise."""
    row = cstore.card(db, card_no=ref)
    if row is None:
        try:
            row = cstore.card(db, uid=uidlist.uid_key(bytes.fromhex(ref)))
        except (ValueError, ProtocolError):
            row = None
    if row is None:
        raise NotFound(f"Card {ref} is not registered (give its card number or UID hex).")
    return row


def _one_year_after(tz: Any, start: int) -> int:
    d = datetime.datetime.fromtimestamp(start, tz).date()
    try:
        end = d.replace(year=d.year + 1)
    except ValueError:  # 29 February
        end = d.replace(year=d.year + 1, day=28)
    return params.local_date_end(tz, end)


def issue(db: store.Database, now: int, uid: bytes, card_no: str, holder_id: str, ctype: int,
          valid_from: int, valid_until: int) -> dict[str, Any]:
    """Register a new card (its purse starts at 0; money arrives as pending loads)."""
    if not card_no or not holder_id:
        raise Invalid("a card needs a card number and a holder id")
    if valid_until <= valid_from:
        raise Invalid("validity must end after it starts")
    if valid_until <= now:
        raise Invalid("validity ends in the past; a card must be valid for some time from now")
    if ctype in SHORT_TERM_TYPES and valid_until > _one_year_after(params.zone(db), valid_from):
        raise Invalid(f"{card_layout.CARD_TYPE_NAMES[ctype]} cards are valid for at most one year: validity "
                      f"{_day(db, valid_from)}..{_day(db, valid_until)} is longer; shorten it")
    with store.transaction(db):
        if cstore.card(db, uid=uid) is not None:
            raise Conflict(f"Card UID {uid_hex(uid)} is already registered.")
        if cstore.card(db, card_no=card_no) is not None:
            raise Conflict(f"Card number {card_no} is already registered.")
        cid = cstore.insert_card(db, uid, card_no, holder_id, ctype, valid_from, valid_until, now)
        cstore.log(db, cid, now, "issue", f"{card_layout.CARD_TYPE_NAMES[ctype]} card for holder {holder_id}")
        astore.bump_epoch(db, cid)  # door groups granted to its card type take it in
    return show(db, card_no)


def _day(db: store.Database, t: int) -> str:
    return datetime.datetime.fromtimestamp(t, params.zone(db)).date().isoformat()


def set_status(db: store.Database, card: dict[str, Any], status: str, reason: str, now: int) -> None:
    cstore.set_status(db, card["id"], status, reason, now)
    cstore.log(db, card["id"], now, status, reason)
    astore.bump_epoch(db, card["id"])  # only active cards are on door access lists
    if status == "active":
        cstore.blacklist_remove(db, card["uid"], now)
    else:
        cstore.blacklist_add(db, card["uid"], card["id"], f"{status}: {reason}" if reason else status,
                             card["valid_until"], now)


def _require(card: dict[str, Any], allowed: tuple[str, ...], action: str) -> None:
    if card["status"] not in allowed:
        raise Conflict("Card {} is {}{}; cannot {}.".format(
            card["card_no"], card["status"], " ({})".format(card["status_reason"]) if card["status_reason"] else "",
            action))


def report_loss(db: store.Database, now: int, ref: str, reason: str = "reported lost") -> dict[str, Any]:
    with store.transaction(db):
        card = find(db, ref)
        _require(card, ("active", "suspended", "frozen"), "report it lost")
        set_status(db, card, "lost", reason, now)
    return show(db, ref)


def cancel_loss(db: store.Database, now: int, ref: str) -> dict[str, Any]:
    with store.transaction(db):
        card = find(db, ref)
        if card["replaced_by"]:
            raise Conflict("Card {} was replaced; a replaced card stays void for good.".format(card["card_no"]))
        _require(card, ("lost",), "cancel a loss report")
        set_status(db, card, "active", "loss report cancelled", now)
    return show(db, ref)


def replace(db: store.Database, now: int, ref: str, new_uid: bytes, new_card_no: str) -> dict[str, Any]:
    """Void the old card for good and issue its successor; the balance follows after the wait."""
    with store.transaction(db):
        old = find(db, ref)
        _require(old, ("active", "lost", "suspended", "frozen", "blocked"), "replace it")
        issue(db, now, new_uid, new_card_no, old["holder_id"], old["type"], now, old["valid_until"])
        set_status(db, old, "replaced", f"replaced by card {new_card_no}", now)
        new_id = cstore.card(db, uid=new_uid)["id"]
        cstore.set_replaced(db, old["id"], new_id, now)
        astore.copy_card_access(db, old["id"], new_id, now)  # the new card opens the same doors
        cstore.log(db, new_id, now, "replacement", "replaces card {}".format(old["card_no"]))
    return show(db, new_card_no)


def block(db: store.Database, card_id: int, reason: str, now: int) -> None:
    """Blacklist a card the chain check caught as cloned or forged (inside ingest's transaction)."""
    card = cstore.card(db, card_id=card_id)
    if card is None:
        return
    if card["status"] in ("active", "lost", "suspended", "frozen"):
        set_status(db, card, "blocked", reason, now)
    else:
        cstore.blacklist_add(db, card["uid"], card_id, "blocked: " + reason, card["valid_until"], now)
        cstore.log(db, card_id, now, "blocked", reason)


def split(before: int, after: int) -> tuple[int, int]:
    """How a balance change from ``before`` to ``after`` splits into (purse, credit) lines:
    the purse holds the positive part of the balance, the credit account the negative part."""
    return max(after, 0) - max(before, 0), min(after, 0) - min(before, 0)


def shadow_balance(db: store.Database, card: dict[str, Any]) -> int:
    """What the ledger says the card holds: its purse and credit-wallet accounts together."""
    return lstore.card_balance(db, card["purse_acct"], card["credit_acct"], card["uid"])


def card_lines(db: store.Database, card: dict[str, Any], delta: int) -> list[tuple[int, int]]:
    """Journal lines moving ``delta`` onto the card, split between purse and credit."""
    before = shadow_balance(db, card)
    purse, credit = split(before, before + delta)
    return [(card["purse_acct"], purse), (card["credit_acct"], credit)]


def _load(db: store.Database, now: int, card: dict[str, Any], amount: int, kind: int, note: str,
          posting_kind: str, source_acct: int, corrects: int | None = None) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_LOAD:
        raise Invalid(f"load amount must be 1..{MAX_LOAD} cents, got {amount!r}")
    seq = cstore.add_load(db, card["id"], amount, kind, now, note, corrects)
    posting = lstore.new_posting(db, posting_kind, now, card_id=card["id"], note=note)
    lstore.add_entries(db, posting, [(source_acct, -amount),
                                     (lstore.account(db, "in_transit"), amount)])
    cstore.log(db, card["id"], now, "load", f"pending load {seq} of {amount} ({note})")
    return seq


def top_up(db: store.Database, now: int, ref: str, amount: int, note: str = "top-up") -> dict[str, Any]:
    """Money received for the card becomes a pending load the card collects at any POS.

    A card frozen for an unpaid credit wallet is unfrozen when the top-up covers the debt.
    """
    with store.transaction(db):
        card = find(db, ref)
        _require(card, ("active", "frozen"), "top it up")
        if card["status"] == "frozen":
            debt = -min(0, cstore.chain(db, card["id"])["top_balance"]) + replaced_debt(db, card)
            if not card["status_reason"].startswith("credit") or amount < debt:
                raise Conflict("Card {} is frozen ({}); a top-up unfreezes it only if it repays the {} of "
                               "credit".format(card["card_no"], card["status_reason"], debt))
            set_status(db, card, "active", f"credit repaid by a top-up of {amount}", now)
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_LOAD:
            raise Invalid(f"load amount must be 1..{MAX_LOAD} cents, got {amount!r}")
        rest = amount - _repay_replaced(db, now, card, amount)
        if rest:
            _load(db, now, card, rest, messages.LOAD_TOPUP, note, "topup", lstore.account(db, "topup_received"))
    return show(db, ref)


def _replaced_debts(db: store.Database, card: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """(card, credit left on it) for the cards this one replaced, and the cards those replaced."""
    out = []
    olds = cstore.replaced_into(db, card["id"])
    while olds:
        old = olds.pop(0)
        olds += cstore.replaced_into(db, old["id"])
        debt = -shadow_balance(db, old)
        if debt > 0:
            out.append((old, debt))
    return out


def replaced_debt(db: store.Database, card: dict[str, Any]) -> int:
    """Credit left on the cards this one replaced: the holder owes it, the next top-ups repay it."""
    return sum(debt for _, debt in _replaced_debts(db, card))


def _repay_replaced(db: store.Database, now: int, card: dict[str, Any], amount: int) -> int:
    """Repay, out of a top-up, credit left on the cards this one replaced (the debt follows the
    holder, and a load repays credit first); returns the cents used."""
    used = 0
    for old, debt in _replaced_debts(db, card):
        repay = min(debt, amount - used)
        if repay <= 0:
            break
        posting = lstore.new_posting(db, "debt_repay", now, card_id=old["id"], note=f"by card {card['card_no']}")
        lstore.add_entries(db, posting, card_lines(db, old, repay) + [(lstore.account(db, "topup_received"), -repay)])
        cstore.log(db, old["id"], now, "credit", f"{repay} of its credit repaid by a top-up of card {card['card_no']}")
        cstore.log(db, card["id"], now, "load", f"{repay} of a top-up of {amount} repaid the credit left on "
                                                f"replaced card {old['card_no']}")
        used += repay
    return used


def correct(db: store.Database, now: int, ref: str, amount: int, merchant_id: int | None, note: str,
            sale: tuple[int, int] | None = None) -> dict[str, Any]:
    """A correction (wrong debit refunded by the merchant) as a pending load; never an edit.

    With ``sale`` (terminal id, seq) it names the debit it corrects: at most what the sale took
    less earlier corrections of it, out of that terminal's merchant's payable, or its held
    account for a sale from a till kept offline (held until approved)."""
    with store.transaction(db):
        card = find(db, ref)
        _require(card, ("active",), "correct its balance")
        kind, rid = "merchant", None
        if sale is not None:
            tid, seq = sale
            rows = rstore.record_rows(db, tid, [seq])
            if not rows or rows[0]["uid"] != card["uid"] or rows[0]["type"] != records.PURCHASE:
                raise NotFound(f"Terminal {tid} has no sale #{seq} on card {card['card_no']}.")
            rid = rows[0]["rid"]
            left = rows[0]["amount"] - cstore.corrected(db, rid)
            if amount > left:
                raise Invalid(f"sale #{seq} of terminal {tid} took {rows[0]['amount']}, of which {left} is not "
                              f"given back yet by corrections: a correction of it can give back at most that, "
                              f"not {amount}")
            owner = tstore.merchants_of(db, [tid]).get(tid)
            if merchant_id is not None and merchant_id != owner:
                raise Invalid(f"sale #{seq} was made at terminal {tid} of merchant {owner}, not merchant {merchant_id}")
            merchant_id = owner
            kind = "merchant_held" if rows[0]["held"] else "merchant"
        elif merchant_id is None:
            raise Invalid("name the merchant that gives the money back (merchant_id) or the sale (terminal_id, seq)")
        if merchant_id is None or tstore.merchant(db, merchant_id) is None:
            raise NotFound(f"Merchant {merchant_id} does not exist.")
        _load(db, now, card, amount, messages.LOAD_CORRECTION, note or "correction", "correction",
              lstore.account(db, kind, merchant_id), rid)
    return show(db, ref)


def suspend(db: store.Database, now: int, ref: str, reason: str = "suspended") -> dict[str, Any]:
    with store.transaction(db):
        card = find(db, ref)
        _require(card, ("active",), "suspend it")
        set_status(db, card, "suspended", reason, now)
    return show(db, ref)


def resume(db: store.Database, now: int, ref: str) -> dict[str, Any]:
    with store.transaction(db):
        card = find(db, ref)
        _require(card, ("suspended", "frozen"), "resume it")
        set_status(db, card, "active", "resumed", now)
    return show(db, ref)


def bulk_freeze(db: store.Database, now: int, refs: list[str], reason: str) -> dict[str, Any]:
    """Freeze many cards (graduation); reports which were frozen, skipped or unknown."""
    frozen, skipped, unknown = [], [], []
    with store.transaction(db):
        found = cstore.cards_by_refs(db, refs)
        for ref in refs:
            card = found.get(ref)
            if card is None:
                unknown.append(ref)
            elif card["status"] != "active":
                skipped.append("{} ({})".format(ref, card["status"]))
            else:
                set_status(db, card, "frozen", reason, now)
                frozen.append(ref)
    return {"frozen": frozen, "skipped": skipped, "unknown": unknown}


def cancel(db: store.Database, now: int, ref: str, refund_to: str = "bank", force: bool = False
           ) -> dict[str, Any]:
    """Cancel a card on leaving: final balance, loads withdrawn, refund (or donation) recorded."""
    if refund_to not in ("bank", "cash", "donation"):
        raise Invalid(f"refund_to must be bank, cash or donation, got {refund_to!r}")
    with store.transaction(db):
        card = find(db, ref)
        _require(card, ("active", "lost", "suspended", "frozen", "blocked", "replaced"), "cancel it")
        if card["transferred"]:
            raise Conflict("Card {} was replaced and its balance moved to the new card: cancel that one "
                           "instead".format(card["card_no"]))
        chain_row = cstore.chain(db, card["id"])
        if chain_row["state"] in ("pending", "quarantined") and not force:
            raise Conflict("Card {} still has records missing (chain {}); wait for them or use "
                           "force".format(card["card_no"], chain_row["state"]))
        holders = tstore.holding_records(db, "pos")  # tills: doors hold no sales
        if holders and not force:
            raise Conflict("records still held by {} may include sales of card {}: refunding now could pay "
                           "them twice; wait until those terminals have synced, or use force".format(
                               holders_text(holders), card["card_no"]))
        final = _withdraw(db, now, card, "cancellation")
        refund = max(final, 0)
        if refund:
            posting = lstore.new_posting(db, "refund", now, card_id=card["id"], note=refund_to)
            lstore.add_entries(db, posting, card_lines(db, card, -refund) + [
                (lstore.account(db, "donations" if refund_to == "donation" else "refunds_paid"), refund)])
        verb = "donated" if refund_to == "donation" else "refunded"
        set_status(db, card, "cancelled", f"final balance {final}, {verb} {refund}", now)
        rstore.resolve_anomalies(db, "transfer_blocked", now, uid=card["uid"])
    out = show(db, ref)
    out["final_balance"], out["refund"] = final, refund
    return out


def holders_text(holders: list[dict[str, Any]]) -> str:
    """``tstore.holding_records`` in words: "terminal 4 (3 unacked), terminal 9 (sequence gap)"."""
    return ", ".join("terminal {} ({})".format(h["id"], "{} unacked".format(h["not_stored"]) if h["not_stored"]
                                               else "sequence gap") for h in holders)


def _withdraw(db: store.Database, now: int, card: dict[str, Any], why: str) -> int:
    """Cancel the card's uncollected loads back onto its purse; return its whole balance."""
    cancelled = cstore.cancel_pending_loads(db, card["id"])
    if cancelled:
        posting = lstore.new_posting(db, "load_cancel", now, card_id=card["id"], note=why)
        lstore.add_entries(db, posting, [(lstore.account(db, "in_transit"), -cancelled)]
                           + card_lines(db, card, cancelled))
    return shadow_balance(db, card)


def successor(db: store.Database, old: dict[str, Any]) -> dict[str, Any] | None:
    """The card a replaced card's balance goes to: its replacement, or, if that was replaced
    in turn, the last card of the chain."""
    new = cstore.card(db, card_id=old["replaced_by"])
    seen = {old["id"]}
    while new is not None and new["status"] == "replaced" and new["replaced_by"] and new["id"] not in seen:
        seen.add(new["id"])
        new = cstore.card(db, card_id=new["replaced_by"])
    return new


def transfer(db: store.Database, now: int, old: dict[str, Any], fee: int) -> int:
    """Move a replaced card's balance (less the fee) to its successor as a pending load."""
    new = successor(db, old)
    balance = _withdraw(db, now, old, "replacement")
    taken = min(fee, max(balance, 0))
    moved = max(balance, 0) - taken
    if balance > 0:
        posting = lstore.new_posting(db, "transfer_out", now, card_id=old["id"],
                                     note="to card {}".format(new["card_no"] if new else "?"))
        lines = card_lines(db, old, -balance) + [(lstore.account(db, "fees"), taken)]
        if moved and new is not None:
            cstore.add_load(db, new["id"], moved, messages.LOAD_CARD_TRANSFER, now,
                            "balance of replaced card {}".format(old["card_no"]))
            cstore.log(db, new["id"], now, "load", "pending transfer of {} from card {}".format(moved, old["card_no"]))
        lines.append((lstore.account(db, "in_transit"), moved))
        lstore.add_entries(db, posting, lines)
    cstore.set_transferred(db, old["id"])
    cstore.log(db, old["id"], now, "transfer", f"balance {balance}: fee {taken}, {moved} moved to the new card")
    return moved


def show(db: store.Database, ref: str, records_limit: int = 20) -> dict[str, Any]:
    """Everything about one card: identity, status, chain, balances, loads, records, history."""
    card = find(db, ref)
    chain_row = cstore.chain(db, card["id"])
    bl = cstore.blacklisted(db, card["uid"])
    recs = rstore.recent_records(db, card["uid"], records_limit)
    from sync_server import status as st

    return {
        "card_no": card["card_no"], "uid": uid_hex(card["uid"]), "holder_id": card["holder_id"],
        "type": card_layout.CARD_TYPE_NAMES[card["type"]], "valid_from": card["valid_from"],
        "valid_until": card["valid_until"], "status": card["status"], "status_reason": card["status_reason"],
        "replaced_by": card["replaced_by"], "transferred": bool(card["transferred"]),
        "shadow_balance": shadow_balance(db, card),
        "credit_used": -lstore.card_credit(db, card["credit_acct"], card["uid"]),
        "in_transit": cstore.in_transit(db, card["id"]),
        "chain": {"state": chain_row["state"], "head_counter": chain_row["head_counter"],
                  "head_balance": chain_row["head_balance"], "top_counter": chain_row["top_counter"],
                  "reported_balance": chain_row["top_balance"], "credit_since": chain_row["credit_since"]},
        "blacklisted": None if bl is None else {"reason": bl["reason"], "version": bl["version"]},
        "loads": cstore.loads_of(db, card["id"]),
        "records": [{"terminal_id": r["terminal_id"], "seq": r["seq"], "counter": r["counter"],
                     "type": r["type"], "amount": r["amount"], "balance_after": r["balance_after"],
                     "time": r["time"], "status": st.NAMES.get(r["status"], "?")} for r in recs],
        "log": cstore.card_log(db, card["id"]),
    }
