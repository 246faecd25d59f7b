"""Card chain state held in memory and written behind: uploads neither read nor rewrite
``card_chain`` rows for cards they have seen.

The server process keeps every card's chain state it has touched. A batch changes the
cached states in place inside its write transaction (every reader of the cache holds the
database write lock too) and marks them dirty just before its commit; if the transaction
fails, ``reset`` forgets the cache and derives what was not written again from the stored
records. Dirty states go to ``card_chain`` every
``FLUSH_EVERY_S`` seconds or ``FLUSH_CARDS`` cards (inside an upload transaction), before
any admin request or sweep, and at shutdown. ``meta.chain_rid`` records up to which record
``card_chain`` is exact; at start (and after a failed commit) the cards of later records are
derived again from their stored records, whose statuses say how the check judged them.
Other processes bump ``chain_epoch`` when they change ``card_chain``; the cache then
writes its dirty states and starts over. A throwaway cache (``write_through``) writes at
every batch, for callers without a server.

Usage::

    cache = ChainCache()
    cache.recover(db)                        # at start
    states = cache.load(db, uids)            # the cached states, inside the batch transaction
    cache.install(db, states)                # before commit (cache.reset(db) if it fails)
    cache.flush(db)                          # before reading card_chain elsewhere
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from sync_server import chain, store
from sync_server import status as st
from sync_server.store import config as cfg
from sync_server.store import records as rstore

EPOCH = "chain_epoch"
WATERMARK = "chain_rid"
FLUSH_EVERY_S = 10.0
FLUSH_CARDS = 50_000
MAX_CARDS = 1_000_000


def bump_epoch(db: store.Database) -> None:
    """Tell running servers that ``card_chain`` changed behind ingest's back."""
    cfg.set_meta(db, EPOCH, cfg.get_meta(db, EPOCH) + 1)


class ChainCache:
    def __init__(self, write_through: bool = False) -> None:
        self.write_through = write_through
        self._cards: dict[bytes, chain.CardState] = {}
        self._dirty: dict[bytes, chain.CardState] = {}
        self._epoch = -1
        self._flushed = time.monotonic()
        self.lock = threading.RLock()

    def load(self, db: store.Database, uids: Sequence[bytes]) -> dict[bytes, chain.CardState]:
        """The cached chain states of the issued cards among ``uids``, to change in place.

        Call it inside the batch's write transaction: the database lock is always taken
        before this cache's lock, so a flush from another thread cannot deadlock with it,
        and no other thread sees the states until the batch commits. If the transaction
        fails after this call, call ``reset``.
        """
        with self.lock:
            epoch = cfg.get_meta(db, EPOCH)
            if epoch != self._epoch or len(self._cards) > MAX_CARDS:
                self.flush(db)
                self._cards.clear()
                self._epoch = epoch
            cards = self._cards
            found = list(map(cards.get, uids))
            if all(found):  # the usual batch: every card cached
                return dict(zip(uids, found))
            out = {uid: state for uid, state in zip(uids, found) if state is not None}
            missing = [uid for uid, state in zip(uids, found) if state is None]  # new, or never issued
            for uid, row in rstore.card_states(db, missing).items():
                out[uid] = cards[uid] = chain.CardState(uid, row)
            return out

    def install(self, db: store.Database, states: dict[bytes, chain.CardState]) -> None:
        """Mark a batch's states dirty (call last inside its transaction); flush when due."""
        with self.lock:
            self._dirty.update(states)
            if (self.write_through or len(self._dirty) >= FLUSH_CARDS
                    or time.monotonic() - self._flushed >= FLUSH_EVERY_S):
                self.flush(db)

    def flush(self, db: store.Database) -> int:
        """Write dirty states to ``card_chain`` and move the watermark; returns cards written."""
        self._flushed = time.monotonic()
        if not self._dirty:
            return 0
        with store.transaction(db), self.lock:  # always the database lock first, then ours
            n = len(self._dirty)
            rstore.update_chains(db, [s.update_row() for s in self._dirty.values()])
            cfg.set_meta(db, WATERMARK, rstore.max_rid(db))
            self._dirty.clear()
            return n

    def reset(self, db: store.Database) -> None:
        """Forget everything (a commit failed): rebuild what was not written from the records."""
        with store.transaction(db), self.lock:
            self._cards.clear()
            self._dirty.clear()
            self.recover(db)

    def recover(self, db: store.Database) -> int:
        """Derive ``card_chain`` of cards with records past the watermark; returns cards fixed."""
        with store.transaction(db), self.lock:
            mark = cfg.get_meta(db, WATERMARK)
            by_uid = rstore.records_after(db, mark)
            states = rstore.card_states(db, list(by_uid))
            rows = []
            for uid, row in states.items():
                derived = derive(chain.CardState(uid, row), rstore.card_records(db, uid), int(time.time()))
                rows.append(derived.update_row())
            rstore.update_chains(db, rows)
            cfg.set_meta(db, WATERMARK, rstore.max_rid(db))
            return len(rows)


def derive(state: chain.CardState, rows: list[dict[str, Any]], now: int) -> chain.CardState:
    """A card's chain state from all its stored records (as the check judged them)."""
    linked = [r for r in rows if r["status"] in (st.LINKED, st.BREAK)]
    posted = [r for r in rows if r["status"] in st.POSTED]
    if linked:
        top = max(linked, key=lambda r: (r["counter"], r["status"] == st.LINKED))
        state.head, state.head_balance = top["counter"], top["balance_after"]
    if posted:
        top = max(posted, key=lambda r: (r["counter"], r["status"] != st.CLONE))
        state.top, state.top_balance = top["counter"], top["balance_after"]
        if state.top_balance < 0:
            state.credit_since = state.credit_since or top["time"]
        else:
            state.credit_since = None
    if state.state not in ("clone", "break", "quarantined"):
        if any(r["status"] == st.CLONE for r in rows):
            state.state = "clone"
        elif any(r["status"] == st.BREAK for r in rows):
            state.state = "break"
        elif state.top > state.head:
            state.state, state.since = "pending", state.since or now
        else:
            state.state, state.since = "ok", None
    return state
