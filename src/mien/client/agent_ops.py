"""The agent's half of the API as :class:`~mien.client._http.Call` values: enrollment,
the long-poll for the desired state, reports, command results, heartbeats, its machine's
status, telemetry batches and fleet-wide data sources. Sent by
:class:`mien.client.agent.AgentClient` (and the tests' async agents); nothing here does I/O.
The operators' operations are in :mod:`mien.client.ops`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

import httpx

from mien.client import errors
from mien.client._http import API, Call, as_json, build, model, nothing, segment
from mien.protocol import (
    AgentReport,
    CommandResult,
    DesiredState,
    Enrollment,
    EnrollRequest,
    HistoryEntry,
    ReportAck,
)
from mien.protocol.sources import FETCHED_AT, SourceCopy
from mien.protocol.status import MachineStatus
from mien.protocol.telemetry import TelemetryAck

# --- the agent protocol ----------------------------------------------------------------


def enroll(
    enroll_token: str,
    *,
    tags: Mapping[str, str] | None = None,
    hostname: str | None = None,
    instance_id: str | None = None,
    agent_version: str | None = None,
) -> Call[Enrollment]:
    request = build(
        EnrollRequest,
        {
            "tags": dict(tags or {}),
            "hostname": hostname,
            "instance_id": instance_id,
            "agent_version": agent_version,
        },
    )
    return Call(
        "POST",
        f"{API}/enroll",
        model(Enrollment),
        json=as_json(request),
        headers={"Authorization": f"Bearer {enroll_token}"},
    )


def _desired_or_none(response: httpx.Response) -> DesiredState | None:
    if response.status_code == 204:
        return None
    return model(DesiredState)(response)


def desired(known: str | None, wait: float) -> Call[DesiredState | None]:
    return Call(
        "GET",
        f"{API}/agent/desired",
        _desired_or_none,
        params={"known": known, "wait": wait},
        timeout=wait + 30,
    )


class ReportFields(TypedDict, total=False):
    """What an agent's report may say beside its state (see :class:`AgentReport`)."""

    activation_id: str | None
    hash: str | None
    persona: str | None
    version: int | None
    error: str | None
    history: Sequence[HistoryEntry | Mapping[str, Any]] | None
    agent_version: str | None
    settings: Sequence[Mapping[str, Any]] | None
    instance: str | None
    status: Mapping[str, Any] | None


def report(state: str, **fields: Unpack[ReportFields]) -> Call[ReportAck]:
    """``applying``, ``applied`` or ``failed`` (with ``error``, cut to 16 KiB)."""
    error = fields.get("error")
    history = fields.get("history")
    settings = fields.get("settings")
    body = build(
        AgentReport,
        {
            **fields,
            "state": state,
            "error": error[:16384] if error else error,
            "history": [h.model_dump() if isinstance(h, HistoryEntry) else dict(h) for h in history]
            if history is not None
            else None,
            "settings": [dict(o) for o in settings] if settings is not None else None,
        },
    )
    return Call("POST", f"{API}/agent/report", model(ReportAck), json=as_json(body))


def command_result(
    command_id: str,
    exit_status: int,
    stdout: str = "",
    stderr: str = "",
    *,
    refused: bool = False,
    error: str | None = None,
) -> Call[None]:
    body = build(
        CommandResult,
        {
            "exit_status": max(-255, min(255, exit_status)),
            "stdout": stdout,
            "stderr": stderr,
            "refused": refused,
            "error": error,
        },
    )
    return Call(
        "POST", f"{API}/agent/commands/{segment(command_id)}/result", nothing, json=as_json(body)
    )


def heartbeat(agent_version: str | None) -> Call[None]:
    body = {"agent_version": agent_version} if agent_version else None
    return Call("POST", f"{API}/agent/heartbeat", nothing, json=body)


# --- the machine's status and telemetry ----------------------------------------------


def put_status(instance_id: str, status: Mapping[str, Any]) -> Call[None]:
    """The agent's report of its machine (:class:`MachineStatus`), between reports."""
    body = as_json(build(MachineStatus, status))
    return Call("PUT", f"{API}/instances/{segment(instance_id)}/status", nothing, json=body)


def post_telemetry(body: bytes) -> Call[TelemetryAck]:
    """A gzip-compressed :class:`~mien.protocol.telemetry.TelemetryBatch` (the agent's)."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return Call(
        "POST", f"{API}/agent/telemetry", model(TelemetryAck), content=body, headers=headers
    )


SourceAnswer = tuple[SourceCopy | None, str | None, float]
"""The server's copy of a fleet-wide source (None: the ETag sent is still current), its
ETag, and when the server last confirmed it at the origin."""


def _source_answer(response: httpx.Response) -> SourceAnswer:
    etag = response.headers.get("etag")
    try:
        fetched_at = float(response.headers.get(FETCHED_AT, ""))
    except ValueError:
        raise errors.ClientError(
            f"GET {response.request.url.path}: the answer has no {FETCHED_AT} header"
        ) from None
    if response.status_code == 304:
        return None, etag, fetched_at
    return model(SourceCopy)(response), etag, fetched_at


def agent_source(key: str, etag: str | None) -> Call[SourceAnswer]:
    headers = {"If-None-Match": etag} if etag else {}
    return Call("GET", f"{API}/agent/sources/{segment(key)}", _source_answer, headers=headers)
