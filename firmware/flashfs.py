"""Small file-system helpers for the flash stores (journal, UID lists, door lists).

Usage::

    from firmware.flashfs import close_file, remove_if_exists
    close_file(f)                 # a failed close cannot leave a stale file object behind
    remove_if_exists("/flash/bl.tmp")
"""

import os

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_ENOENT = const(2)


def close_file(f):
    """Close ``f`` and raise the close error, if any, only after a second close: MicroPython
    leaves a littlefs file open when its close fails, and a finaliser would later flush a
    stale view of it over newer data."""
    try:
        f.close()
    except OSError:
        try:
            f.close()
        except OSError:
            pass
        raise


def remove_if_exists(path):
    """Delete ``path``; a missing file is fine, any other error is raised."""
    try:
        os.remove(path)
    except OSError as e:
        if e.args[0] != _ENOENT:
            raise
