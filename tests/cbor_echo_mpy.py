"""MicroPython side of tests/test_cbor_cross.py: protocol.cbor answering one request a line.

Run as ``micropython -X heapsize=64K tests/cbor_echo_mpy.py`` with MICROPYPATH holding the repo.
Requests on stdin, one reply line each on stdout:

    D <hex>      loads the bytes  -> "OK <hex of dumps(value)> <repr(value)>"
    E <literal>  evaluates a Python literal, dumps it -> "OK <hex>"
    any failure  -> "ERR <exception type> <message>"
"""

import binascii
import sys

from protocol import cbor


def answer(line):
    cmd = line[:1]
    arg = line[2:]
    if cmd == "D":
        value = cbor.loads(binascii.unhexlify(arg))
        return "OK " + binascii.hexlify(cbor.dumps(value)).decode() + " " + repr(value)
    if cmd == "E":
        return "OK " + binascii.hexlify(cbor.dumps(eval(arg))).decode()
    raise ValueError("unknown request " + repr(cmd))


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        try:
            reply = answer(line.rstrip("\n"))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the host
            reply = "ERR " + type(e).__name__ + " " + str(e).replace("\n", " ")
        sys.stdout.write(reply + "\n")


main()
