"""The agent's side of the protocol, sync and async: enroll, long-poll for the desired
state, report, return remote command results, heartbeat.

The loop the agent runs on top (``mien agent run``)::

    known = load_known()                       # the `state` of the last answer handled
    attempt = 0
    while True:
        try:
            desired = await api.desired(known, wait=30)
        except RetryableError as exc:          # server gone, restarting, overloaded
            attempt += 1
            await asyncio.sleep(backoff(attempt, retry_after=exc.retry_after))
            continue
        attempt = 0
        if desired is None:                    # 204: nothing new within `wait`
            continue
        for command in desired.commands:       # run each through the router, then
            await api.command_result(command.id, exit_status, stdout, stderr, refused)
        if desired.document is not None and desired.hash != applied_hash:
            await api.report("applying", activation_id=desired.activation_id, ...)
            ...apply...
            await api.report("applied" | "failed", hash=..., error=..., history=...)
        elif desired.activation_id:            # already running it: confirm
            await api.report("applied", activation_id=desired.activation_id, hash=applied_hash)
        known = desired.state

:class:`~mien.client.errors.FinalError` from ``desired`` (401: the instance was deleted or
its token revoked) means stop and re-enroll, not retry.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from mien import __version__
from mien.client import ops
from mien.client._http import Call, base_url, build, check, ssl_context, translate
from mien.protocol import (
    AgentReport,
    CommandResult,
    DesiredState,
    Enrollment,
    EnrollRequest,
    HistoryEntry,
    Instance,
    ReportAck,
)

T = TypeVar("T")


def _report(
    state: str,
    activation_id: str | None,
    hash: str | None,
    persona: str | None,
    version: int | None,
    error: str | None,
    history: Sequence[HistoryEntry | Mapping[str, Any]] | None,
    agent_version: str | None,
    settings: Sequence[Mapping[str, Any]] | None = None,
) -> AgentReport:
    return build(
        AgentReport,
        {
            "state": state,
            "activation_id": activation_id,
            "hash": hash,
            "persona": persona,
            "version": version,
            "error": error[:16384] if error else error,
            "history": [h.model_dump() if isinstance(h, HistoryEntry) else dict(h) for h in history]
            if history is not None
            else None,
            "agent_version": agent_version,
            "settings": [dict(o) for o in settings] if settings is not None else None,
        },
    )


def _result(
    exit_status: int, stdout: str, stderr: str, refused: bool, error: str | None
) -> CommandResult:
    return build(
        CommandResult,
        {
            "exit_status": max(-255, min(255, exit_status)),
            "stdout": stdout,
            "stderr": stderr,
            "refused": refused,
            "error": error,
        },
    )


def enroll_request(
    tags: Mapping[str, str] | None,
    hostname: str | None,
    instance_id: str | None,
    agent_version: str | None,
) -> EnrollRequest:
    return build(
        EnrollRequest,
        {
            "tags": dict(tags or {}),
            "hostname": hostname,
            "instance_id": instance_id,
            "agent_version": agent_version,
        },
    )


def _http_options(server: str, token: str | None, timeout: float) -> dict[str, Any]:
    headers = {"User-Agent": f"mien-agent/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # Long-polls keep one connection busy; a couple more serve reports and results.
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    return {
        "base_url": base_url(server),
        "headers": headers,
        "timeout": httpx.Timeout(timeout, connect=10.0),
        "limits": limits,
    }


class AgentClient:
    """Synchronous agent client (one instance's token)."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: bool | str | Path | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            **_http_options(server, token, timeout), verify=ssl_context(verify), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        request = call.request(self._http)
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            raise translate(exc, f"{call.method} {request.url.path}") from exc
        return call.parse(check(response))

    def enroll(
        self,
        enroll_token: str,
        *,
        tags: Mapping[str, str] | None = None,
        hostname: str | None = None,
        instance_id: str | None = None,
        agent_version: str | None = None,
    ) -> Enrollment:
        """Trade an enrollment token for this instance's id and token (store it 0600)."""
        request = enroll_request(tags, hostname, instance_id, agent_version)
        return self.send(ops.enroll(enroll_token, request))

    def desired(self, known: str | None = None, wait: float = 30.0) -> DesiredState | None:
        """Long-poll: the desired state once it differs from ``known`` (or commands wait);
        ``None`` when ``wait`` seconds pass with nothing new."""
        return self.send(ops.desired(known, wait))

    def report(
        self,
        state: str,
        *,
        activation_id: str | None = None,
        hash: str | None = None,
        persona: str | None = None,
        version: int | None = None,
        error: str | None = None,
        history: Sequence[HistoryEntry | Mapping[str, Any]] | None = None,
        agent_version: str | None = None,
        settings: Sequence[Mapping[str, Any]] | None = None,
    ) -> ReportAck:
        """``applying``, ``applied`` or ``failed`` (with ``error``)."""
        body = _report(
            state, activation_id, hash, persona, version, error, history, agent_version, settings
        )
        return self.send(ops.report(body))

    def command_result(
        self,
        command_id: str,
        exit_status: int,
        stdout: str = "",
        stderr: str = "",
        *,
        refused: bool = False,
        error: str | None = None,
    ) -> None:
        body = _result(exit_status, stdout, stderr, refused, error)
        self.send(ops.command_result(command_id, body))

    def heartbeat(self, agent_version: str | None = None) -> None:
        self.send(ops.heartbeat(agent_version))

    def instance(self, instance_id: str) -> Instance:
        """This instance's record (an agent may read only its own)."""
        return self.send(ops.get_instance(instance_id))


class AsyncAgentClient:
    """Asynchronous agent client (one instance's token), for an asyncio agent loop."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: bool | str | Path | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            **_http_options(server, token, timeout), verify=ssl_context(verify), transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        request = call.request(self._http)
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise translate(exc, f"{call.method} {request.url.path}") from exc
        return call.parse(check(response))

    async def enroll(
        self,
        enroll_token: str,
        *,
        tags: Mapping[str, str] | None = None,
        hostname: str | None = None,
        instance_id: str | None = None,
        agent_version: str | None = None,
    ) -> Enrollment:
        request = enroll_request(tags, hostname, instance_id, agent_version)
        return await self.send(ops.enroll(enroll_token, request))

    async def desired(self, known: str | None = None, wait: float = 30.0) -> DesiredState | None:
        return await self.send(ops.desired(known, wait))

    async def report(
        self,
        state: str,
        *,
        activation_id: str | None = None,
        hash: str | None = None,
        persona: str | None = None,
        version: int | None = None,
        error: str | None = None,
        history: Sequence[HistoryEntry | Mapping[str, Any]] | None = None,
        agent_version: str | None = None,
        settings: Sequence[Mapping[str, Any]] | None = None,
    ) -> ReportAck:
        body = _report(
            state, activation_id, hash, persona, version, error, history, agent_version, settings
        )
        return await self.send(ops.report(body))

    async def command_result(
        self,
        command_id: str,
        exit_status: int,
        stdout: str = "",
        stderr: str = "",
        *,
        refused: bool = False,
        error: str | None = None,
    ) -> None:
        body = _result(exit_status, stdout, stderr, refused, error)
        await self.send(ops.command_result(command_id, body))

    async def heartbeat(self, agent_version: str | None = None) -> None:
        await self.send(ops.heartbeat(agent_version))

    async def instance(self, instance_id: str) -> Instance:
        return await self.send(ops.get_instance(instance_id))
