"""The newest value of every metric, and the newest phase of every machine rule, per
instance: written as an agent's telemetry batch is stored, read whole by the orchestrator.

Aggregating over a fleet then reads one small row per instance and metric (or rule),
whatever the raw and rolled-up history holds. Bounded: at most :data:`MAX_LATEST` names of
each per instance. Used by :mod:`mien.server.store.telemetry` (ingest, and the fleet
gauges) and :mod:`mien.server.orchestrator.aggregates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mien.protocol.telemetry import TelemetryBatch
from mien.server.store.tables import instance_rule_phases, metric_latest
from mien.server.store.upsert import insert, newer

MAX_LATEST = 256
"""Most metric names (and, separately, machine-rule names) whose newest value is kept per
instance; an agent inventing names beyond it does not grow the table."""
RULE_EVENT = "adapt.rule."


async def record_values(
    session: AsyncSession, instance_id: str, triples: list[tuple[str, float, float]]
) -> None:
    """Keep each metric's newest value of the instance (new names up to MAX_LATEST)."""
    newest: dict[str, tuple[float, float]] = {}
    for name, ts, value in triples:
        if name not in newest or ts >= newest[name][0]:
            newest[name] = (ts, value)
    if not newest:
        return
    t = metric_latest
    await _bound(session, t, t.c.name, instance_id, newest)
    stmt = insert(session, t)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.instance_id, t.c.name],
        set_={
            "value": newer(t.c.ts, new["ts"], t.c.value, new["value"]),
            "ts": newer(t.c.ts, new["ts"], t.c.ts, new["ts"]),
        },
    )
    await session.execute(
        stmt,
        [
            {"instance_id": instance_id, "name": n, "ts": ts, "value": v}
            for n, (ts, v) in newest.items()
        ],
    )


async def _bound(
    session: AsyncSession, table: Any, column: Any, instance_id: str, newest: dict[str, Any]
) -> None:
    """Drop from ``newest`` the names that would take the instance past MAX_LATEST."""
    existing = {
        str(r[0])
        for r in await session.execute(select(column).where(table.c.instance_id == instance_id))
    }
    room = MAX_LATEST - len(existing)
    for name in [n for n in newest if n not in existing]:
        if room > 0:
            room -= 1
        else:
            del newest[name]


async def record_rule_phases(
    session: AsyncSession, instance_id: str, batch: TelemetryBatch
) -> None:
    """Keep each machine rule's newest phase on the instance, from its adapt.rule.* events."""
    newest: dict[str, tuple[float, str]] = {}
    for e in batch.events:
        rule = e.detail.get("rule")
        if not e.kind.startswith(RULE_EVENT) or not isinstance(rule, str) or len(rule) > 200:
            continue
        phase = e.kind[len(RULE_EVENT) :][:20]
        if rule not in newest or e.ts >= newest[rule][0]:
            newest[rule] = (e.ts, phase)
    if not newest:
        return
    t = instance_rule_phases
    await _bound(session, t, t.c.rule, instance_id, newest)
    if not newest:
        return
    stmt = insert(session, t)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.instance_id, t.c.rule],
        set_={
            "phase": newer(t.c.ts, new["ts"], t.c.phase, new["phase"]),
            "ts": newer(t.c.ts, new["ts"], t.c.ts, new["ts"]),
        },
    )
    await session.execute(
        stmt,
        [
            {"instance_id": instance_id, "rule": r, "ts": ts, "phase": phase}
            for r, (ts, phase) in newest.items()
        ],
    )


async def latest_values(
    session: AsyncSession, names: Sequence[str], fresh_after: float
) -> dict[str, dict[str, float]]:
    """Metric name → instance id → its newest value, for values newer than
    ``fresh_after`` (the orchestrator's aggregates)."""
    out: dict[str, dict[str, float]] = {n: {} for n in names}
    if not names:
        return out
    m = metric_latest
    query = select(m.c.name, m.c.instance_id, m.c.value).where(
        m.c.name.in_(list(names)), m.c.ts >= fresh_after
    )
    for name, instance_id, value in (await session.execute(query)).all():
        out[name][instance_id] = value
    return out


async def firing_rules(
    session: AsyncSession, rules: Sequence[str], fresh_after: float
) -> dict[str, set[str]]:
    """Machine rule name → the instances whose newest event about it says it is firing
    (or resolving), not older than ``fresh_after``."""
    out: dict[str, set[str]] = {r: set() for r in rules}
    if not rules:
        return out
    t = instance_rule_phases
    query = select(t.c.rule, t.c.instance_id).where(
        t.c.rule.in_(list(rules)),
        t.c.phase.in_(("firing", "resolving")),
        t.c.ts >= fresh_after,
    )
    for rule, instance_id in await session.execute(query):
        out[rule].add(instance_id)
    return out
