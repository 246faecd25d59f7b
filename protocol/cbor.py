"""Deterministic CBOR (RFC 8949) for the wire format, on MicroPython and CPython alike.

Types: None, bool, int (-2**64 .. 2**64-1), bytes, str, list, dict. ``dumps`` writes the
deterministic encoding (shortest heads, definite lengths, map keys sorted length-first then
bytewise), byte for byte what ``cbor2.dumps(obj, canonical=True)`` writes. ``loads`` takes
untrusted input: anything malformed or unsupported (floats, tags, other simple values,
indefinite lengths, nesting deeper than 16) raises ``DecodeError`` naming the byte offset,
before anything the input claims is allocated.

Usage::

    from protocol import cbor

    cbor.dumps({"v": 1, "r": [b"\\x01"]})    # b"\\xa2ar\\x81A\\x01av\\x01" ("r" sorts before "v")
    cbor.loads(b"\\xa2ar\\x81A\\x01av\\x01")   # {"r": [b"\\x01"], "v": 1}
    cbor.loads(b"\\x82\\x01\\xf9\\x3c\\x00")   # DecodeError: float ... at offset 2
"""

import struct

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

from protocol.errors import DecodeError, EncodeError

__all__ = ["dumps", "loads", "head", "DecodeError", "EncodeError"]

# RFC 8949 section 3.1: major types, the top 3 bits of the initial byte
_MT_BYTES = const(2)
_MT_TEXT = const(3)
_MT_ARRAY = const(4)
_MT_MAP = const(5)
_MT_TAG = const(6)
_MT_SIMPLE = const(7)
# Additional information 24..27: the argument follows in 1, 2, 4 or 8 bytes
_AI_1BYTE = const(24)
_AI_8BYTE = const(27)
_AI_INDEFINITE = const(31)
# RFC 8949 section 3.3: false, true, null (the only simple values supported)
_FALSE = const(0xF4)
_TRUE = const(0xF5)
_NULL = const(0xF6)

_MAX_DEPTH = const(16)
_UINT64_MAX = 0xFFFFFFFFFFFFFFFF  # a big int on MicroPython, so no const()
_HEAD_FORMATS = (">BB", ">BH", ">BI", ">BQ")
_NAMES = ("uint", "negative int", "byte string", "text string", "array", "map")


def dumps(obj):
    """Encode ``obj`` deterministically (RFC 8949 section 4.2, length-first map key order).

    :param obj: None, bool, int, bytes/bytearray/memoryview, str, list/tuple, dict of those.
    :raises EncodeError: for another type, an int beyond 64 bits, a container as a map key
        or containers nested deeper than 16.
    """
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


def _head(out, major, n):
    """Append the shortest head of major type ``major`` with argument ``n``."""
    if n < 24:
        out.append(major << 5 | n)
    else:
        ai = 0 if n < 0x100 else 1 if n < 0x10000 else 2 if n < 0x100000000 else 3
        out.extend(struct.pack(_HEAD_FORMATS[ai], major << 5 | (_AI_1BYTE + ai), n))


def head(major, n):
    """The shortest head of major type ``major`` with argument ``n``, for streaming encoders."""
    out = bytearray()
    _head(out, major, n)
    return bytes(out)


def _encode(out, obj, depth):
    if obj is None or obj is True or obj is False:
        out.append(_NULL if obj is None else _TRUE if obj is True else _FALSE)
    elif isinstance(obj, int):
        n = obj if obj >= 0 else -1 - obj
        if n > _UINT64_MAX:
            raise EncodeError("int %d is outside the 64-bit CBOR range -2**64 .. 2**64-1" % obj)
        _head(out, 0 if obj >= 0 else 1, n)
    elif isinstance(obj, (str, bytes, bytearray, memoryview)):
        major = _MT_BYTES
        if isinstance(obj, str):
            major = _MT_TEXT
            try:
                obj = obj.encode("utf-8")
            except UnicodeError:  # CPython: a lone surrogate
                raise EncodeError("str with a lone surrogate is not valid UTF-8")
        elif isinstance(obj, memoryview):
            obj = bytes(obj)  # len() of a memoryview counts items, not bytes
        _head(out, major, len(obj))
        out.extend(obj)
    elif isinstance(obj, (list, tuple, dict)):
        if depth >= _MAX_DEPTH:
            raise EncodeError("containers nest deeper than %d" % _MAX_DEPTH)
        if isinstance(obj, dict):
            _encode_map(out, obj, depth + 1)
        else:
            _head(out, _MT_ARRAY, len(obj))
            for item in obj:
                _encode(out, item, depth + 1)
    else:
        raise EncodeError(
            "cannot encode %s: supported are None, bool, int, bytes, str, list, tuple, dict" % type(obj).__name__
        )


def _encode_map(out, obj, depth):
    pairs = []
    for key, value in obj.items():
        if isinstance(key, (list, tuple, dict)):
            raise EncodeError("map key of type %s: keys must be int, str or bytes" % type(key).__name__)
        kb = bytearray()
        _encode(kb, key, depth)
        pairs.append((len(kb), kb, value))
    # RFC 8949 section 4.2.3 (length-first): shorter encoded key first, then bytewise.
    # Distinct keys encode differently, so the values are never compared.
    pairs.sort()
    _head(out, _MT_MAP, len(pairs))
    for _, kb, value in pairs:
        out.extend(kb)
        _encode(out, value, depth)


