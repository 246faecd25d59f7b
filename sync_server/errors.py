"""The sync server's error tree: each error carries the HTTP status the API answers with.

Domain code raises these; the blueprints turn them into a 4xx with a body that says what was
wrong and what to do, the CLI turns them into ``click.ClickException``.

Usage::

    from sync_server.errors import NotFound
    raise NotFound("Card 04A1B2C3 is not registered.")
"""


class ServerError(Exception):
    """Base of every error the sync server reports to a caller."""

    status = 400

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class Invalid(ServerError):
    """The request is malformed or asks for something the rules forbid."""


class Unauthorized(ServerError):
    """Missing or wrong credentials (admin token, message signature)."""

    status = 401


class Forbidden(ServerError):
    """The caller is known but may not do this (unknown or disabled terminal, test clock off)."""

    status = 403


class NotFound(ServerError):
    """The named card, merchant or terminal does not exist."""

    status = 404


class Conflict(ServerError):
    """The request clashes with stored state (replayed nonce, duplicate card, wrong status)."""

    status = 409


class Unavailable(ServerError):
    """The server cannot do it just now (its ingest process restarted): try again."""

    status = 503
