"""The wire format of an interactive shell in a lease (``mien app shell``).

Two WebSockets meet on the server: the lease holder's
(``/api/v1/broker/leases/{id}/shell``) and the sandbox host's
(``/api/v1/broker/host/shells/{session}``; the host only dials out, so it connects when
``GET /broker/host/work`` hands it the session). The server relays the frames between
them unchanged:

* a binary frame is one byte naming the stream, then the bytes: :data:`STDIN` (holder →
  host), :data:`STDOUT` and :data:`STDERR` (host → holder; with a terminal everything comes
  on :data:`STDOUT`);
* a text frame is one JSON control message: ``{"type": "resize", "rows": R, "cols": C}``
  and ``{"type": "eof"}`` (holder → host: the window changed; standard input ended),
  ``{"type": "exit", "status": N}`` (host → holder: the program ended, the last frame) and
  ``{"type": "error", "detail": "..."}`` (the server or the host could not start it).

Used by the CLI and the sandbox host (through :mod:`mien.client.shell`) and by the
server's relay (:mod:`mien.server.api.broker_shell`).
"""

from __future__ import annotations

import json
from typing import Any

STDIN = 0
STDOUT = 1
STDERR = 2
DEFAULT_SHELL = ("bash", "-l")
"""What runs when the holder names no program: the sandbox user's login shell."""
MAX_DIMENSION = 1000


def data(stream: int, payload: bytes) -> bytes:
    """A binary frame: the stream's byte, then ``payload``."""
    return bytes((stream,)) + payload


def split(frame: bytes) -> tuple[int, bytes]:
    """The stream and payload of a binary frame (an empty frame is empty stdin)."""
    if not frame:
        return STDIN, b""
    return frame[0], frame[1:]


def resize(rows: int, cols: int) -> str:
    return json.dumps({"type": "resize", "rows": int(rows), "cols": int(cols)})


def eof() -> str:
    return json.dumps({"type": "eof"})


def exited(status: int) -> str:
    return json.dumps({"type": "exit", "status": int(status)})


def error(detail: str) -> str:
    return json.dumps({"type": "error", "detail": detail})


def control(text: str) -> dict[str, Any]:
    """A text frame as a control message; anything malformed is ``{"type": "unknown"}``."""
    try:
        message = json.loads(text)
    except ValueError:
        return {"type": "unknown"}
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return {"type": "unknown"}
    return message


def window(message: dict[str, Any]) -> tuple[int, int] | None:
    """The (rows, cols) of a resize message, or ``None`` when they are not sane numbers."""
    rows, cols = message.get("rows"), message.get("cols")
    if not isinstance(rows, int) or not isinstance(cols, int):
        return None
    if not (0 < rows <= MAX_DIMENSION and 0 < cols <= MAX_DIMENSION):
        return None
    return rows, cols
