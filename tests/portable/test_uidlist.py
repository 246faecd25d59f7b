"""7-byte UID keys and packed sorted UID lists."""

import support

from protocol import uidlist
from protocol.errors import ProtocolError

U4 = support.unhex("A1B2C3D4")
U7 = support.unhex("04112233445566")


def test_keys_and_inverse():
    assert uidlist.uid_key(U4) == support.unhex("000000A1B2C3D4")
    assert uidlist.uid_key(U7) == U7
    assert uidlist.uid_from_key(uidlist.uid_key(U4)) == U4
    assert uidlist.uid_from_key(uidlist.uid_key(U7)) == U7
    support.raises(ProtocolError, uidlist.uid_key, b"\x00" + U7[1:])
    support.raises(ProtocolError, uidlist.uid_key, b"\x01\x02")


def test_pack_sorts_and_dedupes_and_searches():
    blob = uidlist.pack([U7, U4, U4])
    assert uidlist.count(blob) == 2
    uidlist.check_sorted(blob)
    assert uidlist.unpack(blob) == [U4, U7]
    assert uidlist.contains(blob, uidlist.uid_key(U4))
    assert uidlist.contains(blob, uidlist.uid_key(U7))
    assert not uidlist.contains(blob, uidlist.uid_key(support.unhex("A1B2C3D5")))
    assert not uidlist.contains(b"", uidlist.uid_key(U4))


def test_malformed_lists_rejected():
    support.raises(ProtocolError, uidlist.count, b"\x00" * 8)
    e = support.raises(ProtocolError, uidlist.check_sorted, uidlist.uid_key(U7) + uidlist.uid_key(U4))
    assert "entry 1" in str(e)


def test_uid_key_into_fills_a_buffer_like_uid_key():
    buf = bytearray(7)
    for uid in (U4, U7):
        assert bytes(uidlist.uid_key_into(buf, memoryview(uid + b"\xee\xee\xee"), len(uid))) == uidlist.uid_key(uid)
    support.raises(ProtocolError, uidlist.uid_key_into, buf, memoryview(U7), 5)
