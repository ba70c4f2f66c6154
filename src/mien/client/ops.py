"""Every API operation as a :class:`~mien.client._http.Call`: path, parameters, the body
(built and checked here, so a bad argument is a :class:`~mien.client.errors.BadRequest`
before anything is sent) and the type of the answer. The clients (and the tests' async
agents) send these; nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import httpx

from mien.client import errors
from mien.client._http import API, Call, build, document_body, model, nothing, text
from mien.protocol import (
    Activation,
    ActivePersona,
    AgentReport,
    AuditRecord,
    AuditVerification,
    Binding,
    BindingIn,
    CommandRecord,
    CommandRequest,
    CommandResult,
    DefaultPersona,
    DesiredState,
    EffectivePersona,
    Enrollment,
    EnrollRequest,
    FleetSummary,
    Health,
    HistoryEntry,
    Instance,
    Page,
    PersonaDiff,
    PersonaSummary,
    PersonaVersion,
    ReportAck,
    TagPatch,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    VersionSummary,
    WhoAmI,
)
from mien.protocol.sources import FETCHED_AT, SourceCopy
from mien.protocol.status import InstanceStatus, MachineStatus
from mien.protocol.telemetry import MetricsAnswer, TelemetryAck, TelemetryEvent


def _p(value: str) -> str:
    return quote(value, safe="")


def _json(m: Any) -> Any:
    return m.model_dump(mode="json", exclude_none=False)


# --- service ---------------------------------------------------------------------------


def health() -> Call[Health]:
    return Call("GET", "/healthz", model(Health))


def whoami() -> Call[WhoAmI]:
    return Call("GET", f"{API}/whoami", model(WhoAmI))


# --- personas --------------------------------------------------------------------------


def _source(document: Any, source: str | None) -> str | None:
    if source is None and isinstance(document, Path):
        return document.name
    return source


def create_persona(document: Any, source: str | None = None) -> Call[PersonaVersion]:
    body, kind = document_body(document)
    return Call(
        "POST",
        f"{API}/personas",
        model(PersonaVersion),
        params={"source": _source(document, source)},
        content=body,
        headers={"Content-Type": kind},
    )


def update_persona(
    name: str, document: Any, if_match: str | None, source: str | None = None
) -> Call[PersonaVersion]:
    body, kind = document_body(document)
    headers = {"Content-Type": kind}
    if if_match:
        headers["If-Match"] = if_match
    return Call(
        "PUT",
        f"{API}/personas/{_p(name)}",
        model(PersonaVersion),
        params={"source": _source(document, source)},
        content=body,
        headers=headers,
    )


def get_persona(name: str, include_deleted: bool = False) -> Call[PersonaVersion]:
    params = {"include_deleted": include_deleted or None}
    return Call("GET", f"{API}/personas/{_p(name)}", model(PersonaVersion), params=params)


def get_persona_yaml(name: str) -> Call[str]:
    return Call("GET", f"{API}/personas/{_p(name)}", text, params={"format": "yaml"})


def list_personas(include_deleted: bool, after: str | None) -> Call[Page[PersonaSummary]]:
    params = {"include_deleted": include_deleted or None, "after": after, "limit": 1000}
    return Call("GET", f"{API}/personas", model(Page[PersonaSummary]), params=params)


def delete_persona(name: str, force: bool) -> Call[None]:
    return Call("DELETE", f"{API}/personas/{_p(name)}", nothing, params={"force": force or None})


def set_default_persona(name: str) -> Call[DefaultPersona]:
    return Call("PUT", f"{API}/personas/{_p(name)}/default", model(DefaultPersona))


def unset_default_persona(name: str) -> Call[DefaultPersona]:
    return Call("DELETE", f"{API}/personas/{_p(name)}/default", model(DefaultPersona))


def persona_versions(name: str) -> Call[Page[VersionSummary]]:
    return Call("GET", f"{API}/personas/{_p(name)}/versions", model(Page[VersionSummary]))


def persona_version(name: str, version: int) -> Call[PersonaVersion]:
    return Call("GET", f"{API}/personas/{_p(name)}/versions/{version}", model(PersonaVersion))


def persona_diff(name: str, from_: int | None, to: int | None) -> Call[PersonaDiff]:
    return Call(
        "GET",
        f"{API}/personas/{_p(name)}/diff",
        model(PersonaDiff),
        params={"from": from_, "to": to},
    )


# --- instances -------------------------------------------------------------------------


def list_instances(
    tags: Mapping[str, str] | None,
    persona: str | None,
    include_deleted: bool,
    after: str | None,
    limit: int,
    hostname: str | None = None,
    noncompliant: bool | None = None,
) -> Call[Page[Instance]]:
    params: list[tuple[str, Any]] = [("tag", f"{k}={v}") for k, v in (tags or {}).items()]
    params += [
        ("persona", persona),
        ("hostname", hostname),
        ("noncompliant", None if noncompliant is None else str(noncompliant).lower()),
        ("include_deleted", include_deleted or None),
        ("after", after),
        ("limit", limit),
    ]
    return Call("GET", f"{API}/instances", model(Page[Instance]), params=params)


def get_instance(instance_id: str) -> Call[Instance]:
    return Call("GET", f"{API}/instances/{_p(instance_id)}", model(Instance))


def set_tags(instance_id: str, tags: Mapping[str, str | None]) -> Call[Instance]:
    # build(): a bad tag is a BadRequest (a ClientError), not pydantic's ValidationError.
    body = _json(build(TagPatch, {"tags": dict(tags)}))
    return Call("PATCH", f"{API}/instances/{_p(instance_id)}", model(Instance), json=body)


def delete_instance(instance_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/instances/{_p(instance_id)}", nothing)


def active_persona(instance_id: str) -> Call[ActivePersona]:
    return Call("GET", f"{API}/instances/{_p(instance_id)}/active_persona", model(ActivePersona))


def effective_persona(instance_id: str) -> Call[EffectivePersona]:
    return Call(
        "GET", f"{API}/instances/{_p(instance_id)}/effective_persona", model(EffectivePersona)
    )


def instance_history(instance_id: str) -> Call[Page[HistoryEntry]]:
    return Call("GET", f"{API}/instances/{_p(instance_id)}/history", model(Page[HistoryEntry]))


def instance_status(instance_id: str) -> Call[InstanceStatus]:
    return Call("GET", f"{API}/instances/{_p(instance_id)}/status", model(InstanceStatus))


def put_status(instance_id: str, status: Mapping[str, Any]) -> Call[None]:
    """The agent's report of its machine (:class:`MachineStatus`), between reports."""
    body = _json(build(MachineStatus, status))
    return Call("PUT", f"{API}/instances/{_p(instance_id)}/status", nothing, json=body)


