"""Error tree of the shared formats: one base, single inheritance (MicroPython's MRO differs)."""


class ProtocolError(Exception):
    """Base of every error raised by ``protocol``."""


class DecodeError(ProtocolError):
    """Malformed CBOR: the message names the byte offset."""


class EncodeError(ProtocolError):
    """A value the deterministic CBOR encoder does not support."""


class CryptoError(ProtocolError):
    """Bad key or MAC input."""


class CardFormatError(ProtocolError):
    """A card block that is not in the format the card map requires."""


class RecordError(ProtocolError):
    """A journal record that is malformed or fails its signature."""


class MessageError(ProtocolError):
    """A sync message that is malformed, stale, replayed or badly signed."""
