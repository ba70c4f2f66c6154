"""The one exception hierarchy of the mien client: retry later, or give up.

Every failure of a call (the network, the server's refusal, a body that does not parse)
arrives as a :class:`ClientError` carrying the server's own message, its error ``code`` and,
for invalid documents, the list of problems as ``field.path: message``. The agent's sync
loop retries :class:`RetryableError` with jittered backoff and records :class:`FinalError`
as an outcome; the CLI prints either and exits.

::

    ClientError
    ├── RetryableError          try again later (with backoff)
    │   ├── ConnectError        the server could not be reached / the connection broke
    │   ├── Timeout             no answer in time
    │   └── Unavailable         503/502/504/429, or a 5xx the server could not explain
    └── FinalError              the same request will fail again
        ├── BadRequest          400 / 413 / 415 and any other 4xx below
        ├── Unauthorized        401: no token, or an unknown, expired or revoked one
        ├── Forbidden           403: the token's role (or instance) may not do this
        ├── NotFound            404
        ├── Conflict            409: e.g. the persona exists, or is in use
        ├── PreconditionFailed  412: If-Match named a version that is no longer the latest
        ├── InvalidDocument     422: the persona (or request) is invalid; see .problems
        └── ProtocolError       the server answered something this client cannot read
"""

from __future__ import annotations

from collections.abc import Sequence

from mien.protocol import Problem


class ClientError(Exception):
    """A call to the mien server failed. ``str(error)`` is the message to show."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        problems: Sequence[Problem] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.problems = list(problems)
        self.retry_after = retry_after

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [p.text or f"{p.path}: {p.message}" for p in self.problems]
        return "\n".join([self.message, *("  " + line for line in lines)])


class RetryableError(ClientError):
    """Temporary: the same call may succeed later. Back off (``retry_after`` if given)."""

    retryable = True


class ConnectError(RetryableError):
    """The server could not be reached, or the connection broke mid-call."""


class Timeout(RetryableError):
    """The server did not answer in time."""


class Unavailable(RetryableError):
    """The server is overloaded, shutting down, or its database is unreachable."""


class FinalError(ClientError):
    """The request itself is the problem: repeating it will not help."""


class BadRequest(FinalError):
    pass


class Unauthorized(FinalError):
    pass


class Forbidden(FinalError):
    pass


class NotFound(FinalError):
    pass


class Conflict(FinalError):
    pass


class PreconditionFailed(FinalError):
    pass


class InvalidDocument(FinalError):
    pass


class ProtocolError(FinalError):
    pass


_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: InvalidDocument,
    429: Unavailable,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_for_status(status: int) -> type[ClientError]:
    """The exception class for an HTTP error status."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    return Unavailable if status >= 500 else BadRequest


__all__ = [
    "BadRequest",
    "ClientError",
    "Conflict",
    "ConnectError",
    "FinalError",
    "Forbidden",
    "InvalidDocument",
    "NotFound",
    "PreconditionFailed",
    "ProtocolError",
    "RetryableError",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "error_for_status",
]
