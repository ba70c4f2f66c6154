"""Every API operation as a :class:`~mien.client._http.Call`: path, parameters, the body
(built and checked here, so a bad argument is a :class:`~mien.client.errors.BadRequest`
before anything is sent) and the type of the answer. The clients (and the tests' async
agents) send these; nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mien.client._http import (
    API,
    Call,
    as_json,
    build,
    document_body,
    model,
    nothing,
    segment,
    text,
)
from mien.protocol import (
    Activation,
    ActivePersona,
    AuditRecord,
    AuditVerification,
    Binding,
    BindingIn,
    CommandRecord,
    CommandRequest,
    DefaultPersona,
    EffectivePersona,
    FleetSummary,
    Health,
    HistoryEntry,
    Instance,
    Page,
    PersonaDiff,
    PersonaSummary,
    PersonaVersion,
    TagPatch,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    VersionSummary,
    WhoAmI,
)
from mien.protocol.status import InstanceStatus
from mien.protocol.telemetry import MetricsAnswer, TelemetryEvent

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
        f"{API}/personas/{segment(name)}",
        model(PersonaVersion),
        params={"source": _source(document, source)},
        content=body,
        headers=headers,
    )


def get_persona(name: str, include_deleted: bool = False) -> Call[PersonaVersion]:
    params = {"include_deleted": include_deleted or None}
    return Call("GET", f"{API}/personas/{segment(name)}", model(PersonaVersion), params=params)


def get_persona_yaml(name: str) -> Call[str]:
    return Call("GET", f"{API}/personas/{segment(name)}", text, params={"format": "yaml"})


def list_personas(include_deleted: bool, after: str | None) -> Call[Page[PersonaSummary]]:
    params = {"include_deleted": include_deleted or None, "after": after, "limit": 1000}
    return Call("GET", f"{API}/personas", model(Page[PersonaSummary]), params=params)


def delete_persona(name: str, force: bool) -> Call[None]:
    return Call(
        "DELETE", f"{API}/personas/{segment(name)}", nothing, params={"force": force or None}
    )


def set_default_persona(name: str) -> Call[DefaultPersona]:
    return Call("PUT", f"{API}/personas/{segment(name)}/default", model(DefaultPersona))


def unset_default_persona(name: str) -> Call[DefaultPersona]:
    return Call("DELETE", f"{API}/personas/{segment(name)}/default", model(DefaultPersona))


def persona_versions(name: str) -> Call[Page[VersionSummary]]:
    return Call("GET", f"{API}/personas/{segment(name)}/versions", model(Page[VersionSummary]))


def persona_version(name: str, version: int) -> Call[PersonaVersion]:
    return Call("GET", f"{API}/personas/{segment(name)}/versions/{version}", model(PersonaVersion))


def persona_diff(name: str, from_: int | None, to: int | None) -> Call[PersonaDiff]:
    return Call(
        "GET",
        f"{API}/personas/{segment(name)}/diff",
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
    return Call("GET", f"{API}/instances/{segment(instance_id)}", model(Instance))


def set_tags(instance_id: str, tags: Mapping[str, str | None]) -> Call[Instance]:
    # build(): a bad tag is a BadRequest (a ClientError), not pydantic's ValidationError.
    body = as_json(build(TagPatch, {"tags": dict(tags)}))
    return Call("PATCH", f"{API}/instances/{segment(instance_id)}", model(Instance), json=body)


def delete_instance(instance_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/instances/{segment(instance_id)}", nothing)


def active_persona(instance_id: str) -> Call[ActivePersona]:
    return Call(
        "GET", f"{API}/instances/{segment(instance_id)}/active_persona", model(ActivePersona)
    )


def effective_persona(instance_id: str) -> Call[EffectivePersona]:
    return Call(
        "GET", f"{API}/instances/{segment(instance_id)}/effective_persona", model(EffectivePersona)
    )


def instance_history(instance_id: str) -> Call[Page[HistoryEntry]]:
    return Call("GET", f"{API}/instances/{segment(instance_id)}/history", model(Page[HistoryEntry]))


def instance_status(instance_id: str) -> Call[InstanceStatus]:
    return Call("GET", f"{API}/instances/{segment(instance_id)}/status", model(InstanceStatus))


def fleet_summary() -> Call[FleetSummary]:
    return Call("GET", f"{API}/fleet/summary", model(FleetSummary))


# --- activations -----------------------------------------------------------------------


def activate(instance_id: str, persona: str, version: int | None) -> Call[Activation]:
    path = f"{API}/instances/{segment(instance_id)}/personas/{segment(persona)}/activate"
    return Call("POST", path, model(Activation), params={"version": version})


def clear_activation(instance_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/instances/{segment(instance_id)}/activation", nothing)


def get_activation(activation_id: str) -> Call[Activation]:
    return Call("GET", f"{API}/activations/{segment(activation_id)}", model(Activation))


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
    return Call("POST", f"{API}/bindings", model(Binding), json=as_json(binding))


def update_binding(binding: BindingIn, if_match: str | None) -> Call[Binding]:
    headers = {"If-Match": if_match} if if_match else {}
    path = f"{API}/bindings/{segment(binding.name)}"
    return Call("PUT", path, model(Binding), json=as_json(binding), headers=headers)


def get_binding(name: str) -> Call[Binding]:
    return Call("GET", f"{API}/bindings/{segment(name)}", model(Binding))


def list_bindings() -> Call[Page[Binding]]:
    return Call("GET", f"{API}/bindings", model(Page[Binding]))


def delete_binding(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/bindings/{segment(name)}", nothing)


# --- commands --------------------------------------------------------------------------


def run_command(instance_id: str, request: CommandRequest, wait: float) -> Call[CommandRecord]:
    path = f"{API}/instances/{segment(instance_id)}/commands"
    return Call(
        "POST",
        path,
        model(CommandRecord),
        params={"wait": wait},
        json=as_json(request),
        timeout=wait + 30,
    )


def get_command(instance_id: str, command_id: str, wait: float) -> Call[CommandRecord]:
    path = f"{API}/instances/{segment(instance_id)}/commands/{segment(command_id)}"
    return Call("GET", path, model(CommandRecord), params={"wait": wait or None}, timeout=wait + 30)


def list_commands(instance_id: str, limit: int) -> Call[Page[CommandRecord]]:
    path = f"{API}/instances/{segment(instance_id)}/commands"
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
    return Call("POST", f"{API}/tokens", model(TokenCreated), json=as_json(request))


def list_tokens(include_revoked: bool) -> Call[Page[TokenInfo]]:
    params = {"include_revoked": include_revoked or None}
    return Call("GET", f"{API}/tokens", model(Page[TokenInfo]), params=params)


def revoke_token(token_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/tokens/{segment(token_id)}", nothing)


# --- telemetry ---------------------------------------------------------------------------


def instance_metrics(
    instance_id: str, name: str | None, since: float | None, step: float | None
) -> Call[MetricsAnswer]:
    params = {"name": name, "since": since, "step": step}
    path = f"{API}/instances/{segment(instance_id)}/metrics"
    return Call("GET", path, model(MetricsAnswer), params=params)


def telemetry_events(
    instance: str | None, since: float | None, kind: str | None, after: str | None, limit: int
) -> Call[Page[TelemetryEvent]]:
    params = {"instance": instance, "since": since, "kind": kind, "after": after, "limit": limit}
    return Call("GET", f"{API}/events", model(Page[TelemetryEvent]), params=params)
