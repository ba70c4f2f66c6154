"""Reads behind persona effectiveness: one persona's adaptation events in a time range,
and the samples of one metric around an action. Both are bounded: at most
:data:`MAX_EVENTS` events (the newest) and :data:`MAX_WINDOW_SAMPLES` values per window.

Used by :mod:`mien.server.api.effectiveness`; the arithmetic is in
:mod:`mien.server.effectiveness`.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Text, and_, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.effectiveness import Event
from mien.server.store.tables_telemetry import metric_rollups, metric_samples, telemetry_events
from mien.server.telemetry import MINUTE

MAX_EVENTS = 50_000
"""Most events read for one answer (the newest in the range)."""
MAX_WINDOW_SAMPLES = 5000
"""Most values read for one side of one action."""
KINDS = ("adapt.rule.", "adapt.action.")


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def persona_events(
    session: AsyncSession, persona: str, since: float, until: float, limit: int = MAX_EVENTS
) -> tuple[list[Event], bool]:
    """``persona``'s rule transitions and action outcomes in ``[since, until]``, oldest
    first, and whether more than ``limit`` matched (the oldest were left out)."""
    t = telemetry_events
    # The detail is stored as compact JSON text in its key order: the LIKE narrows the
    # rows in the database, and the exact comparison below decides.
    named = f'%"persona":"{_like(persona)}"%'
    query = (
        select(t.c.instance_id, t.c.ts, t.c.kind, t.c.detail)
        .where(
            t.c.ts >= since,
            t.c.ts <= until,
            or_(*(t.c.kind.startswith(k) for k in KINDS)),
            type_coerce(t.c.detail, Text).like(named, escape="\\"),
        )
        .order_by(t.c.ts.desc(), t.c.instance_id, t.c.seq.desc())
        .limit(limit + 1)
    )
    rows: Any = (await session.execute(query)).all()
    more = len(rows) > limit
    out = [
        Event(str(i), float(ts), str(kind), detail)
        for i, ts, kind, detail in rows[:limit]
        if isinstance(detail, dict) and detail.get("persona") == persona
    ]
    out.reverse()
    return out, more


async def window_values(
    session: AsyncSession,
    instance_id: str,
    metric: str,
    start: float,
    end: float,
    *,
    side: Literal["before", "after"],
) -> list[float]:
    """The values of ``metric`` on ``instance_id`` in the window ``[start, end)`` before an
    action (``side="before"``) or ``(start, end]`` after it: the raw samples, or the
    averages of the whole 1-minute buckets in the window where the raw samples were pruned
    or are more than :data:`MAX_WINDOW_SAMPLES` (a long ``for`` at a short interval)."""
    s = metric_samples
    inside = (
        and_(s.c.ts >= start, s.c.ts < end)
        if side == "before"
        else and_(s.c.ts > start, s.c.ts <= end)
    )
    raw = await session.execute(
        select(s.c.value)
        .where(s.c.instance_id == instance_id, s.c.name == metric, inside)
        .order_by(s.c.ts)
        .limit(MAX_WINDOW_SAMPLES + 1)
    )
    values = [float(v) for (v,) in raw]
    if 0 < len(values) <= MAX_WINDOW_SAMPLES:
        return values
    r = metric_rollups
    buckets = await session.execute(
        select(r.c.sum, r.c.count)
        .where(
            r.c.instance_id == instance_id,
            r.c.name == metric,
            r.c.step == MINUTE,
            r.c.bucket >= start,
            r.c.bucket + MINUTE <= end,
        )
        .order_by(r.c.bucket)
        .limit(MAX_WINDOW_SAMPLES)
    )
    return [float(total) / int(n) for total, n in buckets if n]
