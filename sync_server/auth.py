"""Who may call what: terminal message authentication and the admin token, in one place.

Terminal endpoints call ``terminal_request(type)``: the claimed terminal must be registered
and active, the message must open under its key (signature, type, clock skew), and its nonce
is claimed with ``claim_nonce`` inside the endpoint's write transaction so a replay is
refused. The admin blueprint installs ``require_admin`` as its ``before_request``: a bearer
token compared in constant time. Users and roles will replace the token here alone.

Usage::

    bp.before_request(auth.require_admin)
    req = auth.terminal_request("upload")
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from flask import request

from protocol.errors import MessageError
from sync_server import context, keys, store, wire
from sync_server.errors import Conflict, Forbidden, Invalid, Unauthorized
from sync_server.store import terminals as tstore


@dataclass
class TerminalRequest:
    terminal: dict[str, Any]
    msg: dict[str, Any]
    key: bytes
    now: int  # server time when the request was opened

    @property
    def tid(self) -> int:
        return self.terminal["id"]


def terminal_request(expected_type: str) -> TerminalRequest:
    """Authenticate the message in the request body.

    :raises Invalid: malformed or stale message. :raises Unauthorized: bad signature.
    :raises Forbidden: unknown or disabled terminal.
    """
    data = request.get_data(cache=False)
    if not data:
        raise Invalid("empty request body: send a sealed CBOR message (protocol.messages.seal)")
    try:
        env = wire.envelope(data)
    except MessageError as e:
        raise Invalid(e.args[0]) from None
    tid = env[0]
    st = context.state()
    db = st.pool.get()
    terminal = tstore.terminal(db, tid) if 0 < tid <= 0xFFFFFFFF else None
    if terminal is None:
        raise Forbidden(f"terminal {tid} is not registered: register it with `campuscard terminal register` "
                        "and provision the key it prints")
    if terminal["status"] != "active":
        raise Forbidden("terminal {} is {}: ask the card office to enable it".format(tid, terminal["status"]))
    key = st.keys.terminal_key(tid)
    now = st.clock.now()
    try:
        msg = wire.open_message(data, key, expected_type, now, env=env)
    except wire.SignatureError as e:
        raise Unauthorized(f"{e.args[0]}: the terminal key is wrong, re-provision the terminal") from None
    except MessageError as e:
        raise Invalid(e.args[0]) from None
    return TerminalRequest(terminal, msg, key, now)


def claim_nonce(db: store.Database, req: TerminalRequest) -> None:
    """Record the request nonce (call inside the write transaction); ``Conflict`` if reused."""
    claim(db, req.tid, req.msg["nonce"], req.msg["ts"])


def claim(db: store.Database, tid: int, nonce: bytes, ts: int) -> None:
    """``claim_nonce`` of a request opened elsewhere (the ingest process gets its fields)."""
    if not tstore.claim_nonce(db, tid, nonce, ts):
        raise Conflict(f"replayed request: terminal {tid} already used nonce {nonce.hex()}; send a fresh "
                       "nonce")


def require_admin() -> None:
    """``before_request`` of the admin API: a valid ``Authorization: Bearer <token>``."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("admin API needs 'Authorization: Bearer <token>' "
                           "(see `campuscard admin-token --db PATH`)")
    expected = keys.admin_token(context.get_db())
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized("wrong admin token (see `campuscard admin-token --db PATH`)")
