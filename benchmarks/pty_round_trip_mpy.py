"""The kernel's share of a reader command: bare PN532 round trips over a pty, under MicroPython.

Run by ``benchmarks/pos_tap.py`` with the pty of a responder that answers every 12-byte
InDataExchange READ frame with an ACK and a 16-byte read answer in one write, as the PN532
emulator does. The loop is what the firmware's UART layer does per command and nothing more
(``firmware.hw.unix_uart``: one write, one poll, one read; no frame checks), so its CPU time
is the floor that any reader driver pays per command on this pty.

Usage::

    micropython benchmarks/pty_round_trip_mpy.py /dev/pts/N [round trips]

Prints one JSON object: ``round_trips``, ``cpu_us_per_round_trip`` (user + system),
``user_us_per_round_trip``, ``system_us_per_round_trip``.
"""

import json
import sys

from firmware.hw.unix_uart import UART

_READ_FRAME = b"\x00\x00\xff\x05\xfb\xd4\x40\x01\x30\x04\xb7\x00"  # InDataExchange tg 1: READ block 4
_ANSWER = 6 + 26  # ACK, then 00 00 FF LEN LCS D5 41 status + 16 data + DCS 00


def cpu_ticks():
    """(utime, stime) of this process in clock ticks, from /proc/self/stat."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    uart = UART(path)
    buf = bytearray(64)
    mv = memoryview(buf)
    write, wait, readinto = uart.write, uart.wait, uart.readinto
    u0, s0 = cpu_ticks()
    for _ in range(n):
        write(_READ_FRAME)
        got = 0
        while got < _ANSWER:
            wait(100)
            got += readinto(mv[got:_ANSWER]) or 0
    u1, s1 = cpu_ticks()
    tick_us = 10000  # USER_HZ is 100 on Linux
    print(json.dumps({"round_trips": n, "cpu_us_per_round_trip": (u1 - u0 + s1 - s0) * tick_us / n,
                      "user_us_per_round_trip": (u1 - u0) * tick_us / n,
                      "system_us_per_round_trip": (s1 - s0) * tick_us / n}))


main()
