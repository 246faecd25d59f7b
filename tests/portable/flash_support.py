"""Helpers shared by the journal, blacklist and flash tests, on MicroPython and CPython.

Usage::

    import flash_support as fs
    root = fs.tempdir("journal")          # a fresh host directory (VfsPosix on MicroPython)
    ...
    fs.rmtree(root)
    buf = bytearray(64); fs.fill_record(buf, 5)      # the body of the 5th test record
    links = fs.reference_links(KEY, 40)              # links[s]: the link record s+1 carries
"""

import os

KEY = b"journal test key 0123456789abcde"  # 32 bytes
TERMINAL_ID = 1001
UID4 = b"\x04\xa1\xb2\xc3"


def tempdir(tag):
    """A new empty directory under /tmp (each runtime's own VFS), removed by ``rmtree``."""
    path = "/tmp/cc-%s-%s" % (tag, "".join("%02x" % b for b in os.urandom(6)))
    os.mkdir(path)
    return path


def rmtree(path):
    for name in os.listdir(path):
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def fill_record(buf, seq):
    """Bytes 0-55 of test record ``seq``: a purchase whose fields all depend on ``seq``."""
    from protocol import records  # here: the blacklist tests have no heap to spare for it

    records.encode_into(buf, records.PURCHASE, 0, TERMINAL_ID, seq, 1700000000 + seq, UID4, seq,
                        100 + seq, 100000 - seq, 99900 - 2 * seq)


def reference_links(key, n):
    """``links[s]`` is the link of the reference record ``s`` (``links[0]``: genesis)."""
    from protocol import records

    buf = bytearray(records.RECORD_SIZE)
    links = [records.GENESIS_LINK]
    for s in range(1, n + 1):
        fill_record(buf, s)
        records.sign_into(buf, key, links[-1])
        links.append(records.link_of(buf))
    return links


def expected_record(buf, key, links, seq):
    """Fill ``buf`` with exactly the record the journal must hold as number ``seq``."""
    from protocol import records

    fill_record(buf, seq)
    records.sign_into(buf, key, links[seq - 1])
    return buf


def file_size(path):
    return os.stat(path)[6]


def make_keys(start, n, step=1, length=7):
    """``n`` ascending 7-byte keys (4-byte UIDs padded when ``length`` is 4)."""
    out = []
    for i in range(n):
        v = start + i * step
        if length == 4:
            out.append(b"\x00\x00\x00" + bytes([0x04, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF]))
        else:
            out.append(bytes([0x04, 0x10, 0, (v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF,
                              v & 0xFF]))
    return out
