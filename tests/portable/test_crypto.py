"""HMAC-SHA256 and key diversification: RFC 4231 vectors and properties, on both runtimes."""

import support

from protocol import crypto
from protocol.errors import CryptoError

# RFC 4231 test cases 1, 2, 3, 6 (HMAC-SHA-256).
RFC4231 = (
    ("0b" * 20, "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    ("4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("aa" * 20, "dd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    ("aa" * 131,
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a6520"
     "4b6579202d2048617368204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
)

MASTER = b"M" * 16
UID4 = support.unhex("04A1B2C3")
UID7 = support.unhex("04112233445566")


def test_hmac_rfc4231_vectors():
    for key, msg, mac in RFC4231:
        assert support.tohex(crypto.hmac_sha256(support.unhex(key), support.unhex(msg))) == mac
        assert support.tohex(crypto.hmac_sha256_py(support.unhex(key), support.unhex(msg))) == mac


def test_compare_digest():
    assert crypto.compare_digest(b"abc", b"abc")
    assert not crypto.compare_digest(b"abc", b"abd")
    assert not crypto.compare_digest(b"abc", b"ab")
    assert crypto.compare_digest(bytearray(b"x"), memoryview(b"x"))


def test_sector_keys_differ_per_card_sector_and_type():
    keys = set()
    for uid in (UID4, UID7):
        for sector in range(16):
            for kt in (crypto.KEY_A, crypto.KEY_B):
                k = crypto.card_sector_key(MASTER, uid, sector, kt)
                assert len(k) == 6
                keys.add(k)
    assert len(keys) == 2 * 16 * 2


def test_derived_keys_depend_on_master():
    other = b"N" * 16
    assert crypto.purse_mac_key(MASTER, UID4) != crypto.purse_mac_key(other, UID4)
    assert crypto.issuer_mac_key(MASTER, UID4) != crypto.purse_mac_key(MASTER, UID4)
    assert len(crypto.terminal_key(MASTER, 1001)) == 32
    assert crypto.terminal_key(MASTER, 1001) != crypto.terminal_key(MASTER, 1002)


def test_pin_check_value():
    pk = crypto.purse_mac_key(MASTER, UID4)
    a = crypto.pin_check_value(pk, UID4, "123456")
    assert len(a) == 4
    assert a != crypto.pin_check_value(pk, UID4, "123457")
    assert a != crypto.pin_check_value(pk, UID7, "123456")
    support.raises(CryptoError, crypto.pin_check_value, pk, UID4, "12a4")
    support.raises(CryptoError, crypto.pin_check_value, pk, UID4, "123")


def test_bad_inputs_are_refused():
    e = support.raises(CryptoError, crypto.card_sector_key, MASTER, b"\x01\x02\x03", 1, crypto.KEY_A)
    assert "4 or 7" in str(e)
    support.raises(CryptoError, crypto.card_sector_key, MASTER, UID4, 16, crypto.KEY_A)
    support.raises(CryptoError, crypto.card_sector_key, MASTER, UID4, 1, 0x62)
    support.raises(CryptoError, crypto.purse_mac_key, b"short", UID4)
    support.raises(CryptoError, crypto.terminal_key, MASTER, 0)


def test_incremental_hmac_equals_one_shot():
    for key, msg, mac in RFC4231:
        k, m = support.unhex(key), support.unhex(msg)
        h = crypto.HmacSha256(k)
        for i in range(0, len(m), 7):
            h.update(m[i:i + 7])
        assert support.tohex(h.digest()) == mac
