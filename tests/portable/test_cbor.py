"""protocol.cbor on both runtimes: RFC 8949 vectors, deterministic key order, 64-bit edges,
corrupted input (every case must raise DecodeError naming the offset) and round trips."""

import time

import support

from protocol import cbor
from tests.vectors.cbor_vectors import CANONICAL_MAPS, CORRUPT, INT_EDGES, RFC_8949, RFC_8949_UNSUPPORTED


def same(a, b):
    """Equal values of equal types all the way down (plain == lets True pass for 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for k in a:
            if k not in b or not same(a[k], b[k]):
                return False
        return True
    return a == b


def check_both_ways(table):
    bad = []
    for value, hexdata in table:
        got = support.tohex(cbor.dumps(value))
        if got != hexdata:
            bad.append("dumps(%r): expected %s, got %s" % (value, hexdata, got))
        back = cbor.loads(support.unhex(hexdata))
        if not same(back, value):
            bad.append("loads(%s): expected %r, got %r" % (hexdata, value, back))
    assert not bad, "\n".join(bad)


def check_rejects(cases):
    """Every ``(hex, offset, word)`` must raise DecodeError whose message has both."""
    bad = []
    for hexdata, offset, word in cases:
        try:
            value = cbor.loads(support.unhex(hexdata))
        except cbor.DecodeError as e:
            msg = str(e)
            if ("at offset %d" % offset) not in msg or word not in msg:
                bad.append("%s: expected %r and 'at offset %d' in %r" % (hexdata, word, offset, msg))
            continue
        except Exception as e:  # noqa: BLE001 - any other type is the failure being tested
            bad.append("%s: expected DecodeError, got %s: %s" % (hexdata, type(e).__name__, e))
            continue
        bad.append("%s: expected DecodeError, decoded %r" % (hexdata, value))
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------- vectors


def test_rfc_8949_appendix_a_both_ways():
    check_both_ways(RFC_8949)


def test_rfc_8949_unsupported_items_rejected_at_their_offset():
    check_rejects(RFC_8949_UNSUPPORTED)


def test_map_keys_sorted_length_first_then_bytewise():
    check_both_ways(CANONICAL_MAPS)


def test_64_bit_integer_edges():
    check_both_ways(INT_EDGES)


def test_key_order_does_not_depend_on_insertion_order():
    a = {}
    b = {}
    keys = [300, "k", b"kk", -5, "longer key", 0, b""]
    for k in keys:
        a[k] = k
    for k in reversed(keys):
        b[k] = k
    assert cbor.dumps(a) == cbor.dumps(b), support.tohex(cbor.dumps(a))


# ---------------------------------------------------------------- encoding


def test_dumps_accepts_bytearray_memoryview_and_tuple():
    assert cbor.dumps(bytearray(b"\x01\x02")) == b"\x42\x01\x02"
    assert cbor.dumps(memoryview(b"\x00\x01\x02\x03")[1:3]) == b"\x42\x01\x02"
    assert cbor.dumps((1, (2,))) == b"\x82\x01\x81\x02"


def test_dumps_names_the_unsupported_type():
    for value, name in ((1.5, "float"), ({1, 2}, "set"), (object(), "object"), ([1, 2.0], "float")):
        e = support.raises(cbor.EncodeError, cbor.dumps, value)
        assert name in str(e), str(e)


def test_dumps_refuses_ints_outside_64_bits():
    e = support.raises(cbor.EncodeError, cbor.dumps, 18446744073709551616)
    assert "18446744073709551616" in str(e), str(e)
    e = support.raises(cbor.EncodeError, cbor.dumps, -18446744073709551617)
    assert "-18446744073709551617" in str(e), str(e)


def test_dumps_refuses_container_keys_and_deep_nesting():
    e = support.raises(cbor.EncodeError, cbor.dumps, {(1, 2): 0})
    assert "tuple" in str(e), str(e)
    deep = 0
    for _ in range(17):
        deep = [deep]
    e = support.raises(cbor.EncodeError, cbor.dumps, deep)
    assert "16" in str(e), str(e)
    loop = []
    loop.append(loop)
    support.raises(cbor.EncodeError, cbor.dumps, loop)
    assert cbor.loads(cbor.dumps(deep[0])) == deep[0]


def test_errors_are_protocol_errors():
    from protocol.errors import DecodeError, EncodeError, ProtocolError

    assert cbor.DecodeError is DecodeError and cbor.EncodeError is EncodeError
    assert issubclass(DecodeError, ProtocolError) and issubclass(EncodeError, ProtocolError)


# ---------------------------------------------------------------- corrupted input


def corrupt(word):
    """The CORRUPT cases for ``word`` as ``(hex, offset, word)``."""
    cases = []
    for line in CORRUPT[word].split("\n"):
        fields = line.split("#")[0].split()
        if fields:
            hexdata = "".join(fields[1:])
            cases.append(("" if hexdata == "-" else hexdata, int(fields[0]), word))
    return cases


def test_corrupt_truncated_and_lengths_beyond_data():
    check_rejects(corrupt("truncated"))


def test_corrupt_trailing_bytes():
    check_rejects(corrupt("trailing"))


def test_corrupt_indefinite_lengths_and_break():
    check_rejects(corrupt("indefinite") + corrupt("break"))


def test_corrupt_invalid_utf8():
    check_rejects(corrupt("UTF-8"))


def test_corrupt_floats_tags_simple_values():
    check_rejects(corrupt("float") + corrupt("tag") + corrupt("simple"))


def test_corrupt_reserved_additional_info():
    check_rejects(corrupt("reserved"))


def test_corrupt_map_keys_duplicate_or_container():
    check_rejects(corrupt("duplicate") + corrupt("keys"))


def test_corrupt_nesting_deeper_than_16():
    value = cbor.loads(support.unhex("81" * 16 + "00"))
    for _ in range(16):
        value = value[0]
    assert value == 0
    check_rejects(
        [("81" * 17 + "00", 16, "deeper"), ("a100" * 17 + "00", 32, "deeper"), ("81" * 200 + "00", 16, "deeper")]
    )


def test_huge_declared_length_fails_fast_without_allocating():
    start = time.time()
    for hexdata in ("5b ffffffffffffffff", "9b ffffffffffffffff 00", "bb ffffffffffffffff 00 00"):
        e = support.raises(cbor.DecodeError, cbor.loads, support.unhex(hexdata))
        assert "at offset 0" in str(e), str(e)
    assert time.time() - start < 2


def check_only_decode_error(data, bad):
    try:
        cbor.loads(data)
    except cbor.DecodeError as e:
        if "at offset " not in str(e):
            bad.append("%s: no offset in %r" % (support.tohex(data), str(e)))
    except Exception as e:  # noqa: BLE001 - any other type is the failure being tested
        bad.append("%s: %s: %s" % (support.tohex(data), type(e).__name__, e))


def test_mutated_encodings_raise_only_decode_error():
    # Deterministic mini fuzz, cheap enough for MicroPython: truncate a real message at every
    # length and overwrite every byte with values that hit each error path.
    base = cbor.dumps({"v": 1, "t": "sale \u00e9", "n": -300, "b": b"\x00\xff", "l": [True, None, 65536]})
    bad = []
    for cut in range(len(base)):
        check_only_decode_error(base[:cut], bad)
    buf = bytearray(base)
    for i in range(len(base)):
        for b in (0x00, 0x18, 0x1F, 0x3B, 0x5B, 0x7F, 0x9B, 0xBB, 0xC0, 0xF9, 0xFF, base[i] ^ 0x80):
            buf[i] = b
            check_only_decode_error(buf, bad)
        buf[i] = base[i]
    assert not bad, "\n".join(bad[:10])


# ---------------------------------------------------------------- decoding API and round trips


def test_loads_accepts_bytearray_and_memoryview_slices():
    data = bytearray(b"\xff\x82\x01\x61\x61\xff")
    assert cbor.loads(bytearray(data[1:5])) == [1, "a"]
    assert cbor.loads(memoryview(data)[1:5]) == [1, "a"]
    # offsets in messages count from the start of the view
    e = support.raises(cbor.DecodeError, cbor.loads, memoryview(data)[1:6])
    assert "at offset 4" in str(e), str(e)


def test_loads_refuses_non_bytes():
    support.raises(TypeError, cbor.loads, "00")
    support.raises(TypeError, cbor.loads, None)


def test_loads_accepts_non_shortest_heads_like_cbor2():
    assert same(cbor.loads(support.unhex("18 01")), 1)
    assert same(cbor.loads(support.unhex("3b 00 00 00 00 00 00 00 00")), -1)
    assert same(cbor.loads(support.unhex("59 00 01 61")), b"a")


def test_nested_round_trip():
    batch = {
        "v": 1,
        "type": "upload",
        "terminal": 1001,
        "ts": 1764057600,
        "nonce": bytes(range(16)),
        "records": [bytes([i]) * 64 for i in range(10)],
        "meta": {"fw": "0.1.0", "flags": [True, False, None], "limits": {-1: "", 2: [[], {}]}},
        "edges": [18446744073709551615, -18446744073709551616, 0, -1],
        "text": "\u98df\u5802 canteen \U0001f35c",
    }
    data = cbor.dumps(batch)
    assert same(cbor.loads(data), batch)
    assert cbor.dumps(cbor.loads(data)) == data
    deep = "leaf"
    for i in range(16):
        deep = [deep] if i % 2 else {i: deep}
    assert same(cbor.loads(cbor.dumps(deep)), deep)
