"""Test vectors as plain literals, importable on MicroPython and CPython."""
