"""Terminal parameters: defaults, the server's ``params`` message applied, and a small file on
flash replaced atomically (write a new file, then rename it over the old one).

Names are those of the server's ``params`` message (``{name: int}``); money is cents, times
seconds, meal periods minutes of the local day. Unknown names are ignored (a newer server
may send more); a known name with a bad value rejects the whole message, so a terminal never
runs on half of an update.

==========================  =======  ==================================================
name                        default  meaning
==========================  =======  ==================================================
per_txn_limit               5000     payment above it needs the PIN
daily_limit                 20000    today's total above it needs the PIN
meal_limit                  0        this meal period's total above it needs the PIN; 0 none
pin_retry_limit             3        wrong PINs (counted on the card) that lock PIN entry
credit_wallet               0        1: emergency credit on (the purse may go below zero)
credit_limit                2000     how far below zero the credit wallet goes
credit_auto_after_s         600      credit turns on by itself after the network is down this long
offline_cap                 10000    offline spending per card before it must be seen online; 0 none
blacklist_max_age_s         86400    blacklist older than this: the sync client reports it stale
offline_ceiling             1000     offline payment above it needs the PIN; 0 none
double_tap_gap_s            3        same card debited again within it needs the cashier's OK
accepted_types              30       bit n set: card type n accepted (1 staff .. 4 temporary)
mealN_start, mealN_end      see below  meal periods 1..4 (06:00-09:30, 10:30-13:30, 17:00-19:30)
tz_offset_s                 28800    local time offset (Asia/Shanghai)
offline_allowed             0        1: the server allows deliberate offline operation (sync client)
sync_interval_s             10       seconds between sync cycles (sync client)
door_curfew_start           0        door curfew from this local minute (only list-1 cards)
door_curfew_end             0        ... to this local minute (exclusive); equal: no curfew;
                                     start > end wraps midnight (1410, 360: 23:30-06:00)
door_pulse_ms               3000     how long a grant releases the door lock
==========================  =======  ==================================================

Usage::

    from firmware import params
    p = params.Params("/flash")          # defaults, then /flash/params.json if present
    p.apply({"per_txn_limit": 3000})     # validate all, set, save atomically
    p.per_txn_limit                      # 3000
"""

import json
import os

NAMES = (
    "per_txn_limit", "daily_limit", "meal_limit", "pin_retry_limit", "credit_wallet", "credit_limit",
    "credit_auto_after_s", "offline_cap", "blacklist_max_age_s", "offline_ceiling", "double_tap_gap_s",
    "accepted_types", "meal1_start", "meal1_end", "meal2_start", "meal2_end", "meal3_start", "meal3_end",
    "meal4_start", "meal4_end", "tz_offset_s", "offline_allowed", "sync_interval_s",
    "door_curfew_start", "door_curfew_end", "door_pulse_ms",
)
# Inclusive ranges per name, same order: a value outside is refused.
_MAX_MONEY = 10000000  # 100,000.00 yuan
_RANGES = (
    (0, _MAX_MONEY), (0, _MAX_MONEY), (0, _MAX_MONEY), (1, 15), (0, 1), (0, _MAX_MONEY),
    (0, 864000), (0, _MAX_MONEY), (60, 31536000), (0, _MAX_MONEY), (0, 3600),
    (0, 0b11110), (0, 1440), (0, 1440), (0, 1440), (0, 1440), (0, 1440), (0, 1440),
    (0, 1440), (0, 1440), (-50400, 50400), (0, 1), (1, 86400),
    (0, 1440), (0, 1440), (100, 60000),
)
FILE_NAME = "params.json"


class ParamError(ValueError):
    """A parameter message or file with a value of the wrong kind or out of range."""


class Params:
    """The parameters in force; each name is an attribute."""

    def __init__(self, root=None):
        self._root = root
        self.version = 0
        self.per_txn_limit = 5000
        self.daily_limit = 20000
        self.meal_limit = 0
        self.pin_retry_limit = 3
        self.credit_wallet = 0
        self.credit_limit = 2000
        self.credit_auto_after_s = 600
        self.offline_cap = 10000
        self.blacklist_max_age_s = 86400
        self.offline_ceiling = 1000
        self.double_tap_gap_s = 3
        self.accepted_types = 0b11110
        self.meal1_start = 360
        self.meal1_end = 570
        self.meal2_start = 630
        self.meal2_end = 810
        self.meal3_start = 1020
        self.meal3_end = 1170
        self.meal4_start = 0
        self.meal4_end = 0
        self.tz_offset_s = 28800
        self.offline_allowed = 0
        self.sync_interval_s = 10
        self.door_curfew_start = 0
        self.door_curfew_end = 0
        self.door_pulse_ms = 3000
        self.meal_periods = ()  # type: tuple
        self._periods()
        if root is not None:
            self.load()

    def _periods(self):
        self.meal_periods = (self.meal1_start, self.meal1_end, self.meal2_start, self.meal2_end,
                             self.meal3_start, self.meal3_end, self.meal4_start, self.meal4_end)

    def _path(self):
        return self._root + "/" + FILE_NAME

    def load(self):
        """Read the saved parameters over the defaults; a missing file keeps the defaults.

        :raises ParamError: the file is damaged (say what to do: resync parameters).
        """
        try:
            with open(self._path()) as f:
                doc = json.load(f)
        except OSError:
            return
        except ValueError:
            raise ParamError("%s is not valid JSON: delete it and resync parameters" % self._path())
        if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict):
            raise ParamError("%s has no 'params' map: delete it and resync parameters" % self._path())
        self._set(doc["params"])
        v = doc.get("version", 0)
        self.version = v if isinstance(v, int) else 0

    def check(self, values):
        """:raises ParamError: naming the first known parameter whose value is unusable."""
        if not isinstance(values, dict):
            raise ParamError("parameters must be a map of name to int, got %s" % type(values).__name__)
        for i in range(len(NAMES)):
            name = NAMES[i]
            if name not in values:
                continue
            v = values[name]
            if not isinstance(v, int) or isinstance(v, bool):
                raise ParamError("parameter %s must be an int, got %r" % (name, v))
            lo, hi = _RANGES[i]
            if not lo <= v <= hi:
                raise ParamError("parameter %s = %d is outside %d..%d" % (name, v, lo, hi))

    def _set(self, values):
        self.check(values)
        for name in NAMES:
            if name in values:
                setattr(self, name, values[name])
        self._periods()

    def apply(self, values, version=None, save=True):
        """Check every value, then set them all and save; unknown names are ignored.

        :raises ParamError: nothing was changed.
        """
        self._set(values)
        if version is not None:
            self.version = version
        if save and self._root is not None:
            self.save()

    def as_dict(self):
        d = {}
        for name in NAMES:
            d[name] = getattr(self, name)
        return d

    def save(self):
        """Write the parameters to a new file and rename it over the old one (atomic)."""
        path = self._path()
        tmp = path + ".new"
        with open(tmp, "w") as f:
            json.dump({"version": self.version, "params": self.as_dict()}, f)
        os.rename(tmp, path)
