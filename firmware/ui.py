"""The terminal's user interface as two small interfaces the boards implement: a
:class:`Display` that shows texts of :mod:`firmware.texts`, and a :class:`Keypad` that turns key
presses into events for the application.

Keypad events are ``(kind, value)`` pairs:

================  ============================  ===========================================
kind              value                         cashier / holder action
================  ============================  ===========================================
``EV_AMOUNT``     cents (int)                   amount keyed in, then OK
``EV_PIN``        digits (str)                  PIN keyed in by the holder, then OK
``EV_NUMBER``     digits (str)                  digits + OK on a keypad that cannot tell
                                                amount from PIN: the application decides
``EV_CONFIRM``    None                          OK / confirm (double tap, ...)
``EV_CANCEL``     None                          cancel
``EV_BALANCE``    None                          balance key
``EV_PIN_CHANGE`` None                          "change PIN" key
``EV_POLL``       None                          poll the reader now (the simulator's tap)
``EV_SERVICE``    (command, argument str)       technician / simulator service line
================  ============================  ===========================================

Usage::

    ev = keypad.poll(100)            # None after 100 ms without a key
    if ev is not None and ev[0] == ui.EV_AMOUNT:
        display.show(texts.T_TAP_CARD, ev[1])
"""

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

EV_AMOUNT = const(1)
EV_PIN = const(2)
EV_NUMBER = const(3)
EV_CONFIRM = const(4)
EV_CANCEL = const(5)
EV_BALANCE = const(6)
EV_PIN_CHANGE = const(7)
EV_POLL = const(8)
EV_SERVICE = const(9)


class Display:
    """Shows one or two texts (``texts.T_*`` numbers, each with an optional ``%s`` argument)."""

    def show(self, tid, arg=None, tid2=0, arg2=None):
        raise NotImplementedError("%s.show() is not implemented" % type(self).__name__)

    def out(self, line):
        """A technician's line (service answers); boards without a console drop it."""


class Keypad:
    """Yields key events; ``poll(timeout_ms)`` waits up to ``timeout_ms`` (-1: forever)."""

    def poll(self, timeout_ms):
        raise NotImplementedError("%s.poll() is not implemented" % type(self).__name__)
