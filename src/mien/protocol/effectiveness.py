"""Wire types of persona effectiveness (``GET /api/v1/personas/{name}/effectiveness``):
per persona version and per rule, its fires, time firing, action outcomes and the metric
it serves before and after its actions. Used by the server's route, the client and
``mien persona effectiveness``; the arithmetic is in :mod:`mien.server.effectiveness`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from mien.protocol.base import WireModel


class ActionCounts(WireModel):
    """Action outcomes: ``applied`` (applied, done, or requested of a provider),
    ``refused`` (beyond trust), ``suppressed`` (a heavier rule won, or within cooldown),
    ``failed`` (failed and given up, or waiting for a retry)."""

    applied: int = 0
    refused: int = 0
    suppressed: int = 0
    failed: int = 0


class MetricEffect(WireModel):
    """The served metric around applied actions. ``before``/``after``: the median of the
    per-action medians in the window before/after each action; ``change``: the median of
    (after − before) over the actions. All three are null with ``insufficient`` set."""

    metric: str | None
    window: float = Field(description="seconds on each side of an action: max(3 × for, 60)")
    measured: int = Field(description="applied actions with samples on both sides")
    before: float | None = None
    after: float | None = None
    change: float | None = None
    insufficient: str | None = None
    points: list[list[float]] = Field(
        default_factory=list,
        description="[time, before median, after median] of each measured action",
    )


class RuleEffect(WireModel):
    rule: str
    for_seconds: float
    fires: int = Field(description="transitions to firing from inactive or pending")
    still_firing: int = Field(description="fires still open at the end of the range")
    firing_seconds: float = Field(description="total time firing (open fires up to `until`)")
    firing_median: float | None = Field(description="median seconds one fire lasted")
    actions: ActionCounts
    metric: MetricEffect
    insufficient: str | None = Field(
        None, description="set (with the reason) under 5 fires: the numbers prove nothing yet"
    )


class VersionEffect(WireModel):
    version: int
    instances: int = Field(description="instances whose events were counted")
    events: int
    rules: list[RuleEffect]


class Effectiveness(WireModel):
    """One persona's effectiveness in ``[since, until]``, per version asked for."""

    persona: str
    since: datetime
    until: datetime
    truncated: bool = Field(
        description="more events than one answer reads: the oldest ones were left out"
    )
    versions: list[VersionEffect]
