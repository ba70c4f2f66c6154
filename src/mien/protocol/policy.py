"""The fleet policy on the wire: its versions (``/api/v1/policy``), the trust levels it
lowered in an instance's desired state, and why an instance is out of policy.

Used by the server's policy and instance routes, the client and ``mien policy`` /
``mien instance``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mien.protocol.base import Problem, WireModel


class PolicyVersion(WireModel):
    """One stored version of the fleet policy (``version`` 0: no policy was ever pushed)."""

    version: int
    content_hash: str | None = None
    etag: str
    created_at: datetime | None = None
    created_by: str | None = None
    latest: bool = True
    document: dict[str, Any] | None = None
    warnings: list[Problem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class PolicyVersionSummary(WireModel):
    version: int
    content_hash: str
    created_at: datetime
    created_by: str


class CappedTrust(WireModel):
    """A trust level of the persona that the fleet policy lowered on this instance."""

    risk: str
    granted: str = Field(description="what the persona grants")
    allowed: str = Field(description="what the fleet policy allows here (what the agent gets)")
    entry: str = Field(description="the policy entry that set the cap, e.g. trust[0] (env=prod)")


NoncomplianceKind = Literal["locked_changed", "action_refused", "command_refused"]


class Noncompliance(WireModel):
    """One reason an instance is out of policy."""

    kind: NoncomplianceKind
    count: int = 1
    last: datetime | None = None
    detail: str
