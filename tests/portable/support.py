"""Small helpers the portable tests share on MicroPython and CPython.

Portable tests are plain ``test_*`` functions using ``assert`` and these helpers only,
so the same file runs under pytest and under ``tests/mpy_runner.py`` on MicroPython.
"""

import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"


class SkipTest(Exception):
    """Raised by a portable test that cannot run on this runtime; the message says why."""


def skip(reason):
    if not IS_MICROPYTHON:
        import pytest

        pytest.skip(reason)
    raise SkipTest(reason)


def raises(exc_type, fn, *args):
    """Call ``fn(*args)``, require it to raise ``exc_type`` and return the exception."""
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("expected %s from %r" % (exc_type.__name__, fn))


def unhex(text):
    """Bytes from hex text that may hold spaces."""
    import binascii

    return binascii.unhexlify(text.replace(" ", ""))


def tohex(data):
    import binascii

    return binascii.hexlify(data).decode()
