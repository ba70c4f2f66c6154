"""Queries of fleet telemetry: storing an agent's batch once, pruning by age, reading a
metric series and a page of events, and the newest values behind the fleet gauges.

Used by the telemetry routes (:mod:`mien.server.api.telemetry`), the replica's prune task
and ``/metrics``. The arithmetic is in :mod:`mien.server.telemetry`; the newest value per
instance of every metric and machine rule is :mod:`mien.server.store.latest`'s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from mien.protocol.telemetry import TelemetryBatch
from mien.server.store import latest
from mien.server.store.tables import instances
from mien.server.store.tables_telemetry import (
    instance_rule_phases,
    metric_latest,
    metric_rollups,
    metric_samples,
    telemetry_events,
)
from mien.server.store.upsert import insert, newer
from mien.server.telemetry import FLEET_GAUGES, HOUR, MINUTE, STEPS, Agg, Retention, rollup

CHUNK = 2000  # rows per INSERT statement (under SQLite's bound-parameter limit)


async def _lock_instance(session: AsyncSession, instance_id: str) -> None:
    # Two batches of one agent at once on two replicas would both find their samples new
    # and count them twice in the roll-ups: one at a time per instance (PostgreSQL).
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:i))"), {"i": "telemetry:" + instance_id}
        )


async def _known(session: AsyncSession, table: Any, instance_id: str, seqs: list[int]) -> set[int]:
    if not seqs:
        return set()
    rows = await session.execute(
        select(table.c.seq).where(
            table.c.instance_id == instance_id, table.c.seq.between(min(seqs), max(seqs))
        )
    )
    return {int(r[0]) for r in rows}


async def ingest(
    session: AsyncSession, instance_id: str, batch: TelemetryBatch, now: float
) -> tuple[int, int, int]:
    """Store what of ``batch`` is new; returns (samples stored, events stored, duplicates)."""
    await _lock_instance(session, instance_id)
    known = await _known(session, metric_samples, instance_id, [s.seq for s in batch.samples])
    fresh: dict[int, Any] = {}
    for s in batch.samples:
        if s.seq not in known:
            fresh.setdefault(s.seq, s)
    samples = list(fresh.values())
    rows = [
        {"instance_id": instance_id, "seq": s.seq, "ts": s.ts, "name": s.name, "value": s.value}
        for s in samples
    ]
    for start in range(0, len(rows), CHUNK):
        await session.execute(metric_samples.insert(), rows[start : start + CHUNK])
    triples = [(s.name, s.ts, s.value) for s in samples]
    for step in STEPS:
        await _merge_rollups(session, instance_id, step, rollup(triples, step))
    await latest.record_values(session, instance_id, triples)
    await latest.record_rule_phases(session, instance_id, batch)

    known_events = await _known(
        session, telemetry_events, instance_id, [e.seq for e in batch.events]
    )
    events: dict[int, dict[str, Any]] = {}
    for e in batch.events:
        if e.seq not in known_events:
            events.setdefault(
                e.seq,
                {
                    "instance_id": instance_id,
                    "seq": e.seq,
                    "ts": e.ts,
                    "kind": e.kind,
                    "detail": e.detail,
                },
            )
    if batch.dropped_samples or batch.dropped_events:
        # The agent's buffer overflowed while the server was away: say how much was lost.
        events[-1] = {
            "instance_id": instance_id,
            "seq": -time.time_ns() // 1000,
            "ts": now,
            "kind": "telemetry.dropped",
            "detail": {"samples": batch.dropped_samples, "events": batch.dropped_events},
        }
    if events:
        await session.execute(telemetry_events.insert(), list(events.values()))
    stored_events = len([e for e in events.values() if e["seq"] > 0])
    duplicates = len(batch.samples) - len(samples) + len(batch.events) - stored_events
    return len(samples), stored_events, duplicates


async def _merge_rollups(
    session: AsyncSession, instance_id: str, step: int, aggs: dict[tuple[str, float], Agg]
) -> None:
    if not aggs:
        return
    t = metric_rollups
    rows = [
        {
            "instance_id": instance_id,
            "name": name,
            "step": step,
            "bucket": start,
            "count": a.count,
            "sum": a.sum,
            "min": a.min,
            "max": a.max,
            "last": a.last,
            "last_ts": a.last_ts,
        }
        for (name, start), a in aggs.items()
    ]
    stmt = insert(session, t)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.instance_id, t.c.name, t.c.step, t.c.bucket],
        set_={
            "count": t.c.count + new["count"],
            "sum": t.c.sum + new["sum"],
            "min": func.min(t.c.min, new["min"])
            if _sqlite(session)
            else func.least(t.c.min, new["min"]),
            "max": func.max(t.c.max, new["max"])
            if _sqlite(session)
            else func.greatest(t.c.max, new["max"]),
            "last": newer(t.c.last_ts, new["last_ts"], t.c.last, new["last"]),
            "last_ts": newer(t.c.last_ts, new["last_ts"], t.c.last_ts, new["last_ts"]),
        },
    )
    for start in range(0, len(rows), CHUNK // 2):
        await session.execute(stmt, rows[start : start + CHUNK // 2])


def _sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


async def prune(
    session: AsyncSession, now: float, keep: Retention, events: float
) -> dict[str, int]:
    """Delete what is older than its retention; returns rows deleted per kind."""
    done = {}
    for key, stmt in (
        ("raw", delete(metric_samples).where(metric_samples.c.ts < now - keep.raw)),
        (
            "1m",
            delete(metric_rollups).where(
                metric_rollups.c.step == MINUTE, metric_rollups.c.bucket < now - keep.minute
            ),
        ),
        (
            "1h",
            delete(metric_rollups).where(
                metric_rollups.c.step == HOUR, metric_rollups.c.bucket < now - keep.hour
            ),
        ),
        ("events", delete(telemetry_events).where(telemetry_events.c.ts < now - events)),
        ("latest", delete(metric_latest).where(metric_latest.c.ts < now - keep.raw)),
        (
            "rule_phases",
            delete(instance_rule_phases).where(instance_rule_phases.c.ts < now - events),
        ),
    ):
        result: Any = await session.execute(stmt)
        done[key] = int(result.rowcount or 0)
    return done


async def series(
    session: AsyncSession,
    instance_id: str,
    name: str | None,
    since: float,
    until: float,
    source: str,
) -> dict[str, list[tuple[float, Agg]]]:
    """Per metric name, ``(time, aggregate)`` items in time order from ``source``."""
    out: dict[str, list[tuple[float, Agg]]] = {}
    if source == "raw":
        t = metric_samples
        query: Any = select(t.c.name, t.c.ts, t.c.value).where(
            t.c.instance_id == instance_id, t.c.ts >= since, t.c.ts <= until
        )
        if name is not None:
            query = query.where(t.c.name == name)
        for n, ts, v in await session.execute(query.order_by(t.c.name, t.c.ts)):
            out.setdefault(str(n), []).append((float(ts), Agg.of(float(ts), float(v))))
        return out
    r = metric_rollups
    step = MINUTE if source == "1m" else HOUR
    columns = (r.c.name, r.c.bucket, r.c.count, r.c.sum, r.c.min, r.c.max, r.c.last, r.c.last_ts)
    query = select(*columns).where(
        r.c.instance_id == instance_id,
        r.c.step == step,
        r.c.bucket >= since - step,
        r.c.bucket <= until,
    )
    if name is not None:
        query = query.where(r.c.name == name)
    rows: Any = await session.execute(query.order_by(r.c.name, r.c.bucket))
    for n, b, c, s, lo, hi, last, last_ts in rows:
        agg = Agg(int(c), float(s), float(lo), float(hi), float(last), float(last_ts))
        out.setdefault(str(n), []).append((float(b), agg))
    return out


async def events_page(
    session: AsyncSession,
    *,
    instance_id: str | None,
    since: float | None,
    kind: str | None,
    after: tuple[float, str, int] | None,
    limit: int,
) -> list[Any]:
    """Events oldest first (by time, instance, seq), after the cursor ``after``."""
    t = telemetry_events
    query = select(t.c.instance_id, t.c.seq, t.c.ts, t.c.kind, t.c.detail)
    if instance_id is not None:
        query = query.where(t.c.instance_id == instance_id)
    if since is not None:
        query = query.where(t.c.ts >= since)
    if kind is not None:
        # A prefix: "adapt.rule" finds every rule transition.
        query = query.where(or_(t.c.kind == kind, t.c.kind.startswith(kind + ".")))
    if after is not None:
        query = query.where(tuple_(t.c.ts, t.c.instance_id, t.c.seq) > tuple_(*after))
    query = query.order_by(t.c.ts, t.c.instance_id, t.c.seq).limit(limit)
    return list((await session.execute(query)).all())


async def fleet_gauges(
    session: AsyncSession, fresh_after: float
) -> Sequence[tuple[str, str, float, int]]:
    """``(persona, metric, average, instances)`` over instances whose newest value of a
    :data:`FLEET_GAUGES` metric is newer than ``fresh_after``, by applied persona."""
    m, i = metric_latest, instances
    query = (
        select(i.c.applied_persona, m.c.name, func.avg(m.c.value), func.count())
        .select_from(m.join(i, and_(i.c.id == m.c.instance_id, i.c.deleted_at.is_(None))))
        .where(
            m.c.ts >= fresh_after,
            m.c.name.in_(FLEET_GAUGES),
            i.c.applied_persona.is_not(None),
        )
        .group_by(i.c.applied_persona, m.c.name)
    )
    return [(str(p), str(n), float(a), int(c)) for p, n, a, c in await session.execute(query)]


async def fleet_latest(
    session: AsyncSession, fresh_after: float
) -> Sequence[tuple[str, str, float]]:
    """``(instance, metric, value)``: each live instance's newest value of each
    :data:`FLEET_GAUGES` metric, when newer than ``fresh_after`` (the gauges by tag group
    these by the instances' tags, which the fleet cache holds)."""
    m, i = metric_latest, instances
    query = (
        select(m.c.instance_id, m.c.name, m.c.value)
        .select_from(m.join(i, and_(i.c.id == m.c.instance_id, i.c.deleted_at.is_(None))))
        .where(m.c.ts >= fresh_after, m.c.name.in_(FLEET_GAUGES))
    )
    return [(str(iid), str(n), float(v)) for iid, n, v in await session.execute(query)]
