"""Wire types of the orchestrator: fleet rules as the API shows them
(``/api/v1/fleet-rules``) and which replica evaluates them (``/api/v1/orchestrator``).

Used by the fleet-rule routes and ``mien fleet-rule``. A fleet rule is pushed as its
document (YAML or JSON, see docs/orchestrator.md), not as one of these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from mien.protocol.base import WireModel


class FleetRuleAction(WireModel):
    """One journalled action: ``key`` is rule@fired_at#index (``/undo`` when reverted);
    ``status``: done, failed, pending (a provider request not yet queued), submitted."""

    key: str
    kind: str
    at: float
    status: str
    detail: dict[str, Any]


class FleetRule(WireModel):
    name: str
    version: int
    selector: dict[str, Any]
    when: str
    phase: str = Field(description="inactive, pending, firing or resolving")
    since: float | None = Field(None, description="when the phase began (epoch seconds)")
    note: str = Field("", description="where the rule stands and why")
    values: dict[str, Any] = Field(
        default_factory=dict, description="the aggregates its conditions read, last evaluation"
    )
    created_at: datetime
    created_by: str


class FleetRuleDetail(FleetRule):
    document: dict[str, Any]
    source: str
    actions: list[FleetRuleAction] = Field(default_factory=list, description="newest first")


class OrchestratorStatus(WireModel):
    """``leader``: the replica holding the lease (None: nobody yet); ``replica``: the one
    answering; ``expires_at``: when the lease lapses unless renewed (epoch seconds)."""

    leader: str | None
    replica: str
    expires_at: float | None
    acquired_at: float | None
    interval: float
    lease_ttl: float
