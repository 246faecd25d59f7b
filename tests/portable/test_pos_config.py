"""Terminal configuration and secrets files (firmware.config), both runtimes."""

import json
import os

from support import raises

from firmware import config

KEY32 = "11" * 32
KEY16 = "22" * 16


def _tmpdir():
    d = "/tmp/campuscard-config-%s" % "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(d)
    return d


def _write(d, name, doc):
    with open(d + "/" + name, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))


def _cleanup(d):
    for name in os.listdir(d):
        os.remove(d + "/" + name)
    os.rmdir(d)


def _good():
    return {"terminal_id": 1001, "merchant_id": 7, "role": "pos", "server_url": "http://s:8080",
            "board": "unix", "hw": {"reader": "pn532"}}


def _secrets():
    return {"terminal_key": KEY32, "card_master": KEY16, "issuer_master": KEY16}


def test_config_and_secrets_load_from_two_files():
    d = _tmpdir()
    try:
        _write(d, "config.json", _good())
        _write(d, "secrets.json", _secrets())
        cfg = config.load(d + "/config.json", d + "/secrets.json")
        assert (cfg.terminal_id, cfg.merchant_id, cfg.role, cfg.board) == (1001, 7, "pos", "unix")
        assert cfg.hw == {"reader": "pn532"} and cfg.journal_max == 30000
        assert cfg.terminal_key == b"\x11" * 32 and cfg.card_master == b"\x22" * 16
    finally:
        _cleanup(d)


def test_missing_or_bad_files_say_which_and_what():
    d = _tmpdir()
    try:
        _write(d, "config.json", _good())
        e = raises(config.ConfigError, config.load, d + "/config.json", d + "/secrets.json")
        assert "secrets.json not found: provision the terminal first" in e.args[0]
        _write(d, "secrets.json", dict(_secrets(), card_master="zz"))
        e = raises(config.ConfigError, config.load, d + "/config.json", d + "/secrets.json")
        assert "card_master is not hex" in e.args[0]
        _write(d, "secrets.json", dict(_secrets(), issuer_master="22" * 4))
        e = raises(config.ConfigError, config.load, d + "/config.json", d + "/secrets.json")
        assert "issuer_master must be at least 16 bytes, got 4" in e.args[0]
        _write(d, "secrets.json", _secrets())
        _write(d, "config.json", dict(_good(), role="kiosk"))
        e = raises(config.ConfigError, config.load, d + "/config.json", d + "/secrets.json")
        assert "role must be 'pos' or 'door'" in e.args[0]
        _write(d, "config.json", dict(_good(), terminal_id=0))
        e = raises(config.ConfigError, config.load, d + "/config.json", d + "/secrets.json")
        assert "terminal_id must be an integer 1..4294967295, got 0" in e.args[0]
        _write(d, "config.json", "{broken")
        e = raises(config.ConfigError, config.load, d + "/config.json", d + "/secrets.json")
        assert "config.json is not valid JSON" in e.args[0]
    finally:
        _cleanup(d)
