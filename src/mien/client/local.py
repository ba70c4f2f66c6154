"""The client of the agent's local API: HTTP over the Unix socket ``ROOT/run/mien/agent.sock``.

Used by ``mien switch`` and ``mien customize`` when they run as a normal user (and by the
terminal UI): the agent, running as root, acts for the caller it identifies from the
kernel (SO_PEERCRED). Nothing here says who the caller is; the socket does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from mien.client import errors
from mien.client._http import check
from mien.protocol.switching import (
    Caller,
    Candidate,
    LocalCustomization,
    LocalHistoryEntry,
    Outcome,
    Preview,
)

SOCKET = "run/mien/agent.sock"
M = TypeVar("M", bound=BaseModel)


def socket_path(root: str | Path) -> Path:
    return Path(root).absolute() / SOCKET


def reachable(path: Path) -> tuple[str, int | None]:
    """A name to connect to ``path`` by: itself, or, past the kernel's 108-byte limit on
    socket paths, the same file through an open descriptor of its directory
    (``/proc/self/fd/N/NAME``; the caller closes N)."""
    if len(os.fsencode(path)) < 100:
        return str(path), None
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}", fd


class LocalClient:
    """Talk to the agent on ``root`` through its socket (raises :class:`ClientError`)."""

    def __init__(self, root: str | Path = "/", *, timeout: float = 660.0) -> None:
        self.path = socket_path(root)
        try:
            name, self._dir_fd = reachable(self.path)
        except OSError:
            name, self._dir_fd = str(self.path), None  # reported when a call connects
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=name),
            base_url="http://mien-agent",
            timeout=httpx.Timeout(timeout, connect=5.0),
            headers={"User-Agent": "mien-local"},
        )

    def close(self) -> None:
        self._http.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise errors.ConnectError(
                f"cannot reach the mien agent at {self.path}: {exc or type(exc).__name__} "
                "(is `mien agent run` or `mien agent serve-socket` running?)"
            ) from exc
        return check(response).json()

    @staticmethod
    def _parse(kind: Any, data: Any) -> Any:
        try:
            return TypeAdapter(kind).validate_python(data)
        except ValidationError as exc:
            raise errors.ProtocolError(f"the agent answered something unreadable: {exc}") from exc

    def whoami(self) -> Caller:
        return self._parse(Caller, self._call("GET", "/v1/whoami"))  # type: ignore[no-any-return]

    def personas(self) -> list[Candidate]:
        return self._parse(list[Candidate], self._call("GET", "/v1/personas"))  # type: ignore[no-any-return]

    def active(self) -> str | None:
        data = self._call("GET", "/v1/status")
        return data.get("active") if isinstance(data, dict) else None

    def preview(self, persona: str) -> Preview:
        data = self._call("POST", "/v1/preview", {"persona": persona})
        return self._parse(Preview, data)  # type: ignore[no-any-return]

    def switch(self, persona: str, wait: float = 60.0) -> Outcome:
        data = self._call("POST", "/v1/switch", {"persona": persona, "wait": wait})
        return self._parse(Outcome, data)  # type: ignore[no-any-return]

    def history(self) -> list[LocalHistoryEntry]:
        return self._parse(list[LocalHistoryEntry], self._call("GET", "/v1/history"))  # type: ignore[no-any-return]

    def rollback(self, to: int | None = None, wait: float = 60.0) -> Outcome:
        data = self._call("POST", "/v1/rollback", {"to": to, "wait": wait})
        return self._parse(Outcome, data)  # type: ignore[no-any-return]

    def customizations(self) -> list[LocalCustomization]:
        data = self._call("GET", "/v1/customizations")
        return self._parse(list[LocalCustomization], data)  # type: ignore[no-any-return]

    def customize(self, key: str, value: Any = None, *, unset: bool = False) -> Outcome:
        data = self._call(
            "POST", "/v1/customizations", {"key": key, "value": value, "unset": unset}
        )
        return self._parse(Outcome, data)  # type: ignore[no-any-return]
