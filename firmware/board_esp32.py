"""The ESP32 board: the terminal's hardware on machine.UART/SPI/Pin, RTC, the flash
filesystem and WLAN. Only this module (and the drivers it hands buses to) touches ``machine``.

==========  ===================================================================================
reader      ``hw.reader`` "pn532": PN532 on UART ``hw.uart`` (default 2) at 115200 baud, pins
            ``hw.tx``/``hw.rx``; "mfrc522": MFRC522 on SPI ``hw.spi`` (default 1), pins
            ``hw.sck``/``hw.mosi``/``hw.miso``, chip select ``hw.cs``
display     a serial text screen taking UTF-8 lines on UART ``hw.display_uart`` (pins
            ``hw.display_tx``/``hw.display_rx``); without one, lines go to the REPL console
keypad      4x4 matrix: rows ``hw.rows`` (outputs), columns ``hw.cols`` (inputs, pull-up);
            digits, ``#`` enter, ``*`` clear, A confirm, B balance, C cancel, D change PIN
relay       role "door": the lock relay on pin ``hw.relay_pin`` (default 4), active level
            ``hw.relay_active`` (default 1); the fail mode (config.json ``door_fail_mode``) is
            the lock's wiring: a fail-safe lock opens without power whatever the pin says
clock       the RTC (UTC), set by the sync client from the server's time
flash       the littlefs filesystem MicroPython mounts at / (root "")
network     WLAN station ``hw.ssid``, password ``wifi_password`` from secrets.json
==========  ===================================================================================

Digits then ``#`` give an ``EV_NUMBER`` the application reads as an amount in cents or a PIN,
as its state requires.

Usage (``/main.py`` on the board)::

    from firmware import main
    main.main("")
"""

import json
import time
from time import sleep_ms, ticks_add, ticks_diff, ticks_ms  # type: ignore[attr-defined]

import machine
import network

from firmware import texts, ui

_KEYS = "123A456B789C*0#D"  # row-major legend of the usual 4x4 membrane keypad
_EPOCH_2000 = 946684800  # seconds from 1970-01-01 to 2000-01-01


class Display(ui.Display):
    """Chinese text lines on a serial screen (or the REPL when none is wired)."""

    def __init__(self, uart=None):
        self._uart = uart

    def show(self, tid, arg=None, tid2=0, arg2=None, tid3=0, arg3=None):
        line = texts.zh(tid, arg)
        if tid2:
            line = line + " / " + texts.zh(tid2, arg2)
        if tid3:
            line = line + " / " + texts.zh(tid3, arg3)
        self.out(line)

    def out(self, line):
        if self._uart is not None:
            self._uart.write(line.encode() + b"\n")
        else:
            print(line)


class Keypad(ui.Keypad):
    """A 4x4 matrix scanned every 10 ms; a key counts once when pressed (two equal scans)."""

    def __init__(self, rows, cols):
        self._rows = [machine.Pin(p, machine.Pin.OUT, value=1) for p in rows]
        self._cols = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in cols]
        self._last = -1
        self._digits = ""

    def _scan(self):
        for r in range(4):
            row = self._rows[r]
            row.value(0)
            for c in range(4):
                if not self._cols[c].value():
                    row.value(1)
                    return r * 4 + c
            row.value(1)
        return -1

    def poll(self, timeout_ms):
        start = ticks_ms()
        while True:
            k = self._scan()
            if k >= 0 and k != self._last:
                sleep_ms(10)
                if self._scan() == k:
                    self._last = k
                    ev = self._key(_KEYS[k])
                    if ev is not None:
                        return ev
            elif k < 0:
                self._last = -1
            if timeout_ms >= 0 and ticks_diff(ticks_ms(), start) >= timeout_ms:
                return None
            sleep_ms(10)

    def _key(self, ch):
        if "0" <= ch <= "9":
            if len(self._digits) < 9:
                self._digits += ch
            return None
        if ch == "*":
            self._digits = ""
            return None
        if ch == "#":
            digits = self._digits
            self._digits = ""
            return (ui.EV_NUMBER, digits) if digits else (ui.EV_CONFIRM, None)
        self._digits = ""
        if ch == "A":
            return (ui.EV_CONFIRM, None)
        if ch == "B":
            return (ui.EV_BALANCE, None)
        if ch == "C":
            return (ui.EV_CANCEL, None)
        return (ui.EV_PIN_CHANGE, None)


