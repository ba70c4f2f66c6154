"""WebSockets of ``mien app shell``: the holder's (the CLI) and the sandbox host's (the
agent) connection to the server's relay, with the session's token and TLS settings.

:func:`connect` answers a connected ``websockets`` client (the threading one: send from
one thread while another receives); a refused handshake becomes the same
:class:`~mien.client.errors.ClientError` an HTTP call would raise, with the server's
message. The frames are :mod:`mien.protocol.shell`'s.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from mien.client import errors
from mien.client._http import API, Session


def url(session: Session, path: str, params: Sequence[tuple[str, Any]] = ()) -> str:
    """``ws(s)://server/api/v1{path}?params`` for the session's server."""
    base = session.server
    scheme = "wss" if base.startswith("https://") else "ws"
    query = urlencode([(k, str(v).lower() if isinstance(v, bool) else v) for k, v in params])
    return f"{scheme}://{base.split('://', 1)[1]}{API}{path}" + (f"?{query}" if query else "")


def connect(
    session: Session, path: str, params: Sequence[tuple[str, Any]] = (), *, timeout: float = 30
) -> Any:
    """Open the WebSocket at ``path``; :class:`~mien.client.errors.ClientError` if refused
    or unreachable."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect as ws_connect

    target = url(session, path, params)
    options: dict[str, Any] = {}
    if target.startswith("wss://"):
        verify = session.socket_ssl
        if isinstance(verify, ssl.SSLContext):
            options["ssl"] = verify
        elif verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            options["ssl"] = context
    try:
        return ws_connect(
            target,
            additional_headers=session.socket_headers,
            open_timeout=timeout,
            max_size=2**22,
            compression=None,
            **options,
        )
    except InvalidStatus as exc:
        raise refusal(exc.response.status_code, bytes(exc.response.body or b"")) from None
    except InvalidHandshake as exc:
        raise errors.ProtocolError(f"{session.server}: WebSocket handshake failed: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise errors.ConnectError(f"cannot reach {session.server}: {exc}") from None


def refusal(status: int, body: bytes) -> errors.ClientError:
    """The error for a refused handshake, with the problem body's message."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    detail = data.get("detail") if isinstance(data, dict) else None
    code = data.get("code", "error") if isinstance(data, dict) else "error"
    message = str(detail) if detail else f"the server answered HTTP {status}"
    return errors.error_for_status(status)(message, status=status, code=str(code))
