"""The wire format of the mien REST API (``/api/v1``): every request and response body.

This module is the API contract. The server declares its routes with these types (so the
OpenAPI document at ``/api/v1/openapi.json`` is generated from them) and the client parses
responses into them, so the two cannot drift apart. It sits in :mod:`mien.client` because the
layers run ``server → client``: the server may import the client's types, never the reverse.

Only pydantic is imported here; nothing that does I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""Persona and binding names (the persona language's own rule)."""
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
"""Instance ids: a cloud VM id, a machine id, a host name or the server's ``i-…`` default."""
TAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"
TAG_VALUE_PATTERN = r"^[A-Za-z0-9._:/@+-]{0,128}$"
COMMAND_PATTERN = r"^[^\s/\x00'\"`$\\]{1,255}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]
TagKey = Annotated[str, StringConstraints(pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(pattern=TAG_VALUE_PATTERN)]
Tags = dict[TagKey, TagValue]

Role = Literal["admin", "operator", "viewer", "user", "agent"]
ActivationStatus = Literal["pending", "applying", "applied", "failed", "superseded", "cancelled"]
ReportState = Literal["applying", "applied", "failed"]
DesiredSource = Literal["activation", "binding", "default", "none"]
CommandStatus = Literal["pending", "sent", "done", "expired"]


class _Wire(BaseModel):
    # Unknown fields are ignored so that an older client keeps working against a newer
    # server that added fields (the API only ever adds).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Request(BaseModel):
    # Requests are strict: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- errors ----------------------------------------------------------------------------


class Problem(_Wire):
    """One thing wrong with a request, in the persona language's own terms."""

    path: str = Field(description="field path, e.g. os_settings.theme or query.wait")
    message: str
    source: str = ""
    line: int = 0
    column: int = 0
    severity: Literal["error", "warning"] = "error"
    text: str = Field("", description="the whole problem as FILE:LINE:COL: field.path: message")


class ErrorBody(_Wire):
    """Every error response: a sentence for people, a code for programs, and the problems."""

    detail: str
    code: str
    problems: list[Problem] = Field(default_factory=list)


# --- personas --------------------------------------------------------------------------


class PersonaVersion(_Wire):
    """One immutable version of a persona, with its canonical document."""

    name: str
    version: int
    content_hash: str
    etag: str = Field(description="send back in If-Match to update this version")
    created_at: datetime
    created_by: str
    default_persona: bool = False
    description: str | None = None
    extends: str | None = None
    latest: bool = True
    deleted: bool = False
    document: dict[str, Any]
    warnings: list[Problem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what else this change did")


class PersonaSummary(_Wire):
    name: str
    latest_version: int
    content_hash: str
    etag: str
    default_persona: bool
    description: str | None = None
    extends: str | None = None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class VersionSummary(_Wire):
    name: str
    version: int
    content_hash: str
    created_at: datetime
    created_by: str


class DiffChange(_Wire):
    path: str
    op: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class PersonaDiff(_Wire):
    name: str
    from_version: int
    to_version: int
    from_hash: str
    to_hash: str
    changes: list[DiffChange]
    unified: str = Field(description="unified diff of the canonical YAML")


# --- bindings --------------------------------------------------------------------------


SelectorValue = TagValue | Literal["*"] | list[TagValue]


class BindingIn(_Request):
    """A tag selector choosing a persona, with an optional override and a priority.

    ``selector`` maps tag keys to a value, a list of accepted values, or ``"*"`` (the tag
    is present); every key must match. An empty selector matches every instance.
    """

    name: Name
    selector: dict[TagKey, SelectorValue] = Field(default_factory=dict)
    persona: Name
    override: dict[str, Any] | None = Field(
        None, description="a persona overlay composed over the persona (null deletes a key)"
    )
    priority: int = Field(0, ge=-1000, le=1000, description="higher wins")
    description: str | None = Field(None, max_length=1000)


class Binding(_Wire):
    name: str
    selector: dict[str, SelectorValue]
    persona: str
    override: dict[str, Any] | None = None
    priority: int
    description: str | None = None
    version: int
    etag: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


# --- instances -------------------------------------------------------------------------


class DesiredSummary(_Wire):
    """What the server wants the instance to run, and why."""

    source: DesiredSource
    persona: str | None = None
    version: int | None = None
    hash: str | None = None
    activation_id: str | None = None
    bindings: list[str] = Field(default_factory=list)
    error: str | None = None


class AppliedState(_Wire):
    """What the instance's agent last reported (never inferred by the server)."""

    state: ReportState | None = None
    persona: str | None = None
    version: int | None = None
    hash: str | None = None
    activation_id: str | None = None
    error: str | None = None
    at: datetime | None = None


class Instance(_Wire):
    id: str
    hostname: str | None = None
    tags: dict[str, str]
    enrolled_at: datetime
    enrolled_by: str
    last_seen: datetime | None = None
    connected: bool = False
    agent_version: str | None = None
    desired: DesiredSummary
    applied: AppliedState
    in_sync: bool
    deleted_at: datetime | None = None


class TagPatch(_Request):
    """Merge into the instance's tags: a value sets a tag, ``null`` removes it."""

    tags: dict[TagKey, TagValue | None]


class HistoryEntry(_Wire):
    """One entry of the agent's persona history, as the agent reported it."""

    model_config = ConfigDict(extra="allow")
    at: datetime | None = None
    persona: str | None = None
    hash: str | None = None
    action: str | None = None


class Activation(_Wire):
    """An explicit request to run a persona on an instance, and how it went."""

    id: str
    instance_id: str
    persona: str
    version: int
    desired_hash: str | None = None
    status: ActivationStatus
    error: str | None = None
    applied_hash: str | None = None
    created_at: datetime
    created_by: str
    updated_at: datetime


class ActivePersona(_Wire):
    """Desired and applied side by side: the server never claims one as the other."""

    instance_id: str
    desired: DesiredSummary
    applied: AppliedState
    in_sync: bool
    activation: Activation | None = None


class BindingMatch(_Wire):
    name: str
    selector: dict[str, SelectorValue]
    persona: str
    priority: int
    matched: bool
    used: bool
    reason: str


class LayerInfo(_Wire):
    kind: str
    label: str
    persona: str | None = None
    version: int | None = None


class KeyOrigin(_Wire):
    layer: str
    value: Any = None
    deleted: bool = False


class Explain(_Wire):
    """Why the instance's effective persona is what it is."""

    decision: str = Field(description="one sentence: which source chose which persona")
    activation: Activation | None = None
    bindings: list[BindingMatch] = Field(default_factory=list)
    default_persona: str | None = None
    layers: list[LayerInfo] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="overrides that could not apply")
    keys: dict[str, list[KeyOrigin]] = Field(default_factory=dict)


class EffectivePersona(_Wire):
    instance_id: str
    desired: DesiredSummary
    document: dict[str, Any] | None = None
    explain: Explain


class FleetSummary(_Wire):
    """Counts over every instance: how far a rollout has got."""

    instances: int
    connected: int
    in_sync: int
    applied: int
    applying: int
    failed: int
    never_reported: int
    by_persona: dict[str, int]


# --- remote commands -------------------------------------------------------------------


class CommandRequest(_Request):
    """Run ``command args…`` on the instance through its active persona's routing table."""

    command: Annotated[str, StringConstraints(pattern=COMMAND_PATTERN)]
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list, max_length=256
    )
    timeout: float = Field(60.0, gt=0, le=3600, description="seconds the command may run")