class Relay:
    """The door lock relay on a GPIO; a pulse ends by deadline in ``update`` (never blocks)."""

    def __init__(self, pin, active=1):
        self._active = 1 if active else 0
        self._pin = machine.Pin(pin, machine.Pin.OUT, value=1 - self._active)
        self.fail_mode = "safe"
        self.powered = True
        self._pulsing = False
        self._deadline = 0

    def pulse(self, ms):
        self._deadline = ticks_add(ticks_ms(), ms)
        self._pulsing = True
        self._pin.value(self._active)

    def remaining_ms(self):
        if not self._pulsing:
            return -1
        return max(0, ticks_diff(self._deadline, ticks_ms()))

    def update(self):
        if self._pulsing and self.remaining_ms() == 0:
            self._pulsing = False
            self._pin.value(1 - self._active)

    def set_power(self, on):
        """Mains sensed lost or back; the lock itself reacts as it is built to."""
        self.powered = on

    def is_open(self):
        return self._pulsing or (not self.powered and self.fail_mode == "safe")


class Clock:
    """UTC seconds from the RTC (MicroPython on the ESP32 may count from 2000)."""

    def __init__(self):
        self._rtc = machine.RTC()
        self._offset = _EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0

    def now(self):
        return time.time() + self._offset

    def set(self, utc):
        t = time.gmtime(utc - self._offset)
        # RTC.datetime takes (year, month, day, weekday, hours, minutes, seconds, subseconds)
        self._rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


class Network:
    """The WLAN station; the sync client (a later issue) asks it to connect."""

    def __init__(self, ssid, password):
        self._wlan = network.WLAN(network.STA_IF)
        self._ssid = ssid
        self._password = password

    def connect(self):
        self._wlan.active(True)
        if not self._wlan.isconnected() and self._ssid:
            self._wlan.connect(self._ssid, self._password)

    def isconnected(self):
        return self._wlan.isconnected()


def _wifi_password(workspace):
    try:
        with open(workspace + "/secrets.json") as f:
            return json.load(f).get("wifi_password", "")
    except (OSError, ValueError):
        return ""


class Board:
    """The ESP32 terminal's hardware, wired as ``cfg.hw`` says."""

    name = "esp32"

    def __init__(self, cfg, workspace):
        hw = cfg.hw
        self.root = workspace
        duart = hw.get("display_uart")
        if duart is not None:
            self.display = Display(machine.UART(duart, baudrate=115200, tx=hw["display_tx"],
                                                rx=hw["display_rx"]))
        else:
            self.display = Display()
        self.keypad = Keypad(hw.get("rows", (13, 12, 14, 27)), hw.get("cols", (26, 25, 33, 32)))
        self.clock = Clock()
        self.relay = Relay(hw.get("relay_pin", 4), hw.get("relay_active", 1)) if cfg.role == "door" else None
        self.network = Network(hw.get("ssid", ""), _wifi_password(workspace))
        self.poll_ms = hw.get("poll_ms", 100)
        self.reader = self._reader(hw)

    def _reader(self, hw):
        if hw.get("reader", "pn532") == "mfrc522":
            from firmware.drivers.mfrc522 import MFRC522

            spi = machine.SPI(hw.get("spi", 1), baudrate=4000000, polarity=0, phase=0,
                              sck=machine.Pin(hw.get("sck", 18)), mosi=machine.Pin(hw.get("mosi", 23)),
                              miso=machine.Pin(hw.get("miso", 19)))
            return MFRC522(spi, machine.Pin(hw.get("cs", 5), machine.Pin.OUT, value=1))
        from firmware.drivers.pn532 import PN532_UART

        return PN532_UART(machine.UART(hw.get("uart", 2), baudrate=115200, tx=hw.get("tx", 17),
                                       rx=hw.get("rx", 16), timeout=0))
