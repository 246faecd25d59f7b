"""Records and sealed messages made on one runtime are accepted, byte for byte, on the other."""

from __future__ import annotations

import subprocess

from protocol import messages, records
from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd

KEY = bytes(range(32))
NOW = 1764057600

MPY_SIGN = r"""
import binascii
from protocol import records, messages
key = bytes(range(32))
prev = records.GENESIS_LINK
out = []
for i in range(12):
    uid = b"\x04\x01\x02\x03" if i % 2 else b"\x04\x11\x22\x33\x44\x55\x66"
    rec = records.build(key, prev, 1 + i % 7, i % 64, 1001, i + 1, 1764057600 + i, uid, i, 100 * i - 500,
                        10000 - i, 9000 - i, i * 3, i * 5, i % 4)
    prev = records.link_of(rec)
    out.append(rec)
    print("REC", binascii.hexlify(rec).decode())
wire = messages.seal(key, 1001, "upload", {"records": out}, 1764057600, b"abcdefghijkl")
print("MSG", binascii.hexlify(wire).decode())
"""

MPY_VERIFY = r"""
import sys, binascii
from protocol import records, messages
key = bytes(range(32))
for line in sys.stdin:
    kind, hexdata = line.split()
    data = binascii.unhexlify(hexdata)
    if kind == "REC":
        r = records.decode(data)
        ok = "OK" if records.verify(data, key) else "BAD"
        print(ok, r.seq, r.counter, r.amount, binascii.hexlify(r.uid).decode(),
              binascii.hexlify(records.link_of(data)).decode())
    else:
        m = messages.unseal(data, key, "upload", 1764057600)
        print("MSG", len(m["records"]))
"""


def run_mpy(script: str, stdin: str = "") -> list[str]:
    proc = subprocess.run([micropython_binary(), "-X", "heapsize=64K", "-c", script], input=stdin,
                          capture_output=True, text=True, env=micropython_env(), cwd=mpy_cwd(), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_records_signed_on_micropython_verify_on_cpython() -> None:
    lines = run_mpy(MPY_SIGN)
    recs = [bytes.fromhex(line.split()[1]) for line in lines if line.startswith("REC")]
    assert len(recs) == 12
    prev = records.GENESIS_LINK
    for i, rec in enumerate(recs):
        assert records.verify(rec, KEY)
        r = records.decode(rec)
        assert (r.seq, r.amount, r.link) == (i + 1, 100 * i - 500, prev)
        prev = records.link_of(rec)
        tampered = bytearray(rec)
        tampered[30] ^= 4
        assert not records.verify(bytes(tampered), KEY)
    wire = bytes.fromhex(next(line for line in lines if line.startswith("MSG")).split()[1])
    assert messages.unseal(wire, KEY, "upload", NOW)["records"] == recs


def test_records_signed_on_cpython_verify_on_micropython() -> None:
    prev = records.GENESIS_LINK
    recs = []
    for i in range(12):
        rec = records.build(KEY, prev, records.PURCHASE, 0, 77, i + 1, NOW + i, b"\xaa\xbb\xcc\xdd", i, 250, 5000, 4750)
        prev = records.link_of(rec)
        recs.append(rec)
    bad = bytearray(recs[5])
    bad[40] ^= 1
    lines_in = [f"REC {r.hex()}" for r in recs] + [f"REC {bytes(bad).hex()}"]
    lines_in.append("MSG " + messages.seal(KEY, 77, "upload", {"records": recs}, NOW, b"x" * 12).hex())
    out = run_mpy(MPY_VERIFY, "\n".join(lines_in) + "\n")
    assert len(out) == 14
    for i, line in enumerate(out[:12]):
        ok, seq, counter, amount, uid, link = line.split()
        assert (ok, int(seq), int(counter), int(amount), uid) == ("OK", i + 1, i, 250, "aabbccdd")
        assert link == records.link_of(recs[i]).hex()
    assert out[12].startswith("BAD")
    assert out[13] == "MSG 12"
