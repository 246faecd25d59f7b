"""The PIN steps of the POS application: a sale's transaction PIN (counted on the card, locked
at the retry limit) and the holder's PIN change (old PIN, new PIN twice), as functions of the
:class:`firmware.pos.Pos` application (``app``), whose state, card and journal they use.

Usage: through ``Pos``; ``app.key((ui.EV_PIN, "123456"))`` with the card on the reader.
"""

from firmware import texts
from protocol import card_layout as cl
from protocol import records as rec

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

# The states of firmware.pos these steps move between (same numbers).
S_SALE = const(1)
S_PIN = const(2)
S_CHG_CARD = const(4)
S_CHG_OLD = const(5)
S_CHG_NEW = const(6)
S_CHG_NEW2 = const(7)
S_CHG_APPLY = const(8)


def pin_key(app, pin):
    """A PIN keyed in: the next step of a PIN change, or a check against the card now."""
    st = app.state
    if st != S_PIN and st != S_CHG_OLD and st != S_CHG_NEW and st != S_CHG_NEW2:
        return
    if not (4 <= len(pin) <= 6 and pin.isdigit()):
        app._show(texts.T_PIN_FORMAT)
        return
    if st == S_CHG_NEW:
        app._new_pin = pin
        app.state = S_CHG_NEW2
        app._show(texts.T_REPEAT_NEW_PIN)
        return
    if st == S_CHG_NEW2:
        if pin != app._new_pin:
            app.state = S_CHG_NEW
            app._show(texts.T_PIN_MISMATCH, None, texts.T_ENTER_NEW_PIN)
            return
        app.state = S_CHG_APPLY
    else:
        app._pin = pin
    app.poll(True)  # the holder's card lies on the reader: check the PIN against it now


def check_pin(app):
    """Check the keyed PIN against the card; count a wrong one on the card (lock at the limit).

    :returns: True if right; False (shown) if wrong, locked or no PIN keyed yet.
    """
    p = app.purse
    st = p.state
    pin = app._pin
    if st.flags & cl.FLAG_PIN_LOCKED:
        app._finish_tap(texts.T_PIN_LOCKED)
        return False
    if pin is None:
        app._refuse(texts.T_ENTER_PIN if app.state == S_PIN else texts.T_ENTER_OLD_PIN)
        return False
    if p.pin_ok(pin):
        if st.pin_retries:
            p.update_pin_state(pin_retries=0)
        app._pin = None
        return True
    n = st.pin_retries + 1
    limit = app.params.pin_retry_limit
    if n >= limit:
        p.update_pin_state(pin_retries=n, flags=st.flags | cl.FLAG_PIN_LOCKED)
        app._pin = None
        app._log(rec.PIN_LOCK, 0, p.outcome, n)
        app._finish_tap(texts.T_PIN_NOW_LOCKED)
        return False
    p.update_pin_state(pin_retries=n)
    app._pin = None
    app._refuse(texts.T_WRONG_PIN, str(limit - n))
    return False


def sale_pin(app):
    """The card tapped for a sale waiting for its PIN."""
    if check_pin(app):
        app._pin_ok = True
        app.state = S_SALE
        app._sale()


def change_pin(app):
    """The card tapped during a PIN change: bind it, check the old PIN, or write the new one."""
    p = app.purse
    st = app.state
    if st == S_CHG_CARD:
        if p.state.flags & cl.FLAG_PIN_LOCKED:
            app._finish_tap(texts.T_PIN_LOCKED)
            return
        app._bind(p.uid_mv)
        app.state = S_CHG_OLD
        app._refuse(texts.T_ENTER_OLD_PIN)
    elif st == S_CHG_OLD:
        if check_pin(app):
            app.state = S_CHG_NEW
            app._refuse(texts.T_ENTER_NEW_PIN)
    elif st == S_CHG_APPLY:
        if not app._room(1):
            app._show(texts.T_JOURNAL_FULL)
            return
        p.update_pin_state(pin_retries=0, pin_check=app._new_pin)
        app._log(rec.PIN_CHANGE, 0, p.outcome)
        app._finish_tap(texts.T_PIN_CHANGED)
    else:
        app._refuse(texts.T_ENTER_NEW_PIN if st == S_CHG_NEW else texts.T_REPEAT_NEW_PIN)
