"""How fast MicroPython's protocol.cbor decodes a 100-record upload, next to cbor2 on CPython.

Builds a real sealed upload message (``protocol.messages.seal``: envelope map whose ``body`` is
the upload map with 100 64-byte records), checks the bytes are exactly what
``cbor2.dumps(..., canonical=True)`` writes, then times decoding both levels (envelope, then
body) of those same bytes: in a ``micropython -X heapsize=64K`` subprocess with
``time.ticks_us``, and with ``cbor2.loads`` here.

Usage::

    .venv/bin/python benchmarks/cbor_decode.py [--iterations 1000]

The last line of output is one JSON object: ``micropython_ms_per_batch``,
``cbor2_ms_per_batch``, ``records``, plus the batch size and iteration counts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cbor2  # noqa: E402

from protocol import messages  # noqa: E402
from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd  # noqa: E402

RECORDS = 100
RECORD_SIZE = 64

# Runs on MicroPython. argv: message file, iterations, expected records; prints "<n> <total us>".
MPY_TIMER = """
import sys, time, gc
from protocol import cbor
with open(sys.argv[1], "rb") as f:
    wire = f.read()
n = int(sys.argv[2])
env = cbor.loads(wire)
msg = cbor.loads(env["body"])
if len(msg["records"]) != int(sys.argv[3]):
    raise SystemExit("decoded %d records" % len(msg["records"]))
del env, msg
gc.collect()
t0 = time.ticks_us()
for _ in range(n):
    cbor.loads(cbor.loads(wire)["body"])
dt = time.ticks_diff(time.ticks_us(), t0)
print(n, dt)
"""


def build_upload(records: int = RECORDS) -> bytes:
    """A sealed upload message as the terminal sends it, with ``records`` random 64-byte records."""
    rng = random.Random(20251125)
    recs = [rng.randbytes(RECORD_SIZE) for _ in range(records)]
    key = rng.randbytes(32)
    nonce = rng.randbytes(messages.NONCE_SIZE)
    return messages.seal(key, 1001, "upload", {"records": recs}, 1764057600, nonce)


def check_canonical(wire: bytes) -> None:
    """The bench decodes what cbor2 canonical writes: both levels must re-encode identically."""
    env = cbor2.loads(wire)
    if cbor2.dumps(env, canonical=True) != wire:
        raise SystemExit("envelope is not cbor2 canonical CBOR")
    if cbor2.dumps(cbor2.loads(env["body"]), canonical=True) != env["body"]:
        raise SystemExit("upload body is not cbor2 canonical CBOR")


def time_micropython(wire: bytes, iterations: int) -> float:
    """Milliseconds per batch for protocol.cbor on the MicroPython unix port (64 KB heap)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.cbor"
        path.write_bytes(wire)
        proc = subprocess.run(
            [micropython_binary(), "-X", "heapsize=64K", "-c", MPY_TIMER, str(path), str(iterations), str(RECORDS)],
            capture_output=True,
            text=True,
            env=micropython_env(),
            cwd=mpy_cwd(),
            timeout=300,
        )
    lines = proc.stdout.split()
    if proc.returncode != 0 or len(lines) != 2:
        raise SystemExit(f"MicroPython timing run failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    n, total_us = int(lines[0]), int(lines[1])
    return total_us / n / 1000


def time_cbor2(wire: bytes, iterations: int) -> float:
    """Milliseconds per batch for cbor2.loads on this CPython."""
    cbor2.loads(cbor2.loads(wire)["body"])
    t0 = time.perf_counter()
    for _ in range(iterations):
        cbor2.loads(cbor2.loads(wire)["body"])
    return (time.perf_counter() - t0) * 1000 / iterations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=1000, help="batches decoded on MicroPython")
    args = parser.parse_args(argv)
    wire = build_upload()
    check_canonical(wire)
    mpy_ms = time_micropython(wire, args.iterations)
    cpy_iterations = args.iterations * 50
    cbor2_ms = time_cbor2(wire, cpy_iterations)
    print(f"upload batch: {RECORDS} records x {RECORD_SIZE} bytes, {len(wire)} bytes on the wire")
    print(f"MicroPython protocol.cbor (heap 64K): {mpy_ms:.3f} ms per batch ({args.iterations} batches)")
    version = importlib.metadata.version("cbor2")
    print(f"CPython cbor2 {version}: {cbor2_ms:.4f} ms per batch ({cpy_iterations} batches)")
    print(f"MicroPython / cbor2: {mpy_ms / cbor2_ms:.0f}x")
    print(
        json.dumps(
            {
                "micropython_ms_per_batch": round(mpy_ms, 4),
                "cbor2_ms_per_batch": round(cbor2_ms, 5),
                "records": RECORDS,
                "wire_bytes": len(wire),
                "micropython_iterations": args.iterations,
                "cbor2_iterations": cpy_iterations,
            }
        )
    )


if __name__ == "__main__":
    main()