class CommandRecord(_Wire):
    id: str
    instance_id: str
    command: str
    args: list[str]
    timeout: float
    status: CommandStatus
    exit_status: int | None = None
    refused: bool = False
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error: str | None = None
    created_at: datetime
    created_by: str
    sent_at: datetime | None = None
    finished_at: datetime | None = None


# --- tokens and enrollment -------------------------------------------------------------


class TokenCreate(_Request):
    """An API token (a role) or an enrollment token (a use count, an expiry, tags)."""

    kind: Literal["api", "enroll"] = "api"
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\s:]+$")]
    role: Literal["admin", "operator", "viewer", "user"] | None = Field(
        None, description="api tokens: the role (agents get theirs by enrolling)"
    )
    uses: int | None = Field(None, ge=1, le=1_000_000, description="enroll tokens: default 1")
    expires_in: float | None = Field(None, gt=0, le=10 * 365 * 86400, description="seconds")
    tags: Tags = Field(
        default_factory=dict, description="enroll tokens: tags every new instance gets"
    )


class TokenInfo(_Wire):
    id: str
    name: str
    kind: Literal["api", "enroll", "agent"]
    role: Role | None = None
    instance_id: str | None = None
    uses_left: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class TokenCreated(TokenInfo):
    token: str = Field(description="the secret; shown once, stored only hashed")


