"""Wire types of fleet telemetry: what an agent sends (``POST /api/v1/agent/telemetry``, a
gzip-compressed :class:`TelemetryBatch`) and what operators read back
(``GET /api/v1/instances/{id}/metrics``, ``GET /api/v1/events``).

Every sample and event carries its sequence number in the agent's on-disk queue: the agent
sends until the server acknowledged, so the server may see one twice and keeps it once,
by (instance, sequence). Used by the agent's uploader, the server's telemetry routes and
``mien instance metrics|events``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mien.protocol.base import InstanceId, RequestModel, WireModel

MAX_SAMPLES = 5000
"""Most samples in one batch (the agent sends fewer; the server refuses more with 422)."""
MAX_EVENTS = 1000
"""Most events in one batch."""

Source = Literal["raw", "1m", "1h"]


class SampleIn(RequestModel):
    """One metric value read at ``ts`` (seconds since the epoch, the agent's clock)."""

    seq: int = Field(ge=1, le=2**62)
    ts: float = Field(ge=0, le=1e11)
    name: str = Field(min_length=1, max_length=200)
    value: float = Field(allow_inf_nan=False)


class EventIn(RequestModel):
    """One adaptation event: a rule transition, an action, a refusal, a fetch."""

    seq: int = Field(ge=1, le=2**62)
    ts: float = Field(ge=0, le=1e11)
    kind: str = Field(min_length=1, max_length=100, description="e.g. adapt.rule.firing")
    detail: dict[str, Any] = Field(default_factory=dict)


class TelemetryBatch(RequestModel):
    """What an agent sends; ``instance`` (optional) must be the token's own."""

    instance: InstanceId | None = None
    samples: list[SampleIn] = Field(default_factory=list, max_length=MAX_SAMPLES)
    events: list[EventIn] = Field(default_factory=list, max_length=MAX_EVENTS)
    dropped_samples: int = Field(
        0, ge=0, description="samples the agent's full buffer dropped since its last batch"
    )
    dropped_events: int = Field(0, ge=0, description="events dropped likewise")


class TelemetryAck(WireModel):
    """Stored: new samples and events; ``duplicates``: already had (sent twice)."""

    samples: int
    events: int
    duplicates: int


class MetricSeries(WireModel):
    """One metric over time. ``points`` are ``[t, avg, min, max]`` with ``t`` the start of
    each step (seconds since the epoch); ``min``/``max``/``last`` are over the whole range."""

    name: str
    points: list[list[float]]
    min: float | None = None
    max: float | None = None
    last: float | None = None


class MetricsAnswer(WireModel):
    instance: str
    since: float
    until: float
    step: float = Field(description="seconds per point (0: every raw sample)")
    source: Source = Field(description="raw samples or the 1-minute or 1-hour roll-ups")
    series: list[MetricSeries]


class TelemetryEvent(WireModel):
    instance: str
    seq: int
    at: datetime
    kind: str
    detail: dict[str, Any]
