"""MicroPython side of tests/test_pn532_driver.py: the real PN532 driver over the unix-port UART.

Usage: ``micropython -X heapsize=64K tests/pn532_driver_session.py <tty> <scenario>``
Prints one ``name value`` line per step; a reader error prints ``name !ErrorClass message``.
"""

import gc
import sys
import time

from firmware.drivers.pn532 import PN532_UART
from firmware.hw.unix_uart import UART
from firmware.mifare import KEY_A, KEY_B, ReaderError

KA = b"\xa0\xa1\xa2\xa3\xa4\xa5"
KB = b"\xb0\xb1\xb2\xb3\xb4\xb5"


def step(name, fn, *args):
    """Run one reader call; print "ok" (or its result) or its error; True if it worked."""
    try:
        result = fn(*args)
    except ReaderError as e:
        print(name, "!" + type(e).__name__, str(e))
        return False
    print(name, "ok" if result is None else result)
    return True


def select(rdr, uid):
    n = rdr.select(uid)
    print("select", n, bytes(uid[:n]).hex())
    return memoryview(uid)[:n]


def sale(rdr, uid_buf):
    buf = bytearray(16)
    uid = select(rdr, uid_buf)
    step("auth_a", rdr.auth, 4, KEY_A, KA, uid)
    if step("read4", rdr.read_block, 4, buf):
        print("data4", bytes(buf).hex())
    step("decrement", rdr.decrement, 5, 250)
    step("transfer5", rdr.transfer, 5)
    step("restore", rdr.restore, 5)
    step("transfer6", rdr.transfer, 6)
    step("increment_a", rdr.increment, 5, 1)  # key A may not increment: NAK
    uid = select(rdr, uid_buf)
    step("auth_b", rdr.auth, 4, KEY_B, KB, uid)
    step("write4", rdr.write_block, 4, b"written by fw!!!")
    step("increment_b", rdr.increment, 5, 100)
    step("transfer5b", rdr.transfer, 5)
    step("read5", rdr.read_block, 5, buf)
    print("data5", bytes(buf).hex())
    step("halt", rdr.halt)
    uid = select(rdr, uid_buf)
    step("auth_wrong", rdr.auth, 4, KEY_A, b"\x00" * 6, uid)
    print("counters", rdr.commands, rdr.card_ios, rdr.card_io_us)


def pull(rdr, uid_buf):
    buf = bytearray(16)
    uid = select(rdr, uid_buf)
    step("auth_a", rdr.auth, 4, KEY_A, KA, uid)
    step("read4", rdr.read_block, 4, buf)
    t0 = time.ticks_ms()
    step("decrement", rdr.decrement, 5, 250)
    print("pulled_ms", time.ticks_diff(time.ticks_ms(), t0))
    select(rdr, uid_buf)


def nocard(rdr, uid_buf):
    t0 = time.ticks_ms()
    select(rdr, uid_buf)
    print("poll_ms", time.ticks_diff(time.ticks_ms(), t0))
    least = 1 << 30
    for _ in range(5):  # heap bytes one poll allocates (the fewest of 5, between collections)
        gc.collect()
        before = gc.mem_alloc()
        rdr.select(uid_buf)
        least = min(least, gc.mem_alloc() - before)
    print("poll_alloc", least)


def main():
    path, scenario = sys.argv[1], sys.argv[2]
    rdr = PN532_UART(UART(path))
    step("init", rdr.init)
    print("version", "%d.%d.%d.%d" % rdr.get_firmware_version())  # noqa: UP031
    uid_buf = bytearray(7)
    {"sale": sale, "pull": pull, "nocard": nocard, "version": lambda r, u: None}[scenario](rdr, uid_buf)
    print("done")


main()
