"""What every client shares: a call described as data, the sessions that send calls (sync,
and async for callers that run many agents in one event loop), how an answer becomes a
typed result or a :class:`~mien.client.errors.ClientError`, and retry backoff.

Each API operation is a :class:`Call` (method, path, parameters, body, and how to parse
the answer) built by :mod:`mien.client.ops`. :class:`~mien.client.sync.Client` and
:class:`~mien.client.agent.AgentClient` are a :class:`Session` plus typed methods that
only *send* calls, so every operation is written once whichever transport runs it.
"""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from mien import __version__
from mien.client import errors
from mien.protocol import ErrorBody

API = "/api/v1"
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
B = TypeVar("B", bound=BaseModel)
S = TypeVar("S", bound="Session")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | list[tuple[str, Any]] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None  # overrides the client's (long-polls wait longer)

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        params = _clean(self.params)
        kwargs: dict[str, Any] = {"params": params, "headers": dict(self.headers)}
        if self.json is not None:
            kwargs["json"] = self.json
        elif self.content is not None:
            kwargs["content"] = self.content
        if self.timeout is not None:
            kwargs["timeout"] = httpx.Timeout(self.timeout, connect=10.0)
        return client.build_request(self.method, self.path, **kwargs)


Verify = bool | str | Path | ssl.SSLContext
"""``False``, a CA bundle path or an SSL context for a server with a private certificate."""


def _options(
    server: str, token: str | None, timeout: float, verify: Verify, agent: bool
) -> dict[str, Any]:
    headers = {"User-Agent": f"mien{'-agent' if agent else ''}/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    options: dict[str, Any] = {
        "base_url": base_url(server),
        "headers": headers,
        "timeout": httpx.Timeout(timeout, connect=10.0),
        "verify": ssl_context(verify),
    }
    if agent:
        # Long-polls keep one connection busy; a couple more serve reports and results.
        options["limits"] = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    return options


def _where(call: Call[Any], request: httpx.Request) -> str:
    return f"{call.method} {request.url.path}"


