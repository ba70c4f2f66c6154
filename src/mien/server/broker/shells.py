"""Where the two halves of an interactive shell meet on a replica (``mien app shell``).

The lease holder's WebSocket opens a :class:`ShellSession`; the sandbox host learns of it
from its next ``GET /broker/host/work`` (:meth:`ShellSessions.claim`, each session handed
out once) and dials ``/broker/host/shells/{id}``, which :meth:`ShellSessions.attach` hands
to the waiting holder. Kept in the memory of the replica the holder reached: the host's
poll and its WebSocket must reach the same replica (one replica, or sticky routing by
instance). Used by :mod:`mien.server.api.broker_shell` and the host's work route.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ShellSession:
    id: str
    lease_id: str
    host: str
    argv: list[str]
    tty: bool
    rows: int
    cols: int
    term: str
    claimed: bool = False
    host_socket: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class ShellSessions:
    """The shell sessions of this replica, by id."""

    def __init__(self) -> None:
        self._sessions: dict[str, ShellSession] = {}

    def open(
        self,
        *,
        lease_id: str,
        host: str,
        argv: list[str],
        tty: bool,
        rows: int,
        cols: int,
        term: str,
    ) -> ShellSession:
        session = ShellSession(str(uuid.uuid4()), lease_id, host, argv, tty, rows, cols, term)
        self._sessions[session.id] = session
        return session

    def claim(self, host: str) -> list[ShellSession]:
        """The sessions waiting for ``host`` not handed out yet (now handed out)."""
        found = [s for s in self._sessions.values() if s.host == host and not s.claimed]
        for session in found:
            session.claimed = True
        return found

    def get(self, session_id: str) -> ShellSession | None:
        return self._sessions.get(session_id)

    def attach(self, session: ShellSession, socket: Any) -> bool:
        """Give the host's socket to the waiting holder; ``False`` when it is too late."""
        if session.host_socket.done() or session.ended.is_set():
            return False
        session.host_socket.set_result(socket)
        return True

    def close(self, session: ShellSession) -> None:
        session.ended.set()
        if not session.host_socket.done():
            session.host_socket.cancel()
        self._sessions.pop(session.id, None)

    def close_all(self) -> int:
        """End every session (the server is shutting down); how many there were."""
        sessions = list(self._sessions.values())
        for session in sessions:
            self.close(session)
        return len(sessions)
