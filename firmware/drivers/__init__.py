"""Chip drivers: one module per reader chip (pn532, mfrc522), each a firmware.mifare.Reader."""
