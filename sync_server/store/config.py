"""SQL for secrets, counters (``meta``), server settings and terminal parameters."""

from __future__ import annotations

from sqlite_utils import Database


def get_secret(db: Database, name: str) -> bytes | None:
    row = db.execute("SELECT value FROM secrets WHERE name = ?", [name]).fetchone()
    return None if row is None else bytes(row[0])


def put_secret(db: Database, name: str, value: bytes) -> None:
    db.execute("INSERT OR REPLACE INTO secrets (name, value) VALUES (?, ?)", [name, value])


def get_meta(db: Database, name: str, default: int = 0) -> int:
    row = db.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
    return default if row is None else row[0]


def set_meta(db: Database, name: str, value: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", [name, value])


def get_settings(db: Database) -> dict[str, str]:
    return dict(db.execute("SELECT name, value FROM settings").fetchall())


def set_setting(db: Database, name: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", [name, value])


def get_params(db: Database, scope: int) -> dict[str, int]:
    return dict(db.execute("SELECT name, value FROM params WHERE scope = ?", [scope]).fetchall())


def set_param(db: Database, scope: int, name: str, value: int) -> None:
    db.execute("INSERT OR REPLACE INTO params (scope, name, value) VALUES (?, ?, ?)", [scope, name, value])
