"""protocol.crypto against the `cryptography` package, on CPython and on MicroPython."""

from __future__ import annotations

import json
import struct
import subprocess

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import crypto
from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd


def ref_hmac(key: bytes, msg: bytes) -> bytes:
    h = c_hmac.HMAC(key, hashes.SHA256())
    h.update(msg)
    return h.finalize()


def ref_uid(uid: bytes) -> bytes:
    return bytes([len(uid)]) + uid


def ref_sector_key(master: bytes, uid: bytes, sector: int, kt: int) -> bytes:
    group, at = divmod(sector, 5)
    return ref_hmac(master, b"campuscard/sector-keys/v2" + bytes([kt, group]) + ref_uid(uid))[6 * at:6 * at + 6]


def ref_terminal_key(master: bytes, tid: int) -> bytes:
    return ref_hmac(master, b"campuscard/terminal-key/v1" + struct.pack(">I", tid))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_cryptography_on_cpython(key: bytes, msg: bytes) -> None:
    assert crypto.hmac_sha256(key, msg) == ref_hmac(key, msg)
    assert crypto.hmac_sha256_py(key, msg) == ref_hmac(key, msg)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=48),
       st.sampled_from([4, 7]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
       st.integers(0, 15), st.sampled_from([crypto.KEY_A, crypto.KEY_B]), st.integers(1, 2**32 - 1))
def test_diversification_matches_reference(master: bytes, uid: bytes, sector: int, kt: int, tid: int) -> None:
    assert crypto.card_sector_key(master, uid, sector, kt) == ref_sector_key(master, uid, sector, kt)
    assert crypto.terminal_key(master, tid) == ref_terminal_key(master, tid)
    assert crypto.purse_mac_key(master, uid) == ref_hmac(master, b"campuscard/purse-mac/v1" + ref_uid(uid))[:16]
    assert crypto.issuer_mac_key(master, uid) == ref_hmac(master, b"campuscard/issuer-mac/v1" + ref_uid(uid))[:16]


MPY_SCRIPT = r"""
import sys, json, binascii
from protocol import crypto
for line in sys.stdin:
    c = json.loads(line)
    k = binascii.unhexlify(c["key"]); m = binascii.unhexlify(c["msg"])
    uid = binascii.unhexlify(c["uid"])
    out = [crypto.hmac_sha256(k, m),
           crypto.card_sector_key(c["master"] and binascii.unhexlify(c["master"]), uid, c["sector"], c["kt"]),
           crypto.purse_mac_key(binascii.unhexlify(c["master"]), uid),
           crypto.terminal_key(binascii.unhexlify(c["master"]), c["tid"])]
    print(" ".join(binascii.hexlify(x).decode() for x in out))
"""


def test_micropython_crypto_matches_cryptography() -> None:
    import random

    rnd = random.Random(4231)
    cases = []
    for _ in range(150):
        n = rnd.choice([0, 1, 31, 32, 63, 64, 65, 100, 200])
        cases.append({
            "key": rnd.randbytes(n).hex(), "msg": rnd.randbytes(rnd.randrange(0, 300)).hex(),
            "uid": rnd.randbytes(rnd.choice([4, 7])).hex(), "master": rnd.randbytes(rnd.choice([16, 32])).hex(),
            "sector": rnd.randrange(16), "kt": rnd.choice([0x60, 0x61]), "tid": rnd.randrange(1, 2**32),
        })
    proc = subprocess.run([micropython_binary(), "-X", "heapsize=64K", "-c", MPY_SCRIPT],
                          input="\n".join(json.dumps(c) for c in cases) + "\n", capture_output=True, text=True,
                          env=micropython_env(), cwd=mpy_cwd(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert len([x for x in lines if x]) == len(cases)
    for c, line in zip(cases, lines):
        master, uid = bytes.fromhex(c["master"]), bytes.fromhex(c["uid"])
        want = [ref_hmac(bytes.fromhex(c["key"]), bytes.fromhex(c["msg"])),
                ref_sector_key(master, uid, c["sector"], c["kt"]),
                ref_hmac(master, b"campuscard/purse-mac/v1" + ref_uid(uid))[:16],
                ref_terminal_key(master, c["tid"])]
        assert line.split() == [w.hex() for w in want]
