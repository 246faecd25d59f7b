"""Numbered schema migrations of the sync server's SQLite database, applied in order at start.

Migration ``n`` is ``MIGRATIONS[n - 1]``; ``schema_version`` records the last one applied.
Never edit a migration that has shipped: append a new one.

Notes on the layout:

* ``records`` keeps one row per stored terminal record. It carries the card-side lines of
  its upload posting (``purse`` and ``credit``: signed cents moved on the card's purse and
  credit-wallet accounts), so the journal is the view ``journal``: ``entries`` plus those
  record lines. Every posting (``entries`` + record lines with the same ``posting``) sums
  to zero.
* The (uid, counter) index of ``records`` lives in a file of its own, ``<db>-index``
  (``store.cardindex``), built behind the uploads; migration 4 drops the ``card_index``
  table the first migrations kept here for it.
* ``access_lists`` holds each door group's lists as they were last computed (``store.access``);
  ``access_versions`` one row per version with its hash (version 0: empty), ``access_log``
  the keys each version added or removed, so a door gets a delta from the version it holds.
  ``access_dirty`` lists the cards touched by events since; ``door_groups.epoch`` is the last
  of its ids a door group has taken in.
"""

MIGRATIONS = [
    """
    CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE params (scope INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
                         PRIMARY KEY (scope, name));

    CREATE TABLE accounts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref INTEGER NOT NULL,
                           UNIQUE (kind, ref));

    CREATE TABLE merchants (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                            payable_acct INTEGER NOT NULL, held_acct INTEGER NOT NULL,
                            created INTEGER NOT NULL);

    CREATE TABLE terminals (
        id INTEGER PRIMARY KEY, merchant_id INTEGER NOT NULL REFERENCES merchants(id),
        role TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'active',
        created INTEGER NOT NULL,
        acked_seq INTEGER NOT NULL DEFAULT 0, acked_link BLOB, max_seq INTEGER NOT NULL DEFAULT 0,
        last_seen INTEGER, hb_time INTEGER, journal_fill INTEGER, unacked INTEGER,
        last_seq INTEGER, blacklist_version INTEGER, access_version INTEGER,
        offline_since INTEGER, firmware TEXT, clock_drift INTEGER);

    CREATE TABLE nonces (terminal_id INTEGER NOT NULL, nonce BLOB NOT NULL, ts INTEGER NOT NULL,
                         PRIMARY KEY (terminal_id, nonce)) WITHOUT ROWID;

    CREATE TABLE cards (
        id INTEGER PRIMARY KEY, uid BLOB NOT NULL UNIQUE, card_no TEXT NOT NULL UNIQUE,
        holder_id TEXT NOT NULL, type INTEGER NOT NULL,
        valid_from INTEGER NOT NULL, valid_until INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'active', status_reason TEXT NOT NULL DEFAULT '',
        status_at INTEGER, issued INTEGER NOT NULL,
        replaced_by INTEGER, replaced_at INTEGER, transferred INTEGER NOT NULL DEFAULT 0,
        load_seq INTEGER NOT NULL DEFAULT 0,
        purse_acct INTEGER NOT NULL, credit_acct INTEGER NOT NULL);
    CREATE INDEX cards_holder ON cards(holder_id);

    -- chain state per card: head = end of the linked prefix, top = highest counter posted.
    CREATE TABLE card_chain (
        card_id INTEGER PRIMARY KEY, head_counter INTEGER NOT NULL DEFAULT 0,
        head_balance INTEGER NOT NULL DEFAULT 0, top_counter INTEGER NOT NULL DEFAULT 0,
        top_balance INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'ok',
        state_since INTEGER, credit_since INTEGER);

    CREATE TABLE card_log (id INTEGER PRIMARY KEY, card_id INTEGER NOT NULL, at INTEGER NOT NULL,
                           action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
    CREATE INDEX card_log_card ON card_log(card_id);

    CREATE TABLE records (
        rid INTEGER PRIMARY KEY, terminal_id INTEGER NOT NULL, seq INTEGER NOT NULL,
        uid BLOB NOT NULL, counter INTEGER NOT NULL, type INTEGER NOT NULL,
        flags INTEGER NOT NULL, time INTEGER NOT NULL, amount INTEGER NOT NULL,
        balance_after INTEGER NOT NULL, status INTEGER NOT NULL, held INTEGER NOT NULL,
        purse INTEGER NOT NULL, credit INTEGER NOT NULL, posting INTEGER, raw BLOB NOT NULL);
    CREATE UNIQUE INDEX records_terminal_seq ON records(terminal_id, seq);

    CREATE TABLE card_index (uid BLOB NOT NULL, counter INTEGER NOT NULL, rid INTEGER NOT NULL,
                             PRIMARY KEY (uid, counter, rid)) WITHOUT ROWID;

    CREATE TABLE batches (id INTEGER PRIMARY KEY, terminal_id INTEGER NOT NULL,
                          received INTEGER NOT NULL, count INTEGER NOT NULL,
                          stored INTEGER NOT NULL, rejected INTEGER NOT NULL);

    CREATE TABLE postings (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, time INTEGER NOT NULL,
                           card_id INTEGER, terminal_id INTEGER, note TEXT NOT NULL DEFAULT '');
    CREATE TABLE entries (id INTEGER PRIMARY KEY, posting INTEGER NOT NULL,
                          account INTEGER NOT NULL, amount INTEGER NOT NULL);
    CREATE INDEX entries_account ON entries(account);

    CREATE TABLE loads (
        id INTEGER PRIMARY KEY, card_id INTEGER NOT NULL, seq INTEGER NOT NULL,
        amount INTEGER NOT NULL, kind INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        created INTEGER NOT NULL, collected_at INTEGER, rid INTEGER, note TEXT NOT NULL DEFAULT '',
        UNIQUE (card_id, seq));
    CREATE INDEX loads_status ON loads(status);

    CREATE TABLE blacklist (uid BLOB PRIMARY KEY, card_id INTEGER, reason TEXT NOT NULL,
                            version INTEGER NOT NULL, added INTEGER NOT NULL, expires INTEGER);
    CREATE TABLE blacklist_log (version INTEGER PRIMARY KEY, uid BLOB NOT NULL,
                                added INTEGER NOT NULL, at INTEGER NOT NULL);

    CREATE TABLE anomalies (
        id INTEGER PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL, terminal_id INTEGER,
        seq INTEGER, uid BLOB, detail TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open',
        resolved_at INTEGER);
    CREATE INDEX anomalies_status ON anomalies(status, kind);

    CREATE TABLE seq_gaps (terminal_id INTEGER NOT NULL, first_seq INTEGER NOT NULL,
                           last_seq INTEGER NOT NULL, since INTEGER NOT NULL,
                           PRIMARY KEY (terminal_id, first_seq));

    CREATE VIEW journal AS
        SELECT e.posting AS posting, e.account AS account, e.amount AS amount, NULL AS rid
          FROM entries e
        UNION ALL
        SELECT r.posting, c.purse_acct, r.purse, r.rid FROM records r JOIN cards c ON c.uid = r.uid
         WHERE r.purse != 0
        UNION ALL
        SELECT r.posting, c.credit_acct, r.credit, r.rid FROM records r JOIN cards c ON c.uid = r.uid
         WHERE r.credit != 0;
    """,
    # 2: door access lists (sync_server.access): door groups and their doors, card groups,
    # grants, the two materialised UID lists per door group, their versions and change log.
    """
    CREATE TABLE door_groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                              note TEXT NOT NULL DEFAULT '', created INTEGER NOT NULL,
                              epoch INTEGER NOT NULL DEFAULT -1, next_change INTEGER);
    CREATE TABLE doors (terminal_id INTEGER PRIMARY KEY REFERENCES terminals(id),
                        group_id INTEGER NOT NULL REFERENCES door_groups(id),
                        assigned INTEGER NOT NULL);
    CREATE INDEX doors_group ON doors(group_id);

    CREATE TABLE card_groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                              card_type INTEGER, created INTEGER NOT NULL);
    CREATE TABLE card_group_members (group_id INTEGER NOT NULL REFERENCES card_groups(id),
                                     card_id INTEGER NOT NULL REFERENCES cards(id),
                                     added INTEGER NOT NULL,
                                     PRIMARY KEY (group_id, card_id)) WITHOUT ROWID;
    CREATE INDEX card_group_members_card ON card_group_members(card_id);

    CREATE TABLE door_card_grants (group_id INTEGER NOT NULL REFERENCES door_groups(id),
                                   card_id INTEGER NOT NULL REFERENCES cards(id),
                                   anytime INTEGER NOT NULL, expires INTEGER,
                                   created INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '',
                                   PRIMARY KEY (group_id, card_id)) WITHOUT ROWID;
    CREATE INDEX door_card_grants_card ON door_card_grants(card_id);
    CREATE TABLE door_group_grants (group_id INTEGER NOT NULL REFERENCES door_groups(id),
                                    card_group_id INTEGER NOT NULL REFERENCES card_groups(id),
                                    anytime INTEGER NOT NULL, expires INTEGER,
                                    created INTEGER NOT NULL,
                                    PRIMARY KEY (group_id, card_group_id)) WITHOUT ROWID;
    CREATE INDEX door_group_grants_cards ON door_group_grants(card_group_id);

    CREATE TABLE access_lists (group_id INTEGER NOT NULL, list INTEGER NOT NULL, uid BLOB NOT NULL,
                               PRIMARY KEY (group_id, list, uid)) WITHOUT ROWID;
    CREATE TABLE access_versions (group_id INTEGER NOT NULL, list INTEGER NOT NULL,
                                  version INTEGER NOT NULL, hash BLOB NOT NULL,
                                  count INTEGER NOT NULL, at INTEGER NOT NULL,
                                  PRIMARY KEY (group_id, list, version)) WITHOUT ROWID;
    CREATE TABLE access_log (group_id INTEGER NOT NULL, list INTEGER NOT NULL,
                             version INTEGER NOT NULL, uid BLOB NOT NULL, added INTEGER NOT NULL,
                             PRIMARY KEY (group_id, list, version, uid)) WITHOUT ROWID;
    """,
    # 3: cards whose events (status, issue) may change door lists: door groups catch up from
    # the id they last saw (door_groups.epoch) by looking at those cards only.
    """
    CREATE TABLE access_dirty (id INTEGER PRIMARY KEY AUTOINCREMENT, card_id INTEGER NOT NULL);
    """,
    # 4: the card index moves to a file of its own (store.cardindex), built off the upload path.
    """
    DROP TABLE card_index;
    DELETE FROM meta WHERE name = 'card_index_rid';
    """,
    # 5: a correction load names the sale (record rid) it gives money back for, so that the
    # corrections of one sale never add up to more than it took.
    """
    ALTER TABLE loads ADD COLUMN corrects INTEGER;
    CREATE INDEX loads_corrects ON loads(corrects) WHERE corrects IS NOT NULL;
    """,
]
