"""protocol.cbor against cbor2 (canonical=True), on CPython and on the MicroPython unix port.

Hypothesis draws the values. On CPython they are checked in process; for MicroPython one
``micropython -X heapsize=64K tests/cbor_echo_mpy.py`` process serves the whole module, one
request line per example: it rebuilds the value from its repr and encodes it, and it decodes
cbor2's bytes and re-encodes them, so both directions are compared byte for byte with cbor2.
Fuzzing feeds random and mutated bytes to both runtimes: only DecodeError may come out,
at the same offset on both, and whatever decodes must equal ``cbor2.loads``.
"""

from __future__ import annotations

import ast
import os
import re
import select
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol import cbor
from tools.mpy_runtime import ROOT, micropython_binary, micropython_env, mpy_cwd

INT64 = st.integers(min_value=-(2**64), max_value=2**64 - 1)
SCALARS = st.none() | st.booleans() | INT64 | st.binary(max_size=40) | st.text(max_size=20)
KEYS = INT64 | st.text(max_size=10) | st.binary(max_size=10)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=24,
)
OFFSET = re.compile(r"at offset (\d+)$")
CROSS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def depth(value: Any) -> int:
    """How many containers nest in ``value`` (the codec allows 16)."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (plain == lets True pass for 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid canonical encoding with a few bytes overwritten, inserted, dropped or cut off."""
    data = bytearray(cbor2.dumps(draw(VALUES), canonical=True))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if action == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif action == "delete":
            del data[pos : pos + 1]
        elif action == "truncate":
            del data[pos:]
    return bytes(data)


# Heads that reach every decoder branch, strung together at random: nesting, container keys,
# claimed lengths, indefinite items, floats, tags, reserved values.
HEADS = [
    "00", "17", "18ff", "19ffff", "1bffffffffffffffff", "1c", "1f", "20", "3bffffffffffffffff", "40", "41",
    "5b0000000000000001", "5f", "61", "62c3", "63eda0", "7bffffffffffffffff", "80", "81", "82", "9f",
    "9b7fffffffffffffff", "a0", "a1", "a2", "bf", "ff", "f4", "f5", "f6", "f7", "f8", "f9", "fb", "c0", "d8",
]  # fmt: skip
TOKENS = st.lists(st.sampled_from([bytes.fromhex(h) for h in HEADS]) | st.binary(min_size=1, max_size=2), max_size=24)
# Containers 15 to 17 deep around the tokens: the nesting limit is 16.
NESTING = st.integers(15, 17).flatmap(lambda k: st.sampled_from([b"\x81" * k, b"\xa1\x00" * k, b""]))
FUZZ = st.binary(max_size=64) | mutated() | st.builds(lambda n, t: n + b"".join(t), NESTING, TOKENS)


class MicroPythonEcho:
    """One MicroPython process answering tests/cbor_echo_mpy.py requests, with a timeout per reply."""

    def __init__(self) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=64K", str(ROOT / "tests" / "cbor_echo_mpy.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=micropython_env(),
            cwd=mpy_cwd(),
        )
        self.pending = b""

    def ask(self, request: str, timeout: float = 10.0) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(request.encode() + b"\n")
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            ready, _, _ = select.select([fd], [], [], timeout)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                self.stderr.seek(0)
                raise AssertionError(
                    f"MicroPython gave no reply to {request[:200]!r} within {timeout} s "
                    f"(exit {self.proc.poll()}): {self.stderr.read().decode(errors='replace')[-2000:]}"
                )
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture(scope="module")
def mpy() -> Iterator[MicroPythonEcho]:
    echo = MicroPythonEcho()
    yield echo
    echo.close()


def offset_of(message: str) -> int:
    found = OFFSET.search(message)
    assert found, f"DecodeError message does not end with the offset: {message!r}"
    return int(found.group(1))


# ---------------------------------------------------------------- CPython


@CROSS
@given(VALUES)
def test_dumps_equals_cbor2_canonical_and_round_trips(value: Any) -> None:
    assume(depth(value) <= 16)
    expected = cbor2.dumps(value, canonical=True)
    got = cbor.dumps(value)
    assert got == expected, f"dumps({value!r}): expected {expected.hex()}, got {got.hex()}"
    assert same(cbor.loads(expected), value)
    assert same(cbor2.loads(got), value)


@CROSS
@given(FUZZ)
def test_fuzzed_bytes_decode_like_cbor2_or_raise_decode_error(data: bytes) -> None:
    try:
        value = cbor.loads(data)
    except cbor.DecodeError as e:
        assert offset_of(str(e)) <= len(data)
        return
    assert same(value, cbor2.loads(data)), f"loads({data.hex()}) = {value!r}, cbor2 says {cbor2.loads(data)!r}"


# ---------------------------------------------------------------- MicroPython


@CROSS
@given(VALUES)
def test_micropython_encodes_and_decodes_like_cbor2(mpy: MicroPythonEcho, value: Any) -> None:
    assume(depth(value) <= 16)
    expected = cbor2.dumps(value, canonical=True).hex()
    reply = mpy.ask("E " + repr(value))
    assert reply == "OK " + expected, f"MicroPython dumps({value!r}): expected {expected}, got {reply!r}"
    reply = mpy.ask("D " + expected)
    status, hexdata, text = reply.split(" ", 2)
    assert (status, hexdata) == ("OK", expected), f"MicroPython loads({expected}) re-encoded: {reply!r}"
    assert same(ast.literal_eval(text), value), f"MicroPython loads({expected}) = {text}, expected {value!r}"


@CROSS
@given(FUZZ)
def test_micropython_fuzzed_bytes_agree_with_cpython(mpy: MicroPythonEcho, data: bytes) -> None:
    reply = mpy.ask("D " + data.hex())
    try:
        value = cbor.loads(data)
    except cbor.DecodeError as e:
        assert reply.startswith("ERR DecodeError "), f"{data.hex()}: CPython raised {e}, MicroPython {reply!r}"
        assert offset_of(reply) == offset_of(str(e)), f"{data.hex()}: CPython {e}, MicroPython {reply!r}"
        return
    status, hexdata, text = reply.split(" ", 2)
    assert status == "OK", f"{data.hex()}: CPython decoded {value!r}, MicroPython said {reply!r}"
    assert same(ast.literal_eval(text), value), f"{data.hex()}: CPython {value!r}, MicroPython {text}"
    assert hexdata == cbor.dumps(value).hex(), f"{data.hex()}: MicroPython re-encoded {hexdata}"
