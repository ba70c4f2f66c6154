"""Instances, what they should run and run, activations, explanations, remote commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints

from mien.protocol.base import (
    COMMAND_PATTERN,
    ActivationStatus,
    CommandStatus,
    DesiredSource,
    ReportState,
    RequestModel,
    TagKey,
    TagValue,
    WireModel,
)
from mien.protocol.outcomes import SettingOutcome
from mien.protocol.personas import SelectorValue
from mien.protocol.policy import CappedTrust, Noncompliance
from mien.protocol.status import Effect


def _unknown() -> Effect:
    return Effect(state="unknown")


IN_SYNC = (
    "the agent applied the desired content (what rollouts wait for); whether all of it is "
    'in effect is `effect`: the CLI and dashboard say "in sync" only when both hold'
)

# --- instances -------------------------------------------------------------------------


class DesiredSummary(WireModel):
    """What the server wants the instance to run, and why."""

    source: DesiredSource
    persona: str | None = None
    version: int | None = None
    hash: str | None = None
    activation_id: str | None = None
    bindings: list[str] = Field(default_factory=list)
    added: list[str] = Field(
        default_factory=list,
        description="add-bindings whose personas are layered on top, in composition order",
    )
    error: str | None = None
    policy_version: int | None = Field(None, description="the fleet policy version applied")
    capped: list[CappedTrust] = Field(
        default_factory=list, description="trust levels the fleet policy lowered"
    )


class AppliedState(WireModel):
    """What the instance's agent last reported (never inferred by the server)."""

    state: ReportState | None = None
    persona: str | None = None
    version: int | None = None
    hash: str | None = None
    activation_id: str | None = None
    error: str | None = None
    at: datetime | None = None
    settings: list[SettingOutcome] = Field(
        default_factory=list,
        description="what became of each setting (applied, pending, stored, failed) and why",
    )


class Instance(WireModel):
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
    in_sync: bool = Field(description=IN_SYNC)
    effect: Effect = Field(
        default_factory=_unknown, description="how much of the running persona is in effect"
    )
    deleted_at: datetime | None = None
    noncompliance: list[Noncompliance] = Field(
        default_factory=list,
        description="why the instance is out of fleet policy (empty: compliant)",
    )


class TagPatch(RequestModel):
    """Merge into the instance's tags: a value sets a tag, ``null`` removes it."""

    tags: dict[TagKey, TagValue | None]


class HistoryEntry(WireModel):
    """One entry of the agent's persona history, as the agent reported it."""

    model_config = ConfigDict(extra="allow")
    at: datetime | None = None
    persona: str | None = None
    hash: str | None = None
    action: str | None = None


class Activation(WireModel):
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


class ActivePersona(WireModel):
    """Desired and applied side by side: the server never claims one as the other."""

    instance_id: str
    desired: DesiredSummary
    applied: AppliedState
    in_sync: bool = Field(description=IN_SYNC)
    effect: Effect = Field(default_factory=_unknown)
    activation: Activation | None = None


class BindingMatch(WireModel):
    name: str
    selector: dict[str, SelectorValue]
    persona: str
    priority: int
    mode: str = "replace"
    matched: bool
    used: bool
    reason: str


class LayerInfo(WireModel):
    kind: str = Field(
        description="persona (the chosen one and its extends chain), binding (an "
        "override), addition (a persona an add-binding layers on top)"
    )
    label: str
    persona: str | None = None
    version: int | None = None
    binding: str | None = Field(None, description="the binding that brought this layer")


class KeyOrigin(WireModel):
    layer: str
    value: Any = None
    deleted: bool = False


class Explain(WireModel):
    """Why the instance's effective persona is what it is."""

    decision: str = Field(description="one sentence: which source chose which persona")
    activation: Activation | None = None
    bindings: list[BindingMatch] = Field(default_factory=list)
    default_persona: str | None = None
    layers: list[LayerInfo] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="overrides that could not apply")
    keys: dict[str, list[KeyOrigin]] = Field(default_factory=dict)


class EffectivePersona(WireModel):
    instance_id: str
    desired: DesiredSummary
    document: dict[str, Any] | None = None
    explain: Explain


class FleetSummary(WireModel):
    """Counts over every instance: how far a rollout has got."""

    instances: int
    connected: int
    in_sync: int = Field(description="applied the desired content (some maybe partly in effect)")
    partly_in_effect: int = Field(
        0, description="of those in sync, how many have settings not in effect"
    )
    applied: int
    applying: int
    failed: int
    never_reported: int
    by_persona: dict[str, int]


# --- remote commands -------------------------------------------------------------------


class CommandRequest(RequestModel):
    """Run ``command args…`` on the instance through its active persona's routing table."""

    command: Annotated[str, StringConstraints(pattern=COMMAND_PATTERN)]
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list, max_length=256
    )
    timeout: float = Field(60.0, gt=0, le=3600, description="seconds the command may run")


class CommandRecord(WireModel):
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
