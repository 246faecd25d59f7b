"""The MIFARE Classic card map: value blocks, access bits, identity, purse state, load register."""

import support

from protocol import card_layout as cl
from protocol import crypto
from protocol.errors import CardFormatError

UID = support.unhex("04A1B2C3")
UID7 = support.unhex("04112233445566")
KEY = b"K" * 16


def test_value_block_exact_nxp_format():
    # 100 at block 5 -> 64000000 9bffffff 64000000 05 fa 05 fa (MF1S50yyX 8.6.2.1)
    blk = cl.encode_value_block(100, 5)
    assert support.tohex(blk) == "640000009bffffff6400000005fa05fa"
    assert cl.decode_value_block(blk) == (100, 5)


def test_value_block_negative_and_limits():
    for v in (-1, -2000, 0, 0x7FFFFFFF, -0x80000000):
        assert cl.decode_value_block(cl.encode_value_block(v, 8)) == (v, 8)
    support.raises(CardFormatError, cl.encode_value_block, 0x80000000, 8)
    support.raises(CardFormatError, cl.encode_value_block, 1, 256)


def test_value_block_inconsistent_copies_rejected():
    good = bytearray(cl.encode_value_block(1234, 8))
    for i in range(16):
        bad = bytearray(good)
        bad[i] ^= 0x01
        e = support.raises(CardFormatError, cl.decode_value_block, bytes(bad))
        assert "value block" in str(e)
    support.raises(CardFormatError, cl.decode_value_block, bytes(15))


def test_access_bits_transport_and_product():
    assert cl.encode_access_bits(0, 0, 0, 1) == support.unhex("FF0780")
    assert cl.decode_access_bits(support.unhex("FF0780")) == (0, 0, 0, 1)
    # value-block sector: C=110 for blocks 0,1; 100 for block 2; trailer 011
    bits = cl.encode_access_bits(cl.ACC_DATA_VALUE, cl.ACC_DATA_VALUE, cl.ACC_DATA_WRITE_B, cl.ACC_TRAILER_KEYB)
    assert cl.decode_access_bits(bits) == (6, 6, 4, 3)
    for c in range(8):
        assert cl.decode_access_bits(cl.encode_access_bits(c, 7 - c, c, c)) == (c, 7 - c, c, c)


def test_inconsistent_access_bits_rejected():
    e = support.raises(CardFormatError, cl.decode_access_bits, support.unhex("FF0781"))
    assert "inconsistent" in str(e)


def test_sector_trailer_keys_are_diversified():
    master = b"C" * 16
    t = cl.sector_trailer(master, UID, cl.SECTOR_PURSE)
    assert len(t) == 16
    assert t[:6] == crypto.card_sector_key(master, UID, 2, crypto.KEY_A)
    assert t[10:] == crypto.card_sector_key(master, UID, 2, crypto.KEY_B)
    assert cl.decode_access_bits(t[6:9]) == cl.sector_access(cl.SECTOR_PURSE)


def test_identity_round_trip_and_uid_binding():
    ident = cl.Identity(20240001, "S2024001", cl.CARD_STUDENT, 1725148800, 1856592000)
    data = cl.encode_identity(ident, KEY, UID)
    assert len(data) == 48
    assert cl.decode_identity(data, KEY, UID) == ident
    assert cl.decode_identity(data, KEY, UID).type_name() == "student"
    e = support.raises(CardFormatError, cl.decode_identity, data, KEY, support.unhex("04A1B2C4"))
    assert "identity MAC" in str(e)
    tampered = bytearray(data)
    tampered[12] ^= 1  # extend validity
    support.raises(CardFormatError, cl.decode_identity, bytes(tampered), KEY, UID)


def test_identity_rejects_bad_fields():
    support.raises(CardFormatError, cl.encode_identity, cl.Identity(1, "x", 9, 1, 2), KEY, UID)
    support.raises(CardFormatError, cl.encode_identity, cl.Identity(1, "x" * 17, 1, 1, 2), KEY, UID)
    support.raises(CardFormatError, cl.encode_identity, cl.Identity(1, "x", 1, 5, 2), KEY, UID)


def _state():
    st = cl.PurseState()
    st.counter = 41
    st.balance = -1500
    st.day = 20417
    st.day_total = 12345
    st.meal_period = 2
    st.gen = 9
    st.meal_total = 800
    st.credit_used = 1500
    st.offline_spend = 2500
    st.pin_retries = 2
    st.flags = cl.FLAG_INITIAL_PIN | cl.FLAG_PIN_LOCKED
    st.pin_check = 0xDEADBEEF
    st.txn_terminal = 1001
    st.txn_seq = 77
    return st


def test_purse_state_round_trip_7_byte_uid():
    st = _state()
    data = cl.encode_state(st, KEY, UID7)
    assert len(data) == cl.STATE_SIZE == 48
    assert cl.decode_state(data, KEY, UID7) == st


def test_purse_state_mac_catches_every_byte_and_other_uid():
    data = cl.encode_state(_state(), KEY, UID)
    for i in range(48):
        bad = bytearray(data)
        bad[i] ^= 0x80
        support.raises(CardFormatError, cl.decode_state, bytes(bad), KEY, UID)
    e = support.raises(CardFormatError, cl.decode_state, data, KEY, UID7)
    assert "04112233445566" in str(e)


def test_newer_slot_wraps():
    assert cl.newer_slot(0, 1) == 1
    assert cl.newer_slot(1, 0) == 0
    assert cl.newer_slot(15, 0) == 1
    assert cl.newer_slot(0, 15) == 0
    assert cl.next_gen(15) == 0


def test_load_register():
    blk = cl.encode_load_register(7, KEY, UID)
    assert cl.decode_load_register(blk, KEY, UID) == 7
    bad = bytearray(blk)
    bad[0] = 8
    support.raises(CardFormatError, cl.decode_load_register, bytes(bad), KEY, UID)


def test_map_blocks_do_not_overlap_trailers():
    used = [cl.BLOCK_IDENTITY, cl.BLOCK_HOLDER, cl.BLOCK_ISSUER_MAC, cl.BLOCK_BALANCE, cl.BLOCK_BACKUP,
            cl.BLOCK_LOADS, cl.BLOCK_SUB_BALANCE, cl.BLOCK_SUB_BACKUP, cl.BLOCK_SUB_STATE]
    for slot in cl.STATE_SLOTS:
        used.extend(slot)
    assert len(set(used)) == len(used)
    for b in used:
        assert b % 4 != 3 and b > 3
    assert cl.sector_of(cl.STATE_SLOTS[0][0]) != cl.sector_of(cl.STATE_SLOTS[1][0])
