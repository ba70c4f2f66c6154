"""The typed HTTP client of the mien API, used by the CLI and by the agent.

* :class:`Client` (sync): everything an operator or CI does — personas, bindings,
  instances, activations, remote commands, audit, tokens.
* :class:`AgentClient`: the agent protocol — enroll, long-poll for the desired state,
  report, command results, heartbeat.
* :mod:`mien.client.ops`: every operation as a request built and checked once, whichever
  session sends it (the clients above, or an asyncio caller's
  :class:`~mien.client._http.AsyncSession`).
* :mod:`mien.protocol`: every request and response body (the API contract, shared with
  the server); :mod:`mien.client.errors`: one exception hierarchy, retryable vs final.
* :func:`backoff`: jittered exponential delays for reconnecting.

Attributes are imported on first use, so importing :mod:`mien.client` costs nothing until
a client is made.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Client": "mien.client.sync",
    "AgentClient": "mien.client.agent",
    "backoff": "mien.client._http",
    "ClientError": "mien.client.errors",
    "RetryableError": "mien.client.errors",
    "FinalError": "mien.client.errors",
    "ConnectError": "mien.client.errors",
    "Timeout": "mien.client.errors",
    "Unavailable": "mien.client.errors",
    "BadRequest": "mien.client.errors",
    "Unauthorized": "mien.client.errors",
    "Forbidden": "mien.client.errors",
    "NotFound": "mien.client.errors",
    "Conflict": "mien.client.errors",
    "PreconditionFailed": "mien.client.errors",
    "InvalidDocument": "mien.client.errors",
    "ProtocolError": "mien.client.errors",
}

if TYPE_CHECKING:
    from mien.client._http import backoff
    from mien.client.agent import AgentClient
    from mien.client.errors import (
        BadRequest,
        ClientError,
        Conflict,
        ConnectError,
        FinalError,
        Forbidden,
        InvalidDocument,
        NotFound,
        PreconditionFailed,
        ProtocolError,
        RetryableError,
        Timeout,
        Unauthorized,
        Unavailable,
    )
    from mien.client.sync import Client


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mien.client' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AgentClient",
    "BadRequest",
    "Client",
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
    "backoff",
]
