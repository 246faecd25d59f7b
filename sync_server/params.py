"""Terminal parameters and server settings: defaults, per-merchant overrides, local time.

Terminal parameters are integers sent to terminals in the ``params`` message; each merchant
may override the global value. Server settings steer the server itself (time zone,
replacement wait and fee, settle time, credit repayment days).

Usage::

    from sync_server import params
    p = params.effective(db, merchant_id=3)     # {"per_txn_limit": 5000, ...}
    s = params.settings(db)                     # {"timezone": "Asia/Shanghai", ...}
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from sync_server import store
from sync_server.errors import Invalid
from sync_server.store import config as cfg

# Money in cents, times in seconds, meal boundaries in local minutes since midnight.
TERMINAL_DEFAULTS: dict[str, int] = {
    "per_txn_limit": 5000,
    "daily_limit": 20000,
    "meal_limit": 0,  # 0 = no meal limit
    "pin_retry_limit": 3,
    "credit_wallet": 0,  # 1 = the emergency credit wallet is on
    "credit_limit": 2000,
    "credit_auto_after_s": 600,
    "offline_allowed": 0,  # 1 = the server allows deliberate offline operation
    "offline_cap": 10000,
    "blacklist_max_age_s": 86400,
    "offline_ceiling": 1000,
    "double_tap_gap_s": 3,
    "accepted_types": 0b11110,  # bit n = card type n (staff, student, identity, temporary)
    "sync_interval_s": 10,
    "meal1_start": 360, "meal1_end": 570,  # breakfast 06:00-09:30
    "meal2_start": 630, "meal2_end": 810,  # lunch 10:30-13:30
    "meal3_start": 1020, "meal3_end": 1170,  # dinner 17:00-19:30
    "door_curfew_start": 0, "door_curfew_end": 0,  # doors: local minutes; equal = no curfew
    "door_pulse_ms": 3000,  # doors: how long a grant releases the lock
}

_MAX_MONEY = 10_000_000
# Inclusive ranges the firmware accepts (firmware/params.py): a value outside would make every
# terminal of the merchant refuse the whole params message, so the server refuses it first.
RANGES: dict[str, tuple[int, int]] = {
    "per_txn_limit": (0, _MAX_MONEY), "daily_limit": (0, _MAX_MONEY), "meal_limit": (0, _MAX_MONEY),
    "pin_retry_limit": (1, 15), "credit_wallet": (0, 1), "credit_limit": (0, _MAX_MONEY),
    "credit_auto_after_s": (0, 864000), "offline_cap": (0, _MAX_MONEY), "blacklist_max_age_s": (60, 31536000),
    "offline_ceiling": (0, _MAX_MONEY), "double_tap_gap_s": (0, 3600), "accepted_types": (0, 0b11110),
    "offline_allowed": (0, 1), "sync_interval_s": (1, 86400),
    "meal1_start": (0, 1440), "meal1_end": (0, 1440), "meal2_start": (0, 1440), "meal2_end": (0, 1440),
    "meal3_start": (0, 1440), "meal3_end": (0, 1440),
    "door_curfew_start": (0, 1440), "door_curfew_end": (0, 1440), "door_pulse_ms": (100, 60000),
}
MAX_LOADS_PER_REPLY = 400  # 16-byte entries: 6.4 KB, inside the terminal's 8 KB answer buffer

SETTING_DEFAULTS: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "server_url": "http://127.0.0.1:8080",
    "replacement_fee": 2000,  # cents, taken from the balance moved to the new card
    "replacement_wait_s": 72 * 3600,
    "settle_time_s": 24 * 3600,  # chain hole: pending until then, quarantined after
    "credit_repay_days": 30,
    "settlement_day": 21,  # settlement cycle runs from this day of last month
    "blacklist_log_keep_s": 30 * 86400,
    "max_loads_per_reply": MAX_LOADS_PER_REPLY,  # at most this many (the oldest) per answer
    "access_log_keep_s": 30 * 86400,  # door list versions older than this: doors get the whole list
}


_YEAR_S = 366 * 86400
SETTING_RANGES: dict[str, tuple[int, int]] = {
    "replacement_fee": (0, 100_000), "replacement_wait_s": (0, _YEAR_S), "settle_time_s": (0, _YEAR_S),
    "credit_repay_days": (1, 366), "settlement_day": (1, 28), "blacklist_log_keep_s": (86400, 10 * _YEAR_S),
    "max_loads_per_reply": (1, MAX_LOADS_PER_REPLY), "access_log_keep_s": (86400, 10 * _YEAR_S),
}


def effective(db: store.Database, merchant_id: int | None = None) -> dict[str, int]:
    """The parameters a terminal of ``merchant_id`` gets: defaults, global, merchant."""
    out = dict(TERMINAL_DEFAULTS)
    out.update(cfg.get_params(db, 0))
    if merchant_id:
        out.update(cfg.get_params(db, merchant_id))
    return out


def set_params(db: store.Database, values: dict[str, Any], merchant_id: int = 0) -> dict[str, int]:
    """Store overrides (global when ``merchant_id`` is 0); ``Invalid`` on unknown names."""
    clean = {}
    for name, value in values.items():
        if name not in TERMINAL_DEFAULTS:
            raise Invalid("unknown parameter {!r}; known: {}".format(name, ", ".join(sorted(TERMINAL_DEFAULTS))))
        if not isinstance(value, int) or isinstance(value, bool) or not -2**31 <= value < 2**31:
            raise Invalid(f"parameter {name} must be a 32-bit integer, got {value!r}")
        lo, hi = RANGES.get(name, (-2**31, 2**31 - 1))
        if not lo <= value <= hi:
            raise Invalid(f"parameter {name} must be {lo}..{hi} (terminals refuse other values), got {value}")
        clean[name] = value
    with store.transaction(db):
        for name, value in clean.items():
            cfg.set_param(db, merchant_id, name, value)
        _bump_version(db)
    return effective(db, merchant_id or None)


def version(db: store.Database) -> int:
    """Version of the parameters: grows with every change of a parameter or server setting, so
    a terminal can skip fetching parameters it already holds (heartbeat ``params_version``)."""
    return cfg.get_meta(db, "params_version", 1)


def _bump_version(db: store.Database) -> None:
    cfg.set_meta(db, "params_version", version(db) + 1)


def settings(db: store.Database) -> dict[str, Any]:
    """Server settings with their types (ints stay ints)."""
    out = dict(SETTING_DEFAULTS)
    for name, text in cfg.get_settings(db).items():
        if name in SETTING_DEFAULTS:
            out[name] = int(text) if isinstance(SETTING_DEFAULTS[name], int) else text
    return out


def set_settings(db: store.Database, values: dict[str, Any]) -> dict[str, Any]:
    """Change server settings; ``Invalid`` on unknown names or wrong types."""
    clean = {}
    for name, value in values.items():
        if name not in SETTING_DEFAULTS:
            raise Invalid("unknown setting {!r}; known: {}".format(name, ", ".join(sorted(SETTING_DEFAULTS))))
        if isinstance(SETTING_DEFAULTS[name], int):
            if not isinstance(value, int) or isinstance(value, bool):  # cents and seconds are whole numbers
                raise Invalid(f"setting {name} must be an integer, got {value!r}")
            lo, hi = SETTING_RANGES[name]
            if not lo <= value <= hi:
                why = " (an answer must fit the terminal's 8 KB buffer)" if name == "max_loads_per_reply" else ""
                raise Invalid(f"setting {name} must be {lo}..{hi}{why}, got {value}")
        elif not isinstance(value, str):
            raise Invalid(f"setting {name} must be a string, got {value!r}")
        elif name == "timezone":
            try:
                zoneinfo.ZoneInfo(str(value))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise Invalid(f"unknown time zone {value!r} (use an IANA name like Asia/Shanghai)") from None
        clean[name] = str(value)
    with store.transaction(db):
        for name, value in clean.items():
            cfg.set_setting(db, name, value)
        _bump_version(db)  # the time zone is part of what terminals get
    return settings(db)


def zone(db: store.Database) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings(db)["timezone"])


def utc_offset_s(tz: zoneinfo.ZoneInfo, now: int) -> int:
    """Seconds local time is ahead of UTC at ``now`` (28800 for Asia/Shanghai)."""
    offset = datetime.datetime.fromtimestamp(now, tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def local_date_end(tz: zoneinfo.ZoneInfo, date: datetime.date) -> int:
    """UTC seconds of the last second of local ``date``."""
    nxt = datetime.datetime.combine(date + datetime.timedelta(days=1), datetime.time(), tz)
    return int(nxt.timestamp()) - 1


def local_date_start(tz: zoneinfo.ZoneInfo, date: datetime.date) -> int:
    return int(datetime.datetime.combine(date, datetime.time(), tz).timestamp())
