"""Limit, PIN and validity decisions of the POS application (firmware.limits), both runtimes."""

from firmware import limits

# 2025-03-03 12:00 Asia/Shanghai = 04:00 UTC
NOON_CST = 1740974400
PERIODS = (360, 600, 630, 840, 990, 1230, 0, 0)


def test_local_day_and_minute_follow_the_offset():
    assert limits.local_minute(NOON_CST, 28800) == 12 * 60
    assert limits.local_minute(NOON_CST, 0) == 4 * 60
    # 23:30 local is still the same local day; 00:30 the next one
    late = NOON_CST + 11 * 3600 + 1800
    assert limits.local_day(late, 28800) == limits.local_day(NOON_CST, 28800)
    assert limits.local_day(late + 3600, 28800) == limits.local_day(NOON_CST, 28800) + 1


def test_meal_period_bounds():
    assert limits.meal_period(359, PERIODS) == 0
    assert limits.meal_period(360, PERIODS) == 1
    assert limits.meal_period(599, PERIODS) == 1
    assert limits.meal_period(600, PERIODS) == 0
    assert limits.meal_period(720, PERIODS) == 2
    assert limits.meal_period(1000, PERIODS) == 3
    assert limits.meal_period(1300, PERIODS) == 0
    assert limits.meal_period(0, PERIODS) == 0  # the unused 4th pair (0, 0) never matches


def test_totals_restart_on_a_new_day_or_meal():
    assert limits.day_total(100, 4000, 100) == 4000
    assert limits.day_total(99, 4000, 100) == 0
    assert limits.meal_total(100, 2, 1500, 100, 2) == 1500
    assert limits.meal_total(100, 1, 1500, 100, 2) == 0
    assert limits.meal_total(99, 2, 1500, 100, 2) == 0
    assert limits.meal_total(100, 2, 1500, 100, 0) == 0


def test_pin_reason_each_limit():
    r = limits.pin_reason
    assert r(5000, 0, 0, 5000, 0, 20000, False, 1000) == limits.LIMIT_NONE  # at the limit: no PIN
    assert r(5001, 0, 0, 5000, 0, 20000, False, 1000) == limits.LIMIT_TXN
    assert r(1000, 0, 2500, 5000, 3000, 20000, False, 1000, 2) == limits.LIMIT_MEAL
    assert r(1000, 0, 2500, 5000, 3000, 20000, False, 1000, 0) == limits.LIMIT_NONE  # no meal period
    assert r(1000, 0, 2500, 5000, 0, 20000, False, 1000, 2) == limits.LIMIT_NONE  # meal limit 0: none
    assert r(1000, 19500, 0, 5000, 0, 20000, False, 1000) == limits.LIMIT_DAY
    assert r(1001, 0, 0, 5000, 0, 20000, True, 1000) == limits.LIMIT_OFFLINE
    assert r(1001, 0, 0, 5000, 0, 20000, True, 0) == limits.LIMIT_NONE


def test_credit_allowance_by_parameter_or_network_outage():
    c = limits.credit_allowance
    assert c(1, 2000, 600, 10000, 0) == 2000
    assert c(0, 2000, 600, 10000, 0) == 0  # network up
    assert c(0, 2000, 600, 10000, 9500) == 0  # down 500 s < 600 s
    assert c(0, 2000, 600, 10000, 9400) == 2000  # down 600 s


def test_validity_and_types():
    assert limits.validity(100, 50, 200) == limits.VALID
    assert limits.validity(201, 50, 200) == limits.EXPIRED
    assert limits.validity(49, 50, 200) == limits.NOT_YET_VALID
    assert limits.type_accepted(0b11110, 4)
    assert not limits.type_accepted(0b00110, 4)
    assert not limits.type_accepted(0b11111, 0)


def test_offline_cap_and_double_tap():
    assert limits.offline_cap_ok(9000, 1000, 10000)
    assert not limits.offline_cap_ok(9000, 1001, 10000)
    assert limits.offline_cap_ok(90000, 1, 0)
    assert limits.is_double_tap(1002, 1000, 3)
    assert not limits.is_double_tap(1003, 1000, 3)
    assert not limits.is_double_tap(1001, 0, 3)
    assert not limits.is_double_tap(1001, 1000, 0)
