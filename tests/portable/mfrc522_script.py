"""Device half of ``tests/test_mfrc522_driver.py``: reader commands run by the MicroPython unix port.

The real driver (``firmware.drivers.mfrc522``) talks over ``firmware.hw.unix_spi`` to the
emulator that the CPython test serves. Commands are ``;``-separated; each prints one line,
``<command> = <result>`` or ``<command> ! <ErrorClass>: <message>``.

Usage (this module is compiled to .mpy with the portable tests, so it fits a 64 KB heap)::

    micropython -X heapsize=64K -c "import mfrc522_script; mfrc522_script.main('/tmp/x.sock', 'select;read 4')"

Commands: ``version``, ``select``, ``auth <block> A|B <key hex>``, ``read <block>``,
``write <block> <hex>``, ``dec|inc <block> <amount>``, ``restore <block>``,
``transfer <block>``, ``halt``, ``counters``.
"""

import binascii

from firmware import mifare
from firmware.drivers.mfrc522 import MFRC522
from firmware.hw.unix_spi import SPI, Pin


def _hex(b):
    return binascii.hexlify(b).decode()


class Session:
    def __init__(self, path):
        spi = SPI(path)
        self.rdr = MFRC522(spi, Pin(spi))
        self.rdr.init()
        self.uid = bytearray(7)
        self.n = 0
        self.buf = bytearray(16)

    def run(self, line):
        words = line.split()
        op = words[0]
        rdr = self.rdr
        if op == "version":
            return "0x%02x" % rdr.version
        if op == "select":
            self.n = rdr.select(self.uid)
            return "%d %s" % (self.n, _hex(self.uid[: self.n]))
        if op == "counters":
            return "commands=%d card_ios=%d card_io_us=%d" % (rdr.commands, rdr.card_ios, rdr.card_io_us)
        if op == "halt":
            rdr.halt()
            return "ok"
        block = int(words[1])
        if op == "auth":
            key_type = mifare.KEY_A if words[2] == "A" else mifare.KEY_B
            rdr.auth(block, key_type, binascii.unhexlify(words[3]), memoryview(self.uid)[: self.n])
        elif op == "read":
            rdr.read_block(block, self.buf)
            return _hex(self.buf)
        elif op == "write":
            rdr.write_block(block, binascii.unhexlify(words[2]))
        elif op == "dec":
            rdr.decrement(block, int(words[2]))
        elif op == "inc":
            rdr.increment(block, int(words[2]))
        elif op == "restore":
            rdr.restore(block)
        elif op == "transfer":
            rdr.transfer(block)
        else:
            return "unknown command"
        return "ok"


def main(path, script):
    s = Session(path)
    for line in script.split(";"):
        line = line.strip()
        try:
            result = s.run(line)
        except mifare.ReaderError as e:
            print("%s ! %s: %s" % (line, type(e).__name__, e))
            continue
        print("%s = %s" % (line, result))
