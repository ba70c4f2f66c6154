"""One face for ``mien switch``, its terminal UI and ``mien customize``: the agent's socket
(:class:`mien.client.local.LocalClient`) for a normal user or wherever an agent serves it,
else, for root on a machine where no agent runs, the same operations in this process
(:class:`Direct`, over :class:`mien.agent.switchboard.Switchboard`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Protocol

from mien.protocol.switching import (
    Caller,
    Candidate,
    LocalCustomization,
    LocalHistoryEntry,
    Outcome,
    Preview,
)


class Backend(Protocol):
    def whoami(self) -> Caller: ...
    def personas(self) -> list[Candidate]: ...
    def active(self) -> str | None: ...
    def preview(self, persona: str) -> Preview: ...
    def switch(self, persona: str, wait: float = 60.0) -> Outcome: ...
    def history(self) -> list[LocalHistoryEntry]: ...
    def rollback(self, to: int | None = None, wait: float = 60.0) -> Outcome: ...
    def customizations(self) -> list[LocalCustomization]: ...
    def customize(self, key: str, value: Any = None, *, unset: bool = False) -> Outcome: ...
    def close(self) -> None: ...


class BackendError(Exception):
    """A refusal or failure, with the message to show and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def socket_answers(path: Path) -> bool:
    """Whether an agent listens on ``path`` (a stale socket file does not count)."""
    from mien.client.local import reachable

    if not path.is_socket():
        return False
    name, fd = reachable(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(name)
            except OSError:
                return False
        return True
    finally:
        if fd is not None:
            os.close(fd)


class Direct:
    """Root's operations in this process, on a machine where no agent serves the socket."""

    def __init__(self, root: Path, user: str | None) -> None:
        import pwd

        from mien.agent.switchboard import Person, Switchboard

        self.board = Switchboard(root.absolute(), user=user)
        self.person = Person(0, pwd.getpwuid(0).pw_name, ("root",))

    def _do(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        from mien.agent.engine import EngineError, NeedsAttention
        from mien.agent.handlers.base import HandlerError
        from mien.agent.state import Busy
        from mien.agent.switchboard import Denied, Missing
        from mien.agent.transaction import ApplyFailed
        from mien.spec.errors import SpecError

        try:
            return func(self.person, *args, **kwargs)
        except NeedsAttention as exc:
            raise BackendError(f"the machine needs attention: {exc}", 3) from None
        except SpecError as exc:
            raise BackendError("\n".join(str(p) for p in exc.problems)) from None
        except ApplyFailed as exc:
            raise BackendError(f"apply failed at {exc}; nothing was changed") from None
        except (EngineError, HandlerError, Busy, Denied, Missing) as exc:
            raise BackendError(str(exc)) from None

    def whoami(self) -> Caller:
        return self._do(self.board.caller)  # type: ignore[no-any-return]

    def personas(self) -> list[Candidate]:
        return self._do(self.board.personas)  # type: ignore[no-any-return]

    def active(self) -> str | None:
        return self.board.engine().status().active

    def preview(self, persona: str) -> Preview:
        return self._do(self.board.preview, persona)  # type: ignore[no-any-return]

    def switch(self, persona: str, wait: float = 60.0) -> Outcome:
        return self._do(self.board.switch, persona, wait)  # type: ignore[no-any-return]

    def history(self) -> list[LocalHistoryEntry]:
        return self._do(self.board.history)  # type: ignore[no-any-return]

    def rollback(self, to: int | None = None, wait: float = 60.0) -> Outcome:
        return self._do(self.board.rollback, to, wait)  # type: ignore[no-any-return]

    def customizations(self) -> list[LocalCustomization]:
        return self._do(self.board.customizations)  # type: ignore[no-any-return]

    def customize(self, key: str, value: Any = None, *, unset: bool = False) -> Outcome:
        return self._do(self.board.customize, key, value, unset)  # type: ignore[no-any-return]

    def close(self) -> None:
        return None


class Socket:
    """The agent's socket, with its errors turned into :class:`BackendError`."""

    def __init__(self, root: Path) -> None:
        from mien.client.local import LocalClient

        self.client = LocalClient(root)

    def __getattr__(self, name: str) -> Any:
        from mien.client import ClientError, ConnectError

        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except ConnectError as exc:
                raise BackendError(str(exc), 2) from None
            except ClientError as exc:
                raise BackendError(str(exc)) from None

        return call


def backend(root: Path, user: str | None = None) -> Backend:
    """The socket when not root or when an agent answers on it; else :class:`Direct`."""
    from mien.client.local import socket_path

    path = socket_path(root)
    if os.geteuid() != 0 or socket_answers(path):
        return Socket(root)
    return Direct(root, user)


def uses_socket(root: Path) -> bool:
    """Whether ``mien customize`` should go through the socket (not root)."""
    return os.geteuid() != 0
