"""What CPython lacks of MicroPython's builtins, so shared code imports on both.

Usage::

    try:
        from micropython import const
    except ImportError:
        from protocol.compat import const
"""


def const(value):
    """Identity stand-in for ``micropython.const`` on CPython."""
    return value


def native(fn):
    """Identity stand-in for ``micropython.native`` on CPython (the decorator compiles a
    function to machine code on MicroPython)."""
    return fn


def viper(fn):
    """Identity stand-in for ``micropython.viper`` on CPython."""
    return fn


# Viper's byte pointer type, for annotations CPython evaluates (MicroPython compiles them away).
ptr8 = bytearray
