"""Terminal configuration (``config.json``) and secrets (``secrets.json``), kept in two files.

``config.json`` says what the terminal is and how its board is wired; a technician may read
it. ``secrets.json`` holds the keys provisioned over the serial line and nothing else, so the
configuration can be shown, copied or backed up without leaking a key.

config.json::

    {"terminal_id": 1001, "merchant_id": 7, "role": "pos",
     "server_url": "http://10.0.0.2:8080", "board": "unix",
     "hw": {"reader": "pn532", "reader_path": "/dev/pts/5", "poll_ms": 200}}

secrets.json (hex)::

    {"terminal_key": "<64 hex>", "card_master": "<32+ hex>", "issuer_master": "<32+ hex>"}

``hw`` is the board's business (see ``board_unix`` / ``board_esp32``); the optional
``journal_max_records`` (default 30000) caps the unacknowledged records the journal keeps;
``upload`` (default true) false keeps the terminal offline by hand (its records are then
flagged "unauthorised offline" while the server is reachable); ``sync_timeout_s`` (default 3)
bounds every sync request, and so how long a sale can wait for one; doors: ``door_fail_mode``
"safe" (default) or "secure".

Usage::

    from firmware import config
    cfg = config.load("/config.json", "/secrets.json")
    cfg.terminal_id, cfg.terminal_key
"""

import binascii
import json

ROLES = ("pos", "door")
# Doors: "safe" = magnetic lock, opens on power loss; "secure" = battery lock, stays locked.
FAIL_MODES = ("safe", "secure")


class ConfigError(ValueError):
    """A configuration or secrets file that is missing, malformed or incomplete."""


def _read(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError:
        raise ConfigError("%s not found: provision the terminal first" % path)
    except ValueError:
        raise ConfigError("%s is not valid JSON" % path)
    if not isinstance(doc, dict):
        raise ConfigError("%s must hold a JSON object" % path)
    return doc


def _int(doc, path, name, lo, hi):
    v = doc.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError("%s: %s must be an integer %d..%d, got %r" % (path, name, lo, hi, v))
    return v


def _str(doc, path, name):
    v = doc.get(name)
    if not isinstance(v, str):
        raise ConfigError("%s: %s must be a string, got %r" % (path, name, v))
    return v


def _key(doc, path, name, min_len):
    v = _str(doc, path, name)
    try:
        key = binascii.unhexlify(v)
    except ValueError:
        raise ConfigError("%s: %s is not hex" % (path, name))
    if len(key) < min_len:
        raise ConfigError("%s: %s must be at least %d bytes, got %d" % (path, name, min_len, len(key)))
    return key


class Config:
    """What the terminal needs to start: identity, role, server, board wiring and keys."""

    def __init__(self, doc, secrets, path="config.json", secrets_path="secrets.json"):
        self.terminal_id = _int(doc, path, "terminal_id", 1, 0xFFFFFFFF)
        self.merchant_id = _int(doc, path, "merchant_id", 0, 0xFFFFFFFF)
        self.role = _str(doc, path, "role")
        if self.role not in ROLES:
            raise ConfigError("%s: role must be 'pos' or 'door', got %r" % (path, self.role))
        self.server_url = _str(doc, path, "server_url")
        self.board = _str(doc, path, "board")
        hw = doc.get("hw", {})
        if not isinstance(hw, dict):
            raise ConfigError("%s: hw must be an object" % path)
        self.hw = hw
        self.journal_max = doc.get("journal_max_records", 30000)
        if not isinstance(self.journal_max, int) or self.journal_max < 1:
            raise ConfigError("%s: journal_max_records must be a positive integer" % path)
        self.upload_enabled = doc.get("upload", True)
        if not isinstance(self.upload_enabled, bool):
            raise ConfigError("%s: upload must be true or false" % path)
        self.sync_timeout_s = doc.get("sync_timeout_s", 3)
        if not isinstance(self.sync_timeout_s, int) or not 1 <= self.sync_timeout_s <= 60:
            raise ConfigError("%s: sync_timeout_s must be an integer 1..60" % path)
        self.door_fail_mode = doc.get("door_fail_mode", FAIL_MODES[0])
        if self.door_fail_mode not in FAIL_MODES:
            raise ConfigError("%s: door_fail_mode must be 'safe' or 'secure', got %r" % (path, self.door_fail_mode))
        self.terminal_key = _key(secrets, secrets_path, "terminal_key", 16)
        self.card_master = _key(secrets, secrets_path, "card_master", 16)
        self.issuer_master = _key(secrets, secrets_path, "issuer_master", 16)


def load(config_path, secrets_path):
    """Read and check both files.

    :raises ConfigError: saying which file and which field is wrong.
    """
    return Config(_read(config_path), _read(secrets_path), config_path, secrets_path)
