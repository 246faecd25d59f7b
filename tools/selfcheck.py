"""A short honest self-check of the shared protocol on the real MicroPython unix port.

It runs the protocol on MicroPython under a 64 KB heap, signs records and seals a message
there, and verifies them on CPython with the server-side libraries (cbor2, cryptography).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import cbor2
from cryptography.hazmat.primitives import hashes, hmac

from protocol import messages, records
from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd

_SCRIPT = r"""
import binascii, sys
from protocol import records, messages
key = bytes(range(32))
print("runtime", sys.implementation.name, sys.version)
prev = records.GENESIS_LINK
recs = []
for i in range(5):
    rec = records.build(key, prev, records.PURCHASE, 0, 1001, i + 1, 1764057600 + i, b"\x04\xa1\xb2\xc3",
                        i + 1, 1250, 10000 - 1250 * i, 10000 - 1250 * (i + 1))
    prev = records.link_of(rec)
    recs.append(rec)
print("records", len(recs))
print("message", binascii.hexlify(messages.seal(key, 1001, "upload", {"records": recs}, 1764057600,
                                                b"selfcheck-01")).decode())
"""

_SCRIPT_CARD = r"""
import binascii
from protocol import card_layout as cl, crypto
print("value", binascii.hexlify(cl.encode_value_block(-2000, 8)).decode())
print("hmac", binascii.hexlify(crypto.hmac_sha256(b"key", b"The quick brown fox")).decode())
"""


def run(echo: Callable[[str], None] = print) -> bool:
    """Run the self-check; report each step through ``echo``; True when every step passed."""
    echo("Self-check of the shared protocol (the full demo comes with the end-to-end work).")
    out: dict[str, str] = {}
    for script in (_SCRIPT, _SCRIPT_CARD):
        proc = subprocess.run([micropython_binary(), "-X", "heapsize=64K", "-c", script], capture_output=True,
                              text=True, env=micropython_env(), cwd=mpy_cwd(), timeout=60)
        if proc.returncode != 0:
            echo(f"FAIL MicroPython run: {proc.stderr.strip() or proc.stdout.strip()}")
            return False
        out.update(line.split(" ", 1) for line in proc.stdout.splitlines())
    echo(f"ok   MicroPython runs the protocol under a 64 KB heap ({out['runtime'].strip()})")
    key = bytes(range(32))
    wire = bytes.fromhex(out["message"])
    ok = True
    try:
        msg = messages.unseal(wire, key, "upload", 1764057600)
        recs = msg["records"]
        chain_ok = all(records.verify(r, key) for r in recs) and all(
            records.decode(recs[i]).link == records.link_of(recs[i - 1]) for i in range(1, len(recs)))
        echo(f"{'ok  ' if chain_ok else 'FAIL'} {len(recs)} records signed on MicroPython verify and chain on CPython")
        ok &= chain_ok
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        echo(f"FAIL sealed upload from MicroPython does not open on CPython: {e}")
        return False
    same = cbor2.dumps(cbor2.loads(wire), canonical=True) == wire
    echo(f"{'ok  ' if same else 'FAIL'} MicroPython's CBOR equals cbor2 canonical encoding byte for byte")
    h = hmac.HMAC(b"key", hashes.SHA256())
    h.update(b"The quick brown fox")
    mac_ok = h.finalize().hex() == out["hmac"].strip()
    echo(f"{'ok  ' if mac_ok else 'FAIL'} HMAC-SHA256 on MicroPython equals the cryptography package")
    value_ok = out["value"].strip() == "30f8ffffcf07000030f8ffff08f708f7"
    echo(f"{'ok  ' if value_ok else 'FAIL'} MIFARE value block for -20.00 in the NXP format")
    ok = ok and same and mac_ok and value_ok
    echo("self-check passed" if ok else "self-check FAILED")
    return ok
