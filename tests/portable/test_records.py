"""The 64-byte signed, hash-chained terminal record."""

import support

from protocol import records as r
from protocol.errors import RecordError

KEY = b"T" * 32
UID = support.unhex("04A1B2C3")
UID7 = support.unhex("04112233445566")
NOW = 1764057600


def _purchase(seq=1, prev=r.GENESIS_LINK, uid=UID):
    return r.build(KEY, prev, r.PURCHASE, r.FLAG_OFFLINE | r.FLAG_PIN_VERIFIED, 1001, seq, NOW, uid, 12,
                   1250, 5000, 3750, meal_period=2)


def test_round_trip_all_fields():
    rec = _purchase(uid=UID7)
    assert len(rec) == r.RECORD_SIZE == 64
    d = r.decode(rec)
    assert (d.type, d.flags, d.terminal_id, d.seq, d.time) == (r.PURCHASE, 9, 1001, 1, NOW)
    assert (d.uid, d.counter, d.amount, d.balance_before, d.balance_after) == (UID7, 12, 1250, 5000, 3750)
    assert d.meal_period == 2 and d.link == r.GENESIS_LINK
    assert d.type_name() == "purchase"
    assert r.seq_of(rec) == 1


def test_every_record_type_encodes():
    for t in range(1, len(r.TYPE_NAMES)):
        rec = r.build(KEY, r.GENESIS_LINK, t, 0, 7, 3, NOW, UID, 0, -5, -5, -10, aux=9, aux2=11)
        d = r.decode(rec)
        assert d.type == t and d.aux == 9 and d.aux2 == 11 and d.amount == -5


def test_any_changed_byte_fails_verify():
    rec = _purchase()
    assert r.verify(rec, KEY)
    for i in range(64):
        bad = bytearray(rec)
        bad[i] ^= 0x01
        assert not r.verify(bytes(bad), KEY), i
    assert not r.verify(rec, b"U" * 32)


def test_chain_links_previous_record():
    first = _purchase(1)
    second = _purchase(2, r.link_of(first))
    assert r.prev_link_of(second) == r.link_of(first)
    assert r.link_of(first) != r.link_of(second)


def test_check_says_what_is_wrong():
    rec = _purchase()
    e = support.raises(RecordError, r.check, rec[:63], KEY)
    assert "64 bytes, got 63" in str(e)
    e = support.raises(RecordError, r.check, rec, b"x" * 32)
    assert "MAC" in str(e)
    bad = bytearray(rec)
    bad[0] = 9
    e = support.raises(RecordError, r.decode, bytes(bad))
    assert "version 9" in str(e)


def test_unset_clock_refuses_to_sign():
    e = support.raises(RecordError, r.build, KEY, r.GENESIS_LINK, r.PURCHASE, 0, 1, 1, 5, UID, 1, 1, 1, 0)
    assert "clock" in str(e)


def test_bad_fields_rejected():
    support.raises(RecordError, r.build, KEY, r.GENESIS_LINK, 0, 0, 1, 1, NOW, UID, 1, 1, 1, 0)
    support.raises(RecordError, r.build, KEY, r.GENESIS_LINK, 1, 0, 1, 1, NOW, b"\x01\x02", 1, 1, 1, 0)
