"""Who is on the reader: select the card and read its identity sector, checked by the issuer MAC.

The identity sector (sector 1, blocks 4-6, see ``protocol.card_layout``) is all a door needs,
and the first thing a POS reads: three block reads under the card's diversified key A, then
the issuer MAC over UID + blocks 4-5, so a cloned or altered identity is refused. Nothing
else on the card is read here (the purse engine, ``firmware.purse``, goes on from this).

Rejections (``CardRejected.code``):

==========================  ==========================================================
``REJECT_NOT_PERSONALISED``  sector 1 refuses the campus key, or holds another layout:
                             not a card of this system (or a blank one)
``REJECT_IDENTITY_MAC``      the issuer MAC does not match this UID: cloned or altered
==========================  ==========================================================

Usage::

    cid = CardId(reader, card_master, issuer_master)
    n = cid.select()                 # 0: no card; fills cid.uid / cid.uid_mv
    if n:
        cid.read_identity()          # ReaderError: tap again; CardRejected: refuse
        cid.identity.valid_until
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

from firmware.mifare import KEY_A, AuthFailed, NoCard
from protocol import card_layout as cl
from protocol import crypto
from protocol.errors import CardFormatError

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

REJECT_NOT_PERSONALISED = const(1)
REJECT_IDENTITY_MAC = const(2)

_S_IDENTITY = const(1)
_B_IDENTITY = const(4)


class CardRejected(Exception):
    """The card is not one this terminal may serve: ``code`` is a REJECT_* constant."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


@micropython.native
def same_uid(buf8, uid, n):
    """True if ``buf8`` (UID in bytes 0..6, its length in byte 7) holds the ``n``-byte ``uid``."""
    if buf8[7] != n:
        return False
    for i in range(n):
        if buf8[i] != uid[i]:
            return False
    return True


@micropython.native
def keep_uid(buf8, uid, n):
    """Remember the ``n``-byte ``uid`` in ``buf8`` (see :func:`same_uid`)."""
    for i in range(n):
        buf8[i] = uid[i]
    buf8[7] = n


class CardId:
    """The card in one reader's field: its UID and checked identity; keeps nothing else.

    :param buf: a 48-byte bytearray to read the sector into (shared with the caller, who may
        reuse it once ``identity`` is decoded); one is allocated if not given
    """

    def __init__(self, reader, card_master, issuer_master, buf=None):
        self.reader = reader
        self._cm = card_master
        self._im = issuer_master
        self.uid = bytearray(7)
        self.uid_len = 0
        self._uid4 = memoryview(self.uid)[:4]
        self._uid7 = memoryview(self.uid)[:7]
        self.uid_mv = self._uid4
        self.identity = None
        self._buf = buf if buf is not None else bytearray(48)
        self._mv = memoryview(self._buf)
        self._views = (self._mv[0:16], self._mv[16:32], self._mv[32:48])  # made once: no slicing per tap
        # Keys of the last card seen: a card held or tapped again skips the two HMACs.
        self._key_uid = bytearray(8)
        self._ka = None
        self._ik = None

    @micropython.native
    def select(self):
        """Select the card in the field; returns its UID length (4 or 7), 0 if there is none.

        :raises ReaderError: the reader or the air failed: poll again.
        """
        n = self.reader.select(self.uid)
        self.identity = None
        if n:
            self.uid_len = n
            self.uid_mv = self._uid4 if n == 4 else self._uid7
        return n

    def read(self):
        """``select`` then ``read_identity``; returns the UID length, 0 if no card."""
        n = self.select()
        if n:
            self.read_identity()
        return n

    @micropython.native
    def _keys(self):
        n = self.uid_len
        if same_uid(self._key_uid, self.uid, n):
            return
        self._ka = crypto.card_sector_key(self._cm, self.uid_mv, _S_IDENTITY, KEY_A)
        self._ik = crypto.issuer_mac_key(self._im, self.uid_mv)
        keep_uid(self._key_uid, self.uid, n)

    def _reject(self, code, what):
        raise CardRejected(code, "card %s: %s" % (cl.uid_hex(self.uid_mv), what))

    @micropython.native
    def read_identity(self):
        """Authenticate sector 1 with key A, read blocks 4-6 and check the issuer MAC; sets
        ``identity`` (a ``card_layout.Identity``). Call right after a ``select`` that found a card.

        :raises ReaderError: the card left or the air failed: tap again.
        :raises CardRejected: not a campus card, or its identity fails the issuer MAC.
        """
        r = self.reader
        self._keys()
        try:
            r.auth(_B_IDENTITY, KEY_A, self._ka, self.uid_mv)
        except AuthFailed:
            if not r.select(self.uid):
                raise NoCard("card left the field during authentication")
            self._reject(REJECT_NOT_PERSONALISED, "sector 1 refuses the campus key: not a campus card")
        v = self._views
        r.read_block(_B_IDENTITY, v[0])
        r.read_block(_B_IDENTITY + 1, v[1])
        r.read_block(_B_IDENTITY + 2, v[2])
        buf = self._buf
        if buf[0] != cl.LAYOUT_VERSION:
            self._reject(REJECT_NOT_PERSONALISED, "identity sector holds layout version %d, expected %d"
                         % (buf[0], cl.LAYOUT_VERSION))
        try:
            self.identity = cl.decode_identity(buf, self._ik, self.uid_mv)
        except CardFormatError as e:
            self._reject(REJECT_IDENTITY_MAC, "identity MAC fails (%s): cloned or altered card" % e)
