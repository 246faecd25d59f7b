"""Small file-system helpers for the flash stores (journal, UID lists, door lists).

Usage::

    from firmware.flashfs import close_file, read_tagged, remove_if_exists, write_tagged
    close_file(f)                 # a failed close cannot leave a stale file object behind
    remove_if_exists("/flash/bl.tmp")
    write_tagged("/flash/jnl/ack", b"JACK", 1200)   # 8 bytes, replaced whole (tmp + rename)
    read_tagged("/flash/jnl/ack", b"JACK")          # 1200; 0 if missing, short or another tag
"""

import os
import struct

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_ENOENT = const(2)
_TAGGED = "<4sI"  # a 4-byte tag and an unsigned 32-bit value


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


def write_tagged(path, tag, value):
    """Replace ``path`` by ``tag`` and the 32-bit ``value``: written beside it and renamed over
    it, so that a power cut leaves the old value or the new one."""
    tmp = path + ".tmp"
    f = open(tmp, "wb")
    try:
        f.write(struct.pack(_TAGGED, tag, value))
    finally:
        close_file(f)
    os.rename(tmp, path)


def read_tagged(path, tag):
    """The value ``write_tagged`` stored in ``path`` under ``tag``; 0 if the file is missing,
    short or holds another tag."""
    try:
        with open(path, "rb") as f:
            data = f.read(8)
    except OSError:
        return 0
    if len(data) != 8:
        return 0
    found, value = struct.unpack(_TAGGED, data)
    return value if found == tag else 0