def fleet_summary() -> Call[FleetSummary]:
    return Call("GET", f"{API}/fleet/summary", model(FleetSummary))


# --- activations -----------------------------------------------------------------------


def activate(instance_id: str, persona: str, version: int | None) -> Call[Activation]:
    path = f"{API}/instances/{_p(instance_id)}/personas/{_p(persona)}/activate"
    return Call("POST", path, model(Activation), params={"version": version})


def clear_activation(instance_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/instances/{_p(instance_id)}/activation", nothing)


def get_activation(activation_id: str) -> Call[Activation]:
    return Call("GET", f"{API}/activations/{_p(activation_id)}", model(Activation))


def list_activations(
    instance: str | None, persona: str | None, status: str | None, before: str | None, limit: int
) -> Call[Page[Activation]]:
    params = {
        "instance": instance,
        "persona": persona,
        "status": status,
        "before": before,
        "limit": limit,
    }
    return Call("GET", f"{API}/activations", model(Page[Activation]), params=params)


# --- bindings --------------------------------------------------------------------------


def create_binding(binding: BindingIn) -> Call[Binding]:
    return Call("POST", f"{API}/bindings", model(Binding), json=_json(binding))


def update_binding(binding: BindingIn, if_match: str | None) -> Call[Binding]:
    headers = {"If-Match": if_match} if if_match else {}
    path = f"{API}/bindings/{_p(binding.name)}"
    return Call("PUT", path, model(Binding), json=_json(binding), headers=headers)


def get_binding(name: str) -> Call[Binding]:
    return Call("GET", f"{API}/bindings/{_p(name)}", model(Binding))


def list_bindings() -> Call[Page[Binding]]:
    return Call("GET", f"{API}/bindings", model(Page[Binding]))


def delete_binding(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/bindings/{_p(name)}", nothing)


# --- commands --------------------------------------------------------------------------


def run_command(instance_id: str, request: CommandRequest, wait: float) -> Call[CommandRecord]:
    path = f"{API}/instances/{_p(instance_id)}/commands"
    return Call(
        "POST",
        path,
        model(CommandRecord),
        params={"wait": wait},
        json=_json(request),
        timeout=wait + 30,
    )


def get_command(instance_id: str, command_id: str, wait: float) -> Call[CommandRecord]:
    path = f"{API}/instances/{_p(instance_id)}/commands/{_p(command_id)}"
    return Call("GET", path, model(CommandRecord), params={"wait": wait or None}, timeout=wait + 30)


def list_commands(instance_id: str, limit: int) -> Call[Page[CommandRecord]]:
    path = f"{API}/instances/{_p(instance_id)}/commands"
    return Call("GET", path, model(Page[CommandRecord]), params={"limit": limit})


# --- audit and tokens ------------------------------------------------------------------


def audit(
    *,
    actor: str | None,
    action: str | None,
    instance: str | None,
    persona: str | None,
    since: datetime | None,
    until: datetime | None,
    after: str | None,
    limit: int,
) -> Call[Page[AuditRecord]]:
    params = {
        "actor": actor,
        "action": action,
        "instance": instance,
        "persona": persona,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "after": after,
        "limit": limit,
    }
    return Call("GET", f"{API}/audit", model(Page[AuditRecord]), params=params)


def audit_verify() -> Call[AuditVerification]:
    return Call("GET", f"{API}/audit/verify", model(AuditVerification), timeout=300)


def create_token(request: TokenCreate) -> Call[TokenCreated]:
    return Call("POST", f"{API}/tokens", model(TokenCreated), json=_json(request))


def list_tokens(include_revoked: bool) -> Call[Page[TokenInfo]]:
    params = {"include_revoked": include_revoked or None}
    return Call("GET", f"{API}/tokens", model(Page[TokenInfo]), params=params)


def revoke_token(token_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/tokens/{_p(token_id)}", nothing)


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
        json=_json(request),
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
    return Call("POST", f"{API}/agent/report", model(ReportAck), json=_json(body))


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
    return Call("POST", f"{API}/agent/commands/{_p(command_id)}/result", nothing, json=_json(body))


def heartbeat(agent_version: str | None) -> Call[None]:
    body = {"agent_version": agent_version} if agent_version else None
    return Call("POST", f"{API}/agent/heartbeat", nothing, json=body)


# --- telemetry -------------------------------------------------------------------------


def post_telemetry(body: bytes) -> Call[TelemetryAck]:
    """A gzip-compressed :class:`~mien.protocol.telemetry.TelemetryBatch` (the agent's)."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return Call(
        "POST", f"{API}/agent/telemetry", model(TelemetryAck), content=body, headers=headers
    )


def instance_metrics(
    instance_id: str, name: str | None, since: float | None, step: float | None
) -> Call[MetricsAnswer]:
    params = {"name": name, "since": since, "step": step}
    path = f"{API}/instances/{_p(instance_id)}/metrics"
    return Call("GET", path, model(MetricsAnswer), params=params)


def telemetry_events(
    instance: str | None, since: float | None, kind: str | None, after: str | None, limit: int
) -> Call[Page[TelemetryEvent]]:
    params = {"instance": instance, "since": since, "kind": kind, "after": after, "limit": limit}
    return Call("GET", f"{API}/events", model(Page[TelemetryEvent]), params=params)


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
    return Call(
        "GET", f"{API}/agent/sources/{quote(key, safe='')}", _source_answer, headers=headers
    )
