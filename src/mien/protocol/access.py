"""Tokens, enrollment, the agent protocol, audit and health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from mien.protocol.base import (
    DesiredSource,
    InstanceId,
    ReportState,
    RequestModel,
    Role,
    Tags,
    WireModel,
)
from mien.protocol.fleet import Activation, HistoryEntry
from mien.protocol.outcomes import SettingOutcome
from mien.protocol.status import MachineStatus

# --- tokens and enrollment -------------------------------------------------------------


class TokenCreate(RequestModel):
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


class TokenInfo(WireModel):
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


class WhoAmI(WireModel):
    token_id: str
    name: str
    role: Role
    instance_id: str | None = None


class EnrollRequest(RequestModel):
    hostname: Annotated[str, StringConstraints(max_length=255)] | None = None
    instance_id: InstanceId | None = Field(
        None, description="the id to register under (e.g. the VM id); default: one is made"
    )
    tags: Tags = Field(default_factory=dict)
    agent_version: Annotated[str, StringConstraints(max_length=64)] | None = None


class Enrollment(WireModel):
    instance_id: str
    token: str = Field(description="the instance's own agent token; store it 0600")
    tags: dict[str, str]


# --- the agent protocol ----------------------------------------------------------------


class PendingCommand(WireModel):
    id: str
    command: str
    args: list[str]
    timeout: float


class DesiredState(WireModel):
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


class AgentReport(RequestModel):
    """The agent's account of one apply (or of what it runs now, after a restart).

    ``persona``, ``version`` and ``hash`` always describe what the machine runs *after*
    this report: while ``applying`` and after ``failed`` that is the previous persona, so
    the server never shows a persona as applied that is not.
    """

    state: ReportState
    activation_id: str | None = Field(None, max_length=64)
    hash: str | None = Field(None, max_length=80)
    persona: str | None = Field(None, max_length=63)
    version: int | None = None
    error: str | None = Field(None, max_length=16384)
    history: list[HistoryEntry] | None = Field(None, max_length=100)
    agent_version: str | None = Field(None, max_length=64)
    settings: list[SettingOutcome] | None = Field(
        None,
        max_length=2000,
        description="with applied: what became of each setting of the persona now running",
    )
    instance: InstanceId | None = Field(
        None, description="the instance reported on; must be the token's own (else 403)"
    )
    status: MachineStatus | None = Field(
        None, description="customizations, drift, rule states and recent actions (bounded)"
    )


class ReportAck(WireModel):
    recorded: bool
    activation: Activation | None = None


class CommandResult(RequestModel):
    exit_status: int = Field(ge=-255, le=255)
    stdout: str = ""
    stderr: str = ""
    refused: bool = Field(False, description="the routing table refused the command (126)")
    error: str | None = Field(None, max_length=4096)


class Heartbeat(RequestModel):
    agent_version: str | None = Field(None, max_length=64)


# --- audit and health ------------------------------------------------------------------


class AuditRecord(WireModel):
    seq: int
    at: str
    actor: str
    action: str
    instance_id: str | None = None
    persona: str | None = None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditVerification(WireModel):
    ok: bool
    records: int
    head: str | None = None
    first_bad: int | None = None
    reason: str | None = None


class Health(WireModel):
    status: Literal["ok", "degraded"]
    version: str
    replica: str
    database: str
    waiting_agents: int