class Session:
    """A synchronous connection to one mien server, authenticated by one bearer token."""

    agent = False  # an agent's session: its own User-Agent, few connections

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: Verify = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``server``: ``https://host:port``; ``transport``: for tests."""
        options = _options(server, token, timeout, verify, self.agent)
        self.server: str = options["base_url"]
        # What a WebSocket to the same server needs (mien.client.shell).
        self.socket_headers: dict[str, str] = dict(options["headers"])
        self.socket_ssl: bool | ssl.SSLContext = options["verify"]
        self._http = httpx.Client(**options, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Send one operation of :mod:`mien.client.ops` and parse its answer."""
        request = call.request(self._http)
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            raise translate(exc, _where(call, request)) from exc
        return call.parse(check(response))


class AsyncSession:
    """The asynchronous twin of :class:`Session` for an asyncio caller (the integration
    tests run many simulated agents in one event loop): ``await session.send(ops.x(...))``."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: Verify = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        options = _options(server, token, timeout, verify, agent=True)
        self._http = httpx.AsyncClient(**options, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        request = call.request(self._http)
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise translate(exc, _where(call, request)) from exc
        return call.parse(check(response))


def _clean(params: Mapping[str, Any] | list[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    items = list(params.items()) if isinstance(params, Mapping) else list(params or [])
    out = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((key, value))
    return out


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return cls.model_validate_json(response.content)
        except ValidationError as exc:
            raise errors.ProtocolError(
                f"{response.request.method} {response.request.url.path}: the server's answer "
                f"is not a valid {cls.__name__}: {exc.errors()[0].get('msg', exc)}",
                status=response.status_code,
                code="protocol",
            ) from exc

    return parse


def build(cls: type[B], data: Mapping[str, Any]) -> B:
    """A request body, checked before sending; bad arguments are a :class:`BadRequest`."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            path = ".".join(str(p) for p in error["loc"]) or cls.__name__
            message = str(error["msg"]).replace("Input should be ", "must be ", 1)
            problems.append(f"{path}: {message}")
        raise errors.BadRequest("; ".join(problems), code="invalid_request") from None


def segment(value: str) -> str:
    """``value`` as one path segment (a name with ``/`` or ``%`` stays one segment)."""
    return quote(value, safe="")


def as_json(m: Any) -> Any:
    """A request model as the JSON body it is sent as."""
    return m.model_dump(mode="json", exclude_none=False)


def nothing(_response: httpx.Response) -> None:
    return None


def text(response: httpx.Response) -> str:
    return response.text


def check(response: httpx.Response) -> httpx.Response:
    """Raise the matching :class:`ClientError` for an error status, with the server's words."""
    status = response.status_code
    if status < 400:
        return response
    cls = errors.error_for_status(status)
    retry_after = _retry_after(response.headers.get("retry-after"))
    where = f"{response.request.method} {response.request.url.path}"
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:
        snippet = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        message = f"{where}: HTTP {status}" + (f": {snippet}" if snippet else "")
        raise cls(message, status=status, retry_after=retry_after) from None
    raise cls(
        body.detail,
        status=status,
        code=body.code,
        problems=body.problems,
        retry_after=retry_after,
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate(exc: httpx.HTTPError, where: str) -> errors.ClientError:
    """An httpx failure as a :class:`ClientError` that says what happened."""
    if isinstance(exc, httpx.TimeoutException):
        return errors.Timeout(f"{where}: no answer in time ({type(exc).__name__})", code="timeout")
    if isinstance(exc, httpx.TransportError):
        reason = str(exc) or type(exc).__name__
        return errors.ConnectError(f"{where}: cannot reach the server: {reason}", code="connect")
    return errors.ProtocolError(f"{where}: {exc}", code="protocol")


def ssl_context(verify: Verify) -> bool | ssl.SSLContext:
    """``verify`` as httpx wants it: a CA bundle path becomes an SSL context."""
    if isinstance(verify, str | Path):
        return ssl.create_default_context(cafile=str(verify))
    return verify


def base_url(server: str) -> str:
    """``https://host:8470`` from what a user may type (``host:8470``, ``…/api/v1/``)."""
    url = server.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if url.endswith(API):
        url = url[: -len(API)]
    return url


RECONNECT_BASE = 0.25
RECONNECT_CAP = 4.0


def backoff(
    attempt: int,
    *,
    base: float = RECONNECT_BASE,
    cap: float = RECONNECT_CAP,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): exponential with full
    jitter (uniform between 0 and ``base * 2**(attempt-1)``), never above ``cap``.

    The cap is a few seconds, not a minute: a retry against a server that is down costs a
    refused connection, while a long cap keeps agents away for up to that long after it is
    back (a minute with the old 60 s). With full jitter under a 4 s cap a whole fleet is back
    within about 4 s of a restart, spread evenly over that time rather than in one burst;
    a server that needs them slower says so with ``Retry-After``, which is honoured (plus
    up to half again of jitter)."""
    ceiling = min(cap, base * (2 ** min(max(0, attempt - 1), 32)))
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after * (1 + random.uniform(0, 0.5)))
    return delay


def document_body(document: Any) -> tuple[bytes, str]:
    """A persona document (mapping, text, bytes or a file path) as (body, content type)."""
    if isinstance(document, Path):
        try:
            data = document.read_bytes()
        except OSError as exc:
            raise errors.BadRequest(
                f"{document}: cannot read: {exc.strerror or exc}", code="unreadable"
            ) from None
        kind = "application/json" if document.suffix == ".json" else "application/yaml"
        return data, kind
    if isinstance(document, Mapping):
        return json.dumps(document).encode(), "application/json"
    data = document.encode() if isinstance(document, str) else bytes(document)
    kind = "application/json" if data.lstrip().startswith(b"{") else "application/yaml"
    return data, kind