class WhoAmI(_Wire):
    token_id: str
    name: str
    role: Role
    instance_id: str | None = None


class EnrollRequest(_Request):
    hostname: Annotated[str, StringConstraints(max_length=255)] | None = None
    instance_id: InstanceId | None = Field(
        None, description="the id to register under (e.g. the VM id); default: one is made"
    )
    tags: Tags = Field(default_factory=dict)
    agent_version: Annotated[str, StringConstraints(max_length=64)] | None = None


class Enrollment(_Wire):
    instance_id: str
    token: str = Field(description="the instance's own agent token; store it 0600")
    tags: dict[str, str]


# --- the agent protocol ----------------------------------------------------------------


class PendingCommand(_Wire):
    id: str
    command: str
    args: list[str]
    timeout: float


class DesiredState(_Wire):
    """The long-poll answer: what this instance should run now.

    ``state`` is opaque: send it back as ``known`` on the next poll. ``document`` is the
    effective canonical persona (``null`` when nothing is desired: keep what you have).
    """

    state: str
    source: DesiredSource
    persona: str | None = None
    version: int | None = None
    hash: str | None = None
    activation_id: str | None = None
    bindings: list[str] = Field(default_factory=list)
    document: dict[str, Any] | None = None
    commands: list[PendingCommand] = Field(default_factory=list)


class AgentReport(_Request):
    """The agent's account of one apply (or of what it runs now, after a restart)."""

    state: ReportState
    activation_id: str | None = Field(None, max_length=64)
    hash: str | None = Field(None, max_length=80)
    persona: str | None = Field(None, max_length=63)
    version: int | None = None
    error: str | None = Field(None, max_length=16384)
    history: list[HistoryEntry] | None = Field(None, max_length=100)
    agent_version: str | None = Field(None, max_length=64)


class ReportAck(_Wire):
    recorded: bool
    activation: Activation | None = None


class CommandResult(_Request):
    exit_status: int = Field(ge=-255, le=255)
    stdout: str = ""
    stderr: str = ""
    refused: bool = Field(False, description="the routing table refused the command (126)")
    error: str | None = Field(None, max_length=4096)


class Heartbeat(_Request):
    agent_version: str | None = Field(None, max_length=64)


# --- audit and health ------------------------------------------------------------------


class AuditRecord(_Wire):
    seq: int
    at: str
    actor: str
    action: str
    instance_id: str | None = None
    persona: str | None = None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditVerification(_Wire):
    ok: bool
    records: int
    head: str | None = None
    first_bad: int | None = None
    reason: str | None = None


class Health(_Wire):
    status: Literal["ok", "degraded"]
    version: str
    replica: str
    database: str
    waiting_agents: int


T = TypeVar("T")


class Page(_Wire, Generic[T]):
    """One page of a collection; pass ``next`` back as ``after`` for the following one."""

    items: list[T]
    next: str | None = None
