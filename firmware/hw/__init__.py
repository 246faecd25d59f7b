"""Host stand-ins for the board's buses (UART, SPI) on the MicroPython unix port, and the
MicroPython ``time.ticks_*`` functions for CPython, where the portable driver tests run too.

Usage (device code that must also import on CPython)::

    try:
        from time import sleep_ms, ticks_diff, ticks_ms
    except ImportError:
        from firmware.hw import sleep_ms, ticks_diff, ticks_ms
"""

import time


def ticks_ms():
    """Milliseconds from an arbitrary point, as MicroPython's ``time.ticks_ms``."""
    return time.monotonic_ns() // 1000000


def ticks_diff(end, start):
    return end - start


def sleep_ms(ms):
    time.sleep(ms / 1000)
