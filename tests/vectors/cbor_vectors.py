"""CBOR test vectors as ``(value, "hex")`` tables, plain literals so MicroPython imports them too.

RFC_8949 holds the RFC 8949 Appendix A examples for the types ``protocol.cbor`` supports
(each is also the deterministic encoding). RFC_8949_UNSUPPORTED holds the Appendix A examples
it must refuse, as ``("hex", offset, word)``: the DecodeError names the offset of the refused
item and holds the word; CORRUPT lists malformed input the same way, as text. CANONICAL_MAPS
pins the length-first key order of RFC 8949 section 4.2.3 (what ``cbor2.dumps(canonical=True)``
writes) and INT_EDGES every switch of head size plus both ends of the 64-bit range.

Usage::

    from tests.vectors.cbor_vectors import RFC_8949
    for value, hexdata in RFC_8949: ...
"""

RFC_8949 = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
]

# Appendix A items outside the supported types: floats, tags (bignums too), other simple
# values, indefinite lengths, as ("hex", offset the DecodeError must name, word it must hold).
RFC_8949_UNSUPPORTED = [
    ("c249010000000000000000", 0, "tag"),  # 18446744073709551616 as a bignum tag
    ("c349010000000000000000", 0, "tag"),  # -18446744073709551617
    ("f90000", 0, "float"),  # 0.0 half
    ("f93c00", 0, "float"),  # 1.0 half
    ("fb3ff199999999999a", 0, "float"),  # 1.1 double
    ("fa47c35000", 0, "float"),  # 100000.0 single
    ("f97c00", 0, "float"),  # Infinity
    ("f97e00", 0, "float"),  # NaN
    ("fbfff0000000000000", 0, "float"),  # -Infinity
    ("f7", 0, "simple"),  # undefined
    ("f0", 0, "simple"),  # simple(16)
    ("f8ff", 0, "simple"),  # simple(255)
    ("c074323031332d30332d32315432303a30343a30305a", 0, "tag"),  # tag 0 date string
    ("c11a514b67b0", 0, "tag"),  # tag 1 epoch
    ("d74401020304", 0, "tag"),  # tag 23
    ("d818456449455446", 0, "tag"),  # tag 24
    ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", 0, "tag"),  # tag 32 URI
    ("5f42010243030405ff", 0, "indefinite"),  # indefinite byte string
    ("7f657374726561646d696e67ff", 0, "indefinite"),  # indefinite text string
    ("9fff", 0, "indefinite"),  # indefinite array
    ("9f018202039f0405ffff", 0, "indefinite"),
    ("83018202039f0405ff", 5, "indefinite"),  # definite outside, indefinite inside
    ("83019f0203ff820405", 2, "indefinite"),
    ("bf61610161629f0203ffff", 0, "indefinite"),  # indefinite map
    ("826161bf61626163ff", 3, "indefinite"),
    ("bf6346756ef563416d7421ff", 0, "indefinite"),
]

# Deterministic map key order: shorter encoded key first, then bytewise (RFC 8949 4.2.3).
CANONICAL_MAPS = [
    ({"b": 1, "a": 2}, "a2616102616201"),
    ({"aa": 1, "b": 2}, "a261620262616101"),
    # plain bytewise order would put 0x20 (-1) last; length-first puts it second
    ({10: "a", 256: "b", -1: "c", 100: "d"}, "a40a6161206163186461641901006162"),
    ({b"\x01": 1, "a": 2, 0: 3}, "a30003410101616102"),
    ({"z": 1, b"zz": 2, 1000: 3}, "a3617a011903e803427a7a02"),
    ({-24: 0, -25: 1, 23: 2, 24: 3}, "a417023700181803381801"),
    ({"abc": {"b": 0, "a": 1}, "ab": [], "c": None}, "a36163f66261628063616263a2616101616200"),
    ({None: 1, False: 2, True: 3}, "a3f402f503f601"),
    ({"aa": 1, "b": 2, 100: 3, -1: 4, b"x": 5}, "a5200418640341780561620262616101"),
]

# Integer edges: each head size switch, and both ends of the 64-bit range.
INT_EDGES = [
    (23, "17"),
    (24, "1818"),
    (255, "18ff"),
    (256, "190100"),
    (65535, "19ffff"),
    (65536, "1a00010000"),
    (4294967295, "1affffffff"),
    (4294967296, "1b0000000100000000"),
    (9223372036854775807, "1b7fffffffffffffff"),
    (9223372036854775808, "1b8000000000000000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-24, "37"),
    (-25, "3818"),
    (-256, "38ff"),
    (-257, "390100"),
    (-65537, "3a00010000"),
    (-4294967297, "3b0000000100000000"),
    (-9223372036854775808, "3b7fffffffffffffff"),
    (-9223372036854775809, "3b8000000000000000"),
    (-18446744073709551616, "3bffffffffffffffff"),
]

# Corrupted or unsupported input, by the word the DecodeError message must hold. One case a
# line: the offset the message must name, the input in hex ("-" for none), an optional comment.
# Text rather than tuples: MicroPython compiles a few short strings far more cheaply.
CORRUPT = {
    "truncated": """
0  -                          # empty input
0  18                         # head needs 1 more byte
0  19 01
0  1a 00 00 00
0  3b 00 00 00 00 00 00 00
0  42 01                      # byte string longer than the data
0  63 61 61
0  82 01                      # 2 items cannot fit in 1 byte
2  82 01 61                   # second item cut
2  83 01 82 02
0  a1 01
3  a1 61 61                   # value missing
2  82 00 78
0  5b ffffffffffffffff        # lengths claimed beyond the data
0  7b ffffffffffffffff 61
0  9b ffffffffffffffff 00
0  bb ffffffffffffffff 00 00
0  5a ffffffff 00
2  82 00 5b 7fffffffffffffff
0  9a 7fffffff 00 00 00 00    # each array item takes >= 1 byte
0  98 05 00 00 00 00
0  b9 0003 00 00 00           # each map pair takes >= 2 bytes
""",
    "trailing": """
1  00 00
2  81 00 ff
1  a0 a0
2  41 00 00 00
""",
    "indefinite": """
0  5f 41 00 ff
0  7f 61 61 ff
0  9f ff
0  bf ff
1  81 9f 00 ff
""",
    "break": """
0  ff
2  82 00 ff
""",
    "reserved": """
0  1f                         # additional info 31 on an int
0  3f
0  1c
0  1d
0  3e
0  5c 00
0  7d
0  9e
0  bc
0  fc
1  81 fe
""",
    "UTF-8": """
1  61 ff
1  62 c0 80                   # overlong NUL
1  63 e0 80 af                # overlong
1  63 ed a0 80                # surrogate U+D800
1  64 f4 90 80 80             # above U+10FFFF
1  62 e2 82                   # sequence cut by the string's end
2  63 61 c3 28                # bad continuation byte
1  62 80 80                   # lone continuation bytes
4  82 61 61 62 c0 af
""",
    "float": """
0  f9 3c 00
0  fa 47 c3 50 00
0  fb 3f f1 99 99 99 99 99 9a
0  f9
2  82 01 f9 3c 00
""",
    "tag": """
0  c0 00
0  d8 20 00
2  82 00 c1 00
""",
    "simple": """
0  e0
0  f3
0  f7                         # undefined
0  f8 20
1  81 f8 ff
""",
    "duplicate": """
3  a2 01 00 01 00
4  a2 61 61 00 61 61 00
4  a2 41 00 00 41 00 01
""",
    "keys": """
1  a1 80 00                   # array as a key
1  a1 a0 00                   # map as a key
3  a2 00 00 82 00 00 00
""",
}
