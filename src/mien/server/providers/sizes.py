"""Resizing an instance whose persona needs another size: for each instance a declared
provider serves, compare the ``resource_requirements`` of its effective persona with its
size (the newest of what its agent reports — the ``cpu_count`` and ``memory_total_mib``
metrics — and what a provider answered) and submit a resize when they differ, once per
persona version and target. Run periodically by the replica; the request then goes through
the same gate and queue as any other."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.providers.base import ProviderRequest
from mien.server.providers.intake import differs, provider_for, size_request, wanted_size
from mien.server.providers.queue import ProviderQueue
from mien.server.store import providers as q
from mien.server.store.tables_telemetry import metric_latest

AGENT_METRICS = {"cpu_count": "cpus", "memory_total_mib": "memory_mib"}


async def known_sizes(s: AsyncSession, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``cpus``/``memory_mib`` of each instance as last known, each from whichever source is
    newer: the newest value its agent reported, or the newest size a provider answered.
    A few queries per :data:`mien.server.store.providers.CHUNK` instances, whatever the
    fleet's size."""
    seen: dict[str, dict[str, tuple[float, Any]]] = {}
    t = metric_latest
    for start in range(0, len(instance_ids), q.CHUNK):
        chunk = instance_ids[start : start + q.CHUNK]
        rows = await s.execute(
            select(t.c.instance_id, t.c.name, t.c.ts, t.c.value).where(
                t.c.instance_id.in_(chunk), t.c.name.in_(list(AGENT_METRICS))
            )
        )
        for instance_id, name, ts, value in rows:
            seen.setdefault(instance_id, {})[AGENT_METRICS[name]] = (float(ts), int(value))
        for instance_id, (at, result) in (await q.newest_sizes(s, chunk)).items():
            stamp = at.astimezone(UTC).timestamp() if isinstance(at, datetime) else 0.0
            mine = seen.setdefault(instance_id, {})
            for key in AGENT_METRICS.values():
                if result.get(key) is not None and (key not in mine or mine[key][0] <= stamp):
                    mine[key] = (stamp, int(result[key]))
    return {iid: {k: v for k, (_, v) in sizes.items()} for iid, sizes in seen.items()}


async def reconcile(
    queue: ProviderQueue,
    instances: Iterable[tuple[str, Mapping[str, str], str | None, int | None, Any]],
) -> int:
    """Submit the resizes ``(instance, tags, persona, version, document)`` call for; how
    many were submitted. Reads in batches: run every few seconds over the whole fleet."""
    async with queue.db.read() as s:
        providers = [(r.name, r.selector) for r in await q.list_all(s)]
    if not providers:
        return 0
    candidates: list[tuple[str, dict[str, Any], ProviderRequest]] = []
    for instance_id, tags, persona, version, document in instances:
        wanted = wanted_size(document)
        if not wanted or persona is None:
            continue
        name = provider_for(providers, tags)
        if name is None:
            continue
        candidates.append(
            (instance_id, wanted, size_request(instance_id, name, persona, version, wanted))
        )
    if not candidates:
        return 0
    async with queue.db.read() as s:
        asked = await q.known_keys(s, [r.idempotency_key for _i, _w, r in candidates])
        todo = [c for c in candidates if c[2].idempotency_key not in asked]
        sizes = await known_sizes(s, [i for i, _w, _r in todo])
    requests = [r for iid, wanted, r in todo if differs(wanted, sizes.get(iid, {}))]
    await queue.submit_many(requests)
    return len(requests)
