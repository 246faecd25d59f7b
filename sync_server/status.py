"""Status codes of stored records (``records.status``) and what the ledger does with them.

======  ============  =================================================================
Code    Name          Meaning
======  ============  =================================================================
1       linked        money record in the card's chain (links to the one before)
2       pending       money record beyond a hole in the card's chain (posted, not linked)
3       same-event    the other half of a torn transaction already posted (not posted)
4       clone         a second record for a card counter already used (posted, evidence)
5       unknown-card  the card was never issued here (not posted)
6       no-money      PIN, door and rolled-back repair records (nothing to post)
7       break         linked, but its balance does not follow the one before (posted)
======  ============  =================================================================
"""

LINKED = 1
PENDING = 2
SAME_EVENT = 3
CLONE = 4
UNKNOWN_CARD = 5
NO_MONEY = 6
BREAK = 7

NAMES = {LINKED: "linked", PENDING: "pending", SAME_EVENT: "same-event", CLONE: "clone",
         UNKNOWN_CARD: "unknown-card", NO_MONEY: "no-money", BREAK: "break"}
POSTED = (LINKED, PENDING, CLONE, BREAK)
