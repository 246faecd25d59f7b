"""SQL for accounts, postings and entries, and the queries the audit runs over ``journal``."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from sync_server.store import cardindex

# Accounts that exist once (ref 0), as opposed to per card or per merchant.
SINGLETONS = ("topup_received", "in_transit", "refunds_paid", "donations", "fees", "suspense")


def account(db: Database, kind: str, ref: int = 0) -> int:
    """The id of account (kind, ref), created on first use."""
    row = db.execute("SELECT id FROM accounts WHERE kind = ? AND ref = ?", [kind, ref]).fetchone()
    if row is not None:
        return row[0]
    cur = db.execute("INSERT INTO accounts (kind, ref) VALUES (?, ?)", [kind, ref])
    return int(cur.lastrowid or 0)


def new_posting(db: Database, kind: str, now: int, card_id: int | None = None,
                terminal_id: int | None = None, note: str = "") -> int:
    cur = db.execute("INSERT INTO postings (kind, time, card_id, terminal_id, note) VALUES (?, ?, ?, ?, ?)",
                     [kind, now, card_id, terminal_id, note])
    return int(cur.lastrowid or 0)


def add_entries(db: Database, posting: int, lines: list[tuple[int, int]]) -> None:
    db.conn.executemany("INSERT INTO entries (posting, account, amount) VALUES (?, ?, ?)",
                   [(posting, acct, amount) for acct, amount in lines if amount])


def account_balance(db: Database, acct: int) -> int:
    """Sum over the journal (entries and record lines) of one account."""
    row = db.execute("SELECT COALESCE(SUM(amount), 0) FROM journal WHERE account = ?", [acct]).fetchone()
    return row[0]


def _entries_balance(db: Database, acct: int) -> int:
    return db.execute("SELECT COALESCE(SUM(amount), 0) FROM entries WHERE account = ?", [acct]).fetchone()[0]


def _card_lines(db: Database, uid: bytes) -> tuple[int, int]:
    """(purse, credit) sums of one card's record lines, found through the card index (the
    journal view would sum every record of every card to answer for one)."""
    mark, rids = cardindex.lookup(db, uid)
    row = db.execute(
        "SELECT COALESCE(SUM(purse), 0), COALESCE(SUM(credit), 0) FROM ("
        "SELECT purse, credit FROM records WHERE rid IN (SELECT value FROM json_each(?)) AND uid = ? "
        "UNION ALL SELECT purse, credit FROM records WHERE rid > ? AND uid = ?)",
        [json.dumps(rids), uid, mark, uid]).fetchone()
    return row[0], row[1]


def card_balance(db: Database, purse_acct: int, credit_acct: int, uid: bytes) -> int:
    """Shadow balance of one card: its purse plus its (non-positive) credit account."""
    purse, credit = _card_lines(db, uid)
    return _entries_balance(db, purse_acct) + _entries_balance(db, credit_acct) + purse + credit


def card_credit(db: Database, credit_acct: int, uid: bytes) -> int:
    """Balance of one card's credit-wallet account (zero or negative)."""
    return _entries_balance(db, credit_acct) + _card_lines(db, uid)[1]


def balances_by_kind(db: Database) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT a.kind, COUNT(DISTINCT a.id), COALESCE(SUM(j.amount), 0) FROM journal j "
        "JOIN accounts a ON a.id = j.account GROUP BY a.kind ORDER BY a.kind").fetchall()
    return [{"kind": k, "accounts": n, "balance": s} for k, n, s in rows]


def journal_total(db: Database) -> tuple[int, int]:
    """(sum of every journal line, number of lines)."""
    total, count = db.execute("SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM journal").fetchone()
    return total, count


def unbalanced_postings(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT j.posting, p.kind, SUM(j.amount) AS s FROM journal j LEFT JOIN postings p ON p.id = j.posting "
        "GROUP BY j.posting HAVING s != 0 ORDER BY j.posting LIMIT ?", [limit]).fetchall()
    return [{"posting": pid, "kind": kind, "sum": s} for pid, kind, s in rows]


def orphan_lines(db: Database) -> int:
    """Journal lines whose account does not exist."""
    return db.execute("SELECT COUNT(*) FROM journal j LEFT JOIN accounts a ON a.id = j.account "
                      "WHERE a.id IS NULL").fetchone()[0]


def card_audit_rows(db: Database, allowed_kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per card: shadow balance, the part posted from records, the part from postings of
    ``allowed_kinds`` (transfers, refunds), the rest, and its chain state."""
    marks = ",".join("?" * len(allowed_kinds))
    sql = f"""
    WITH card_lines AS (
        SELECT c.id AS card_id, j.amount, j.rid, p.kind AS pkind
          FROM cards c JOIN journal j ON j.account IN (c.purse_acct, c.credit_acct)
          LEFT JOIN postings p ON p.id = j.posting)
    SELECT c.id, c.uid, c.card_no, c.status, c.status_reason, ch.state,
           COALESCE(SUM(l.amount), 0),
           COALESCE(SUM(CASE WHEN l.rid IS NOT NULL THEN l.amount END), 0),
           COALESCE(SUM(CASE WHEN l.rid IS NULL AND l.pkind IN ({marks}) THEN l.amount END), 0),
           COALESCE(SUM(CASE WHEN l.rid IS NULL AND (l.pkind IS NULL OR l.pkind NOT IN ({marks}))
                             THEN l.amount END), 0)
      FROM cards c JOIN card_chain ch ON ch.card_id = c.id
      LEFT JOIN card_lines l ON l.card_id = c.id
     GROUP BY c.id ORDER BY c.id"""
    names = ("card_id", "uid", "card_no", "status", "reason", "state", "shadow", "from_records",
             "adjustments", "unexplained")
    rows = db.execute(sql, list(allowed_kinds) * 2).fetchall()
    return [dict(zip(names, row)) for row in rows]


def reported_balances(db: Database, posted: tuple[int, ...], clone: int) -> dict[int, tuple[int, int]]:
    """card id -> (counter, balance after) of its highest-counter posted record, read from
    ``records`` alone (not from the chain state the audit is checking); at a counter used
    twice the record not marked ``clone`` (the first to arrive) is the card's word."""
    sql = """
    SELECT c.id, r.counter, r.balance_after FROM records r JOIN cards c ON c.uid = r.uid
     WHERE r.status IN ({}) ORDER BY c.id, r.counter, r.status = {} DESC, r.rid""".format(
        ",".join(str(int(p)) for p in posted), int(clone))
    out: dict[int, tuple[int, int]] = {}
    for card_id, counter, balance in db.execute(sql):
        out[card_id] = (counter, balance)
    return out
