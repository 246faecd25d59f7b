"""Pytest plugin: collect every portable test module a second time, to run on MicroPython.

Each ``tests/portable/test_*.py`` runs under pytest on CPython as usual, and once more under
``micropython -X heapsize=64K`` in a subprocess; every test there becomes its own pytest item
(``...::micropython::test_name``) that fails with the MicroPython traceback.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tools.mpy_runtime import (  # noqa: F401 - re-exported for tests that run MicroPython scripts
    HEAPSIZE,
    MPY_BUILD,
    PORTABLE,
    ROOT,
    build_mpy,
    micropython_binary,
    micropython_env,
)


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
