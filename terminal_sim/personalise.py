"""Card-office encoding of a virtual MIFARE Classic 1K card: blank card in, campus card out.

Works like an encoder at the card office: it authenticates the blank card's sectors with the
transport key (``FFFFFFFFFFFF``, access bits ``FF0780``) through the card's own command API and
writes the card map of :mod:`protocol.card_layout` — identity with the issuer MAC, balance and
backup value blocks, load register, purse state slot 0 — then each sector trailer with the
card's diversified keys and the product access bits. Nothing is written around the card's rules.

Both value blocks carry the address byte of the primary, ``BLOCK_BALANCE`` (8): a MIFARE
transfer copies the source block's address byte, so ``restore(8) + transfer(9)`` (and the
recovery ``restore(9) + transfer(8)``) keep that invariant, and the firmware checks it.

Usage::

    from terminal_sim.personalise import make_card
    card = make_card("04a1b2c3", "alice", card_master=CM, issuer_master=IM, balance=5000)
    field.place(card)
"""

from __future__ import annotations

import time

from protocol import card_layout as cl
from protocol import crypto
from terminal_sim.mifare_card import DEFAULT_KEY, KEY_A, MifareClassic1K

_YEAR = 365 * 86400


class PersonaliseError(Exception):
    """The card refused the encoding: not a blank card with transport keys, or already issued."""


def initial_state(purse_key: bytes, uid: bytes, balance: int, pin: str) -> cl.PurseState:
    """The purse state of a freshly issued card: counter 0, generation 0, initial-PIN flag set."""
    st = cl.PurseState()
    st.flags = cl.FLAG_INITIAL_PIN
    st.balance = balance
    st.credit_used = max(0, -balance)
    st.pin_check = cl.pin_check_int(purse_key, uid, pin)
    return st


def personalise(
    card: MifareClassic1K,
    card_master: bytes,
    issuer_master: bytes,
    identity: cl.Identity,
    balance: int = 0,
    pin: str = "123456",
) -> None:
    """Encode a blank ``card`` (transport keys) as a campus card for ``identity``.

    :raises PersonaliseError: the card refused the transport key (already personalised or not blank).
    """
    uid = card.uid
    purse_key = crypto.purse_mac_key(card_master, uid)
    ident = cl.encode_identity(identity, crypto.issuer_mac_key(issuer_master, uid), uid)
    state = cl.encode_state(initial_state(purse_key, uid, balance, pin), purse_key, uid)
    value = cl.encode_value_block(balance, cl.BLOCK_BALANCE)
    data: dict[int, bytes] = {
        cl.BLOCK_IDENTITY: ident[0:16],
        cl.BLOCK_HOLDER: ident[16:32],
        cl.BLOCK_ISSUER_MAC: ident[32:48],
        cl.BLOCK_BALANCE: value,
        cl.BLOCK_BACKUP: value,
        cl.BLOCK_LOADS: cl.encode_load_register(0, purse_key, uid),
        cl.BLOCK_SUB_BALANCE: cl.encode_value_block(0, cl.BLOCK_SUB_BALANCE),
        cl.BLOCK_SUB_BACKUP: cl.encode_value_block(0, cl.BLOCK_SUB_BALANCE),
    }
    slot0 = cl.STATE_SLOTS[0]
    for i in range(3):
        data[slot0[i]] = state[i * 16 : i * 16 + 16]
    for blk in cl.STATE_SLOTS[1]:
        data[blk] = bytes(16)  # slot 1 invalid (zeros): slot 0 is current
    for sector in cl.PERSONALISED_SECTORS:
        try:
            card.authenticate(cl.trailer_block(sector), KEY_A, DEFAULT_KEY)
        except Exception as e:
            msg = f"card {uid.hex().upper()} sector {sector} refused the transport key ({e}): is it blank?"
            raise PersonaliseError(msg) from e
        for blk in range(sector * 4, sector * 4 + 3):
            card.write(blk, data.get(blk, bytes(16)))
        card.write(cl.trailer_block(sector), cl.sector_trailer(card_master, uid, sector))


def make_card(
    uid_hex: str,
    name: str = "",
    card_type: int = cl.CARD_STUDENT,
    balance: int = 0,
    valid_from: int | None = None,
    valid_until: int | None = None,
    *,
    card_master: bytes,
    issuer_master: bytes,
    card_no: int | None = None,
    holder_id: str | None = None,
    pin: str = "123456",
) -> MifareClassic1K:
    """A new virtual card with UID ``uid_hex``, personalised; validity defaults to now .. +1 year.

    ``card_no`` defaults to the UID's last four bytes as a number, ``holder_id`` to ``name``.
    """
    uid = bytes.fromhex(uid_hex)
    now = int(time.time())
    vfrom = now - 86400 if valid_from is None else valid_from
    vuntil = vfrom + _YEAR if valid_until is None else valid_until
    ident = cl.Identity(
        int.from_bytes(uid[-4:], "big") if card_no is None else card_no,
        (name or uid_hex.upper())[:16] if holder_id is None else holder_id,
        card_type,
        vfrom,
        vuntil,
    )
    card = MifareClassic1K(uid, name=name)
    personalise(card, card_master, issuer_master, ident, balance, pin)
    return card
