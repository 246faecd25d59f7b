"""Terminal parameters, pending loads and display texts of the POS (both runtimes)."""

import os
import struct

from support import raises

from firmware import params, pending_loads, texts


def _tmpdir(name):
    d = "/tmp/campuscard-%s-%s" % (name, "".join("%02x" % b for b in os.urandom(4)))
    os.mkdir(d)
    return d


def _rmtree(d):
    for name in os.listdir(d):
        os.remove(d + "/" + name)
    os.rmdir(d)


def _load(uid_key, seq, amount, kind=1):
    return bytes(uid_key) + struct.pack("<BIi", kind, seq, amount)


def test_params_defaults_match_the_server_names():
    p = params.Params()
    assert p.per_txn_limit == 5000 and p.daily_limit == 20000 and p.meal_limit == 0
    assert p.pin_retry_limit == 3 and p.credit_wallet == 0 and p.credit_limit == 2000
    assert p.credit_auto_after_s == 600 and p.offline_cap == 10000 and p.offline_ceiling == 1000
    assert p.blacklist_max_age_s == 86400 and p.double_tap_gap_s == 3 and p.tz_offset_s == 28800
    assert p.accepted_types == 0b11110
    assert p.meal_periods == (360, 570, 630, 810, 1020, 1170, 0, 0)
    assert sorted(p.as_dict()) == sorted(params.NAMES)


def test_params_apply_saves_and_reloads():
    d = _tmpdir("params")
    try:
        p = params.Params(d)
        p.apply({"per_txn_limit": 3000, "meal2_start": 660, "future_param": 9}, version=4)
        q = params.Params(d)
        assert q.per_txn_limit == 3000 and q.version == 4
        assert q.meal_periods[2] == 660
        assert os.listdir(d) == [params.FILE_NAME]  # no temporary file left behind
    finally:
        _rmtree(d)


def test_params_bad_value_changes_nothing():
    p = params.Params()
    e = raises(params.ParamError, p.apply, {"per_txn_limit": 100, "pin_retry_limit": 99})
    assert "pin_retry_limit" in e.args[0] and "99" in e.args[0]
    assert p.per_txn_limit == 5000
    e = raises(params.ParamError, p.apply, {"daily_limit": "100"})
    assert "daily_limit" in e.args[0]


def test_params_damaged_file_says_what_to_do():
    d = _tmpdir("params-bad")
    try:
        with open(d + "/" + params.FILE_NAME, "w") as f:
            f.write("{not json")
        e = raises(params.ParamError, params.Params, d)
        assert "resync" in e.args[0]
    finally:
        _rmtree(d)


def test_pending_loads_found_by_uid_and_next_sequence():
    d = _tmpdir("loads")
    try:
        store = pending_loads.PendingLoads(d)
        uid4 = bytes((0x04, 0xA1, 0xB2, 0xC3))
        uid7 = bytes((0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66))
        k4 = b"\x00\x00\x00" + uid4
        other = b"\x00\x00\x00\x05\x06\x07\x08"
        # out of order on purpose; seq 256 sorts after 2 only if compared as a number
        blob = (_load(uid7, 1, 700) + _load(k4, 256, 9900) + _load(k4, 2, 200) + _load(other, 1, 5)
                + _load(k4, 1, 100, 2))
        store.replace(blob)
        assert store.count == 5
        assert store.find(memoryview(uid4), 4, 0) and (store.seq, store.amount, store.kind) == (1, 100, 2)
        assert store.find(memoryview(uid4), 4, 1) and (store.seq, store.amount) == (2, 200)
        assert not store.find(memoryview(uid4), 4, 2)  # 3 missing: 256 must wait
        assert store.find(memoryview(uid4), 4, 255) and store.amount == 9900
        assert store.find(memoryview(uid7), 7, 0) and store.amount == 700
        assert not store.find(memoryview(uid7), 7, 1)
        assert not store.find(memoryview(bytes((1, 2, 3, 4))), 4, 0)
        # waiting: any load for the card, whatever its sequence (the POS then reads block 10)
        assert store.waiting(memoryview(uid4), 4) and store.waiting(memoryview(uid7), 7)
        assert not store.waiting(memoryview(bytes((1, 2, 3, 4))), 4)
        assert not store.waiting(memoryview(bytes((0x05, 0x06, 0x07, 0x09))), 4)  # between two cards
        assert not store.waiting(memoryview(bytes((0x05, 1, 2, 3, 4, 5, 6))), 7)  # after the last entry
        again = pending_loads.PendingLoads(d)  # survives a restart
        assert again.count == 5 and again.find(memoryview(uid7), 7, 0)
    finally:
        _rmtree(d)


def test_pending_loads_refuses_a_partial_entry():
    d = _tmpdir("loads-bad")
    try:
        store = pending_loads.PendingLoads(d)
        store.replace(_load(b"\x00\x00\x00\x01\x02\x03\x04", 1, 5))
        e = raises(pending_loads.LoadsError, store.replace, bytes(20))
        assert "20 bytes" in e.args[0]
        assert store.count == 1  # the old list stays
    finally:
        _rmtree(d)


def test_texts_have_both_languages_and_amounts():
    assert texts.yuan(1250) == "12.50" and texts.yuan(5) == "0.05" and texts.yuan(-300) == "-3.00"
    assert texts.zh(texts.T_PAID, texts.yuan(1250)) == "支付成功 12.50元"
    assert texts.en(texts.T_PAID, texts.yuan(1250)) == "Paid 12.50"
    assert texts.en(texts.T_JOURNAL_FULL) == "journal full — sync needed"
    for i in range(1, texts.COUNT):
        assert texts.zh(i, "7") and texts.en(i, "7"), i
        assert ("%s" in texts.zh(i)) == ("%s" in texts.en(i)), i  # same argument in both
    assert texts.zh(texts.COUNT) == "?%d" % texts.COUNT
    assert texts.en(texts.T_PAID, 1250) == "Paid 12.50"  # an int argument is cents


def test_display_line_built_in_place_equals_the_texts():
    """The unix display builds its line in a bytearray (``text_into``): the same words as
    ``zh``/``en`` for every text, amounts of every size and sign, str arguments."""
    buf = bytearray()
    for lang, fill in ((texts.ZH, texts.zh), (texts.EN, texts.en)):
        for tid in range(texts.COUNT + 1):
            for arg in (None, 0, 5, 99, 100, 1250, 100000000, -1, -300, -123456, "7"):
                buf[:] = b""
                texts.text_into(buf, lang, tid, arg)
                assert bytes(buf).decode() == fill(tid, arg), (lang, tid, arg, bytes(buf))
    for cents in (0, 7, 10, 1999, -5, -100, 2**31 - 1):
        buf[:] = b""
        texts.yuan_into(buf, cents)
        assert bytes(buf).decode() == texts.yuan(cents), cents
