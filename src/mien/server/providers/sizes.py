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

from mien.server.providers.intake import differs, provider_for, size_request, wanted_size
from mien.server.providers.queue import ProviderQueue
from mien.server.store import providers as q
from mien.server.store.tables_telemetry import metric_samples

AGENT_METRICS = {"cpu_count": "cpus", "memory_total_mib": "memory_mib"}


async def known_size(s: AsyncSession, instance_id: str) -> dict[str, Any]:
    """``cpus``/``memory_mib`` as last known, each from whichever source is newer."""
    seen: dict[str, tuple[float, Any]] = {}
    for metric, key in AGENT_METRICS.items():
        t = metric_samples
        row = (
            await s.execute(
                select(t.c.ts, t.c.value)
                .where(t.c.instance_id == instance_id, t.c.name == metric)
                .order_by(t.c.ts.desc())
                .limit(1)
            )
        ).first()
        if row is not None:
            seen[key] = (float(row[0]), int(row[1]))
    answered = await q.known_sizes(s, instance_id)
    if answered is not None:
        at, result = answered
        stamp = at.astimezone(UTC).timestamp() if isinstance(at, datetime) else 0.0
        for key in AGENT_METRICS.values():
            if result.get(key) is not None and (key not in seen or seen[key][0] <= stamp):
                seen[key] = (stamp, int(result[key]))
    return {key: value for key, (_, value) in seen.items()}


async def reconcile(
    queue: ProviderQueue,
    instances: Iterable[tuple[str, Mapping[str, str], str | None, int | None, Any]],
) -> int:
    """Submit the resizes ``(instance, tags, persona, version, document)`` call for; how
    many were submitted."""
    async with queue.db.read() as s:
        providers = [(r.name, r.selector) for r in await q.list_all(s)]
    if not providers:
        return 0
    submitted = 0
    for instance_id, tags, persona, version, document in instances:
        wanted = wanted_size(document)
        if not wanted or persona is None:
            continue
        name = provider_for(providers, tags)
        if name is None:
            continue
        request = size_request(instance_id, name, persona, version, wanted)
        async with queue.db.read() as s:
            if await q.call_by_key(s, request.idempotency_key) is not None:
                continue
            known = await known_size(s, instance_id)
        if differs(wanted, known):
            await queue.submit(request)
            submitted += 1
    return submitted