def loads(data):
    """Decode the one CBOR data item that fills ``data``.

    :param data: bytes, bytearray or memoryview of bytes.
    :raises DecodeError: malformed, truncated, trailing or unsupported input; the message
        names the byte offset (from the start of ``data``) of the offending item.
    :raises TypeError: ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("cbor.loads needs bytes, bytearray or memoryview, not %s" % type(data).__name__)
    mv = memoryview(data)
    value, pos = _decode(mv, 0, len(mv), 0)
    if pos != len(mv):
        raise _error("%d trailing bytes after the data item" % (len(mv) - pos), pos)
    return value


def _error(what, pos):
    return DecodeError("%s at offset %d" % (what, pos))


def _decode(mv, pos, end, depth):
    """Decode the item at ``pos``; return ``(value, offset after it)``."""
    if pos >= end:
        raise _error("truncated: expected a data item", pos)
    start = pos
    ib = mv[pos]
    major = ib >> 5
    ai = ib & 0x1F
    pos += 1
    if major == _MT_SIMPLE:
        if _FALSE <= ib <= _NULL:
            return (False, True, None)[ib - _FALSE], pos
        if _AI_1BYTE < ai <= _AI_8BYTE:
            why = "floats are not supported"
        elif ai == _AI_INDEFINITE:
            why = "unexpected break outside an indefinite-length item"
        elif ai > _AI_8BYTE:
            why = "reserved additional information %d" % ai
        else:
            why = "simple values other than false/true/null are not supported"
        raise _error("%s (initial byte 0x%02x)" % (why, ib), start)
    if major == _MT_TAG:
        raise _error("tags are not supported (initial byte 0x%02x)" % ib, start)
    n = ai
    if ai >= _AI_1BYTE:
        if ai == _AI_INDEFINITE and major >= _MT_BYTES:
            raise _error("indefinite-length %s (0x%02x) is not supported" % (_NAMES[major], ib), start)
        if ai > _AI_8BYTE:
            raise _error("reserved additional information %d (0x%02x)" % (ai, ib), start)
        size = 1 << (ai - _AI_1BYTE)
        if size > end - pos:
            raise _error("truncated: head needs %d more bytes, %d remain" % (size, end - pos), start)
        n = mv[pos] if size == 1 else int.from_bytes(mv[pos : pos + size], "big")
        pos += size
    if major < _MT_BYTES:
        return (n if major == 0 else -1 - n), pos
    if major <= _MT_TEXT:
        # Compare the claimed length with what is there before slicing anything.
        if n > end - pos:
            raise _error("truncated: %s of length %d, %d bytes remain" % (_NAMES[major], n, end - pos), start)
        if major == _MT_BYTES:
            return bytes(mv[pos : pos + n]), pos + n
        return _decode_text(mv, pos, pos + n), pos + n
    if depth >= _MAX_DEPTH:
        raise _error("containers nest deeper than %d" % _MAX_DEPTH, start)
    # Every array item takes at least 1 byte and every map pair 2: a count above that is a
    # lie, refused before building anything.
    if n > (end - pos) >> (major - _MT_ARRAY):
        raise _error("truncated: %s of %d items, %d bytes remain" % (_NAMES[major], n, end - pos), start)
    depth += 1
    if major == _MT_ARRAY:
        items = []
        for _ in range(n):
            value, pos = _decode(mv, pos, end, depth)
            items.append(value)
        return items, pos
    result = {}
    for _ in range(n):
        if pos < end and mv[pos] >> 5 in (_MT_ARRAY, _MT_MAP):
            raise _error("map key is an %s, keys must be int, str or bytes," % _NAMES[mv[pos] >> 5], pos)
        key_pos = pos
        key, pos = _decode(mv, pos, end, depth)
        if key in result:
            raise _error("duplicate map key %s" % repr(key)[:40], key_pos)
        result[key], pos = _decode(mv, pos, end, depth)
    return result, pos


def _decode_text(mv, pos, stop):
    """The text in ``mv[pos:stop]``, held to strict UTF-8 (RFC 3629) on both runtimes."""
    try:
        text = str(mv[pos:stop], "utf-8")
        if len(text) == stop - pos:
            return text  # ASCII only: nothing more to check
    except UnicodeError:
        text = None
    # MicroPython's decoder lets overlong forms, surrogates and code points above U+10FFFF
    # through; walk the bytes to refuse them and to name the first bad one.
    i = pos
    while i < stop:
        b = mv[i]
        if b < 0x80:
            i += 1
            continue
        if b < 0xC2 or b > 0xF4:
            break
        n = 1 if b < 0xE0 else 2 if b < 0xF0 else 3
        lo = 0xA0 if b == 0xE0 else 0x90 if b == 0xF0 else 0x80  # no overlong forms
        hi = 0x9F if b == 0xED else 0x8F if b == 0xF4 else 0xBF  # no surrogates, <= U+10FFFF
        if i + n >= stop or not lo <= mv[i + 1] <= hi:
            break
        k = i + 2
        while k <= i + n and mv[k] & 0xC0 == 0x80:
            k += 1
        if k <= i + n:
            break
        i = k
    if i < stop or text is None:
        raise _error("invalid UTF-8 in text string", i)
    return text
