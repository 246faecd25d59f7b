"""Limit and PIN decisions of a sale, as pure functions of integers (no card, no flash).

"Two PINs, two limits": a payment over the per-transaction, the meal-period or the daily
cumulative limit needs the transaction PIN; so does an offline payment over the offline
ceiling. Totals on the card restart when the local day or the meal period changes. Local
time (Asia/Shanghai by default, ``tz_offset_s``) decides the day and the meal period; the
clock and the wire stay UTC.

Usage::

    from firmware import limits
    day = limits.local_day(now, 28800)
    meal = limits.meal_period(limits.local_minute(now, 28800), (360, 600, 630, 840, 990, 1230))
    why = limits.pin_reason(6000, day_total, meal_total, 5000, 0, 20000, False, 1000)
    if why:
        ...   # ask for the PIN; why is LIMIT_TXN, LIMIT_MEAL, LIMIT_DAY or LIMIT_OFFLINE
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

LIMIT_NONE = const(0)
LIMIT_TXN = const(1)
LIMIT_MEAL = const(2)
LIMIT_DAY = const(3)
LIMIT_OFFLINE = const(4)

VALID = const(0)
EXPIRED = const(1)
NOT_YET_VALID = const(2)

_DAY = const(86400)


@micropython.native
def local_day(utc, tz_offset_s):
    """Local calendar day number (days since 1970-01-01 local) of UTC time ``utc``."""
    return (utc + tz_offset_s) // _DAY


@micropython.native
def local_minute(utc, tz_offset_s):
    """Minute of the local day (0..1439) of UTC time ``utc``."""
    return ((utc + tz_offset_s) % _DAY) // 60


@micropython.native
def meal_period(minute, periods):
    """1-based number of the meal period holding ``minute``, or 0 outside every period.

    ``periods`` is a flat sequence ``(start1, end1, start2, end2, ...)`` of local minutes,
    start inclusive and end exclusive; a pair with ``end <= start`` is unused.
    """
    for i in range(0, len(periods) - 1, 2):
        start = periods[i]
        end = periods[i + 1]
        if start < end and start <= minute < end:
            return i // 2 + 1
    return 0


@micropython.native
def day_total(card_day, card_day_total, day):
    """What the card has spent today: its stored total, or 0 when it was stored on another day."""
    return card_day_total if card_day == day else 0


@micropython.native
def meal_total(card_day, card_meal, card_meal_total, day, meal):
    """What the card has spent in this meal period today (0 outside meal periods)."""
    if meal == 0 or card_day != day or card_meal != meal:
        return 0
    return card_meal_total


@micropython.native
def pin_reason(amount, spent_day, spent_meal, per_txn_limit, meal_limit, daily_limit, offline,
               offline_ceiling, meal=1):
    """Why a payment of ``amount`` cents needs the PIN (``LIMIT_*``), or ``LIMIT_NONE``.

    A limit of 0 means "no limit" for the meal limit and the offline ceiling; per-transaction
    and daily limits always apply. ``spent_day``/``spent_meal`` are today's and this meal
    period's totals before this payment; ``meal`` 0 (outside meal periods) skips the meal limit.
    """
    if amount > per_txn_limit:
        return LIMIT_TXN
    if meal and meal_limit > 0 and spent_meal + amount > meal_limit:
        return LIMIT_MEAL
    if spent_day + amount > daily_limit:
        return LIMIT_DAY
    if offline and offline_ceiling > 0 and amount > offline_ceiling:
        return LIMIT_OFFLINE
    return LIMIT_NONE


@micropython.native
def credit_allowance(credit_wallet, credit_limit, credit_auto_after_s, now, network_down_since):
    """How far below zero (cents) the purse may go now: ``credit_limit`` when the credit
    wallet is on, by parameter or because the network has been down ``credit_auto_after_s``
    seconds; else 0. ``network_down_since`` 0 means the network is up."""
    if credit_wallet:
        return credit_limit
    if network_down_since and now - network_down_since >= credit_auto_after_s:
        return credit_limit
    return 0


@micropython.native
def validity(now, valid_from, valid_until):
    """``VALID``, ``EXPIRED`` (after ``valid_until``) or ``NOT_YET_VALID`` (before ``valid_from``)."""
    if now > valid_until:
        return EXPIRED
    if now < valid_from:
        return NOT_YET_VALID
    return VALID


@micropython.native
def type_accepted(accepted_types, card_type):
    """True when bit ``card_type`` of the merchant's ``accepted_types`` mask is set."""
    return 0 < card_type < 31 and (accepted_types >> card_type) & 1 == 1


def offline_cap_ok(offline_spend, amount, offline_cap):
    """True while the card's offline spending since it was last seen online, plus this
    payment, stays within ``offline_cap`` cents (0 means no cap)."""
    return offline_cap <= 0 or offline_spend + amount <= offline_cap


def is_double_tap(now, last_time, gap_s):
    """True when a debit at ``now`` follows the same card's last debit within ``gap_s`` seconds."""
    return last_time != 0 and gap_s > 0 and 0 <= now - last_time < gap_s
