"""The portable harness itself: these run on both runtimes."""

import sys

import support


def test_runtime_is_known():
    assert sys.implementation.name in ("micropython", "cpython")


def test_raises_helper_reports_missing_exception():
    e = support.raises(AssertionError, support.raises, ValueError, lambda: None)
    assert "ValueError" in str(e)
