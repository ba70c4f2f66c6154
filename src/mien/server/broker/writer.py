"""Lease requests, group-committed: ``POST /broker/leases`` hands its job to
:class:`AdmissionWriter`, which decides every request queued meanwhile in one transaction.

Deciding a batch costs a few statements whatever its size: the hosts are read once and
followed in memory as the batch takes from them; each admission is still a conditional
UPDATE of its host's row (:func:`mien.server.store.leases.take`), so a concurrent replica
can never make a batch over-commit — a take that fails re-reads the hosts. The leases are
inserted in one statement. A request that could only be admitted by preempting goes the
slow way (:func:`mien.server.broker.admission.place`) inside the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from mien.server.batching import GroupCommit
from mien.server.broker import admission
from mien.server.broker.admission import Ask, by_load, fits
from mien.server.errors import ApiError
from mien.server.store import leases as q
from mien.server.store.leases import HostRow, LeaseRow
from mien.server.tx import Transactor, Tx
from mien.spec.models import ResourceRequirements


@dataclass(frozen=True)
class RequestJob:
    persona: str
    version: int
    document: dict[str, Any]
    requirements: ResourceRequirements
    holder: str
    priority: int | None
    ttl: float


class AdmissionWriter(GroupCommit[RequestJob, LeaseRow]):
    def __init__(self, state: Transactor) -> None:
        super().__init__(state, record_requests, "lease requests")


def _new_row(tx: Tx, job: RequestJob) -> LeaseRow:
    ask = Ask.of(job.requirements)
    return LeaseRow(
        id=str(uuid.uuid4()),
        persona=job.persona,
        version=job.version,
        holder=job.holder,
        state="queued",
        reason=None,
        priority=job.requirements.priority if job.priority is None else job.priority,
        preemptible=job.requirements.preemptible,
        cpu=ask.cpu,
        memory=ask.memory,
        storage=ask.storage,
        host=None,
        picked_at=None,
        destroyed_at=None,
        ttl=job.ttl,
        expires_at=tx.now + timedelta(seconds=job.ttl),
        usage=None,
        document=job.document,
        created_at=tx.now,
        updated_at=tx.now,
    )


def _taken(h: HostRow, ask: Ask) -> HostRow:
    return replace(
        h,
        used_cpu=h.used_cpu + ask.cpu,
        used_memory=h.used_memory + ask.memory,
        used_storage=h.used_storage + ask.storage,
    )


async def record_requests(tx: Tx, jobs: list[RequestJob]) -> list[LeaseRow | ApiError]:
    """Decide ``jobs`` in the open transaction: each lease provisioning on a host, queued,
    or insufficient_resources (the reason naming the resource)."""
    hosts = {h.instance_id: h for h in await q.hosts(tx.session, alive_only=True)}
    lowest = await q.lowest_preemptible(tx.session)
    rows: list[LeaseRow] = []
    slow: list[int] = []  # jobs that may admit by preempting: decided after the insert
    for job in jobs:
        row = _new_row(tx, job)
        ask = Ask.of_lease(row)
        why = admission.too_big(ask, list(hosts.values()))
        if why is not None:
            rows.append(replace(row, state="insufficient_resources", reason=why))
            continue
        placed = None
        for _attempt in range(3):
            candidates = [h for h in by_load(list(hosts.values())) if fits(ask, h)]
            if not candidates:
                break
            chosen = candidates[0]
            if await q.take(tx.session, chosen.instance_id, ask.cpu, ask.memory, ask.storage):
                hosts[chosen.instance_id] = _taken(chosen, ask)
                placed = chosen.instance_id
                break
            # Another replica took from it meanwhile: read the hosts again.
            hosts = {h.instance_id: h for h in await q.hosts(tx.session, alive_only=True)}
        if placed is not None:
            rows.append(replace(row, state="provisioning", host=placed))
        else:
            if lowest is not None and lowest < row.priority:
                slow.append(len(rows))
            rows.append(row)
    await q.create_many(tx.session, [_values(r) for r in rows])
    for i in slow:
        if await admission.place(tx, rows[i]):
            found = await q.get(tx.session, rows[i].id)
            assert found is not None
            rows[i] = found
    for row in rows:
        tx.audit(
            row.holder,
            "lease.request",
            persona=row.persona,
            lease_id=row.id,
            version=row.version,
            state=row.state,
            host=row.host,
        )
    return list(rows)


def _values(row: LeaseRow) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(row)
