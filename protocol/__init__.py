"""Formats shared by the terminal firmware and the sync server.

Every module here imports on MicroPython and on CPython alike: it is the single source
of truth for the CBOR codec, key derivation, the card map, journal records and sync messages.
"""
