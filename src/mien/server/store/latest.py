"""The newest value of every metric, and the newest phase of every machine rule, per
instance: written as an agent's telemetry batch is stored, read whole by the orchestrator.

Aggregating over a fleet then reads one small row per instance and metric (or rule),
whatever the raw and rolled-up history holds. Bounded: at most :data:`MAX_LATEST` names of
each per instance. Used by :mod:`mien.server.store.telemetry` (ingest, and the fleet
gauges) and :mod:`mien.server.orchestrator.newest`.

Every write stamps its rows with ``txn``, a number that grows in commit order as far as a
reader can tell, so a reader keeping a copy reads only what changed: it takes
:func:`horizon` *before* reading, and next time reads the rows whose ``txn`` is not below
it (:func:`changed_values`, :func:`changed_phases`). On PostgreSQL ``txn`` is the writing
transaction's id and the horizon the oldest transaction still running in the reader's
snapshot (every id below it has committed or rolled back); rows of a transaction running
then carry an id at or above it and are read next time, whichever replica wrote them. On
SQLite, where writers take turns, ``txn`` comes from a counter in ``server_meta`` that the
writer increments in its own transaction, and the horizon is one past the counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mien.protocol.telemetry import TelemetryBatch
from mien.server.store.tables import server_meta
from mien.server.store.tables_telemetry import instance_rule_phases, metric_latest
from mien.server.store.upsert import insert, newer

MAX_LATEST = 256
"""Most metric names (and, separately, machine-rule names) whose newest value is kept per
instance; an agent inventing names beyond it does not grow the table."""
RULE_EVENT = "adapt.rule."
COUNTER = "latest.txn"
"""The ``server_meta`` key of SQLite's change counter."""
PG_TXN = "pg_current_xact_id()::text::bigint"


async def _txn(session: AsyncSession) -> Any:
    """What this write stamps its rows with (see the module's docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        return literal_column(PG_TXN)
    stmt = insert(session, server_meta).values(key=COUNTER, value="1")
    stmt = stmt.on_conflict_do_update(
        index_elements=[server_meta.c.key],
        set_={"value": text("CAST(CAST(server_meta.value AS INTEGER) + 1 AS TEXT)")},
    ).returning(server_meta.c.value)
    return int((await session.execute(stmt)).scalar_one())


async def horizon(session: AsyncSession) -> int:
    """Every row changed by a transaction numbered below this is visible to reads made
    after this call; take it before reading the changes."""
    if session.get_bind().dialect.name == "postgresql":
        xmin = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        return int((await session.execute(text(f"SELECT {xmin}"))).scalar_one())
    got = await session.scalar(select(server_meta.c.value).where(server_meta.c.key == COUNTER))
    return int(got or 0) + 1


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
    stmt = insert(session, t).values(txn=await _txn(session))
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.instance_id, t.c.name],
        set_={
            "value": newer(t.c.ts, new["ts"], t.c.value, new["value"]),
            "ts": newer(t.c.ts, new["ts"], t.c.ts, new["ts"]),
            "txn": new["txn"],
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
    stmt = insert(session, t).values(txn=await _txn(session))
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.instance_id, t.c.rule],
        set_={
            "phase": newer(t.c.ts, new["ts"], t.c.phase, new["phase"]),
            "ts": newer(t.c.ts, new["ts"], t.c.ts, new["ts"]),
            "txn": new["txn"],
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


async def changed_values(
    session: AsyncSession, names: Sequence[str], since: int | None
) -> Sequence[Any]:
    """(name, instance id, ts, value) of the named metrics' rows changed by transactions
    numbered ``since`` or later (a :func:`horizon`); every row when ``since`` is None."""
    if not names:
        return []
    m = metric_latest
    query = select(m.c.name, m.c.instance_id, m.c.ts, m.c.value).where(m.c.name.in_(list(names)))
    if since is not None:
        query = query.where(m.c.txn >= since)
    return (await session.execute(query)).all()


async def changed_phases(
    session: AsyncSession, rules: Sequence[str], since: int | None
) -> Sequence[Any]:
    """(rule, instance id, ts, phase) of the named machine rules' rows changed since, as
    :func:`changed_values`."""
    if not rules:
        return []
    t = instance_rule_phases
    query = select(t.c.rule, t.c.instance_id, t.c.ts, t.c.phase).where(t.c.rule.in_(list(rules)))
    if since is not None:
        query = query.where(t.c.txn >= since)
    return (await session.execute(query)).all()
