"""Admission: a lease request is admitted onto a host, queued, or refused — in the
transaction that records it.

What a host holds moves only through :func:`mien.server.store.leases.take` (a conditional
UPDATE ``used + ask <= total`` on the host's row), so concurrent requests — coroutines of
one replica serialised by SQLite's writer lock, or replicas on PostgreSQL whose UPDATEs
wait on the row lock and re-check the condition — never over-commit a host. Requests that
do not fit wait in the queue, highest ``priority`` first, then oldest; a request may end
preemptible leases of a lower priority on one host when that makes room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mien.server.store import lease_runs as runs_q
from mien.server.store import leases as q
from mien.server.store.leases import HostRow, LeaseRow
from mien.server.tx import Tx
from mien.spec.models import ResourceRequirements
from mien.spec.values import Size


@dataclass(frozen=True)
class Ask:
    """What a lease holds: cores, bytes of memory, bytes of storage (0: not asked)."""

    cpu: float
    memory: int
    storage: int

    @classmethod
    def of(cls, req: ResourceRequirements) -> Ask:
        return cls(
            float(req.cpu.cores) if req.cpu else 0.0,
            req.memory.bytes if req.memory else 0,
            req.storage.bytes if req.storage else 0,
        )

    @classmethod
    def of_lease(cls, lease: LeaseRow) -> Ask:
        return cls(lease.cpu, lease.memory, lease.storage)


def _size(n: float) -> str:
    return str(Size(int(n))) if n else "0"


def too_big(ask: Ask, hosts: list[HostRow]) -> str | None:
    """Why no host could ever hold ``ask`` (naming the resource), else ``None``."""
    if not hosts:
        return "no sandbox host is online"
    for resource, wanted, biggest, show in (
        ("cpu", ask.cpu, max(h.cpu for h in hosts), lambda v: f"{v:g} cores"),
        ("memory", ask.memory, max(h.memory for h in hosts), _size),
        ("storage", ask.storage, max(h.storage for h in hosts), _size),
    ):
        if wanted > biggest + 1e-9:
            return (
                f"{resource}: the persona asks for {show(wanted)} and the largest sandbox "
                f"host offers {show(biggest)}"
            )
    return None


def by_load(hosts: list[HostRow]) -> list[HostRow]:
    """Emptiest host first (by its busiest resource), so leases spread."""

    def load(h: HostRow) -> float:
        parts = [h.used_cpu / h.cpu if h.cpu else 0.0]
        parts.append(h.used_memory / h.memory if h.memory else 0.0)
        return max(parts)

    return sorted(hosts, key=lambda h: (load(h), h.instance_id))


def fits(ask: Ask, h: HostRow) -> bool:
    return (
        h.used_cpu + ask.cpu <= h.cpu + 1e-9
        and h.used_memory + ask.memory <= h.memory
        and h.used_storage + ask.storage <= h.storage
    )


async def place(
    tx: Tx, lease: LeaseRow, *, hosts: list[HostRow] | None = None, preempt: bool = True
) -> str | None:
    """Admit a queued lease onto a host: the host's id, or ``None`` if nothing fits now.

    ``hosts`` (as read in this transaction) only orders and filters the candidates: the
    conditional UPDATE of :func:`~mien.server.store.leases.take` decides."""
    ask = Ask.of_lease(lease)
    if hosts is None:
        hosts = await q.hosts(tx.session, alive_only=True)
    hosts = by_load(hosts)
    for host in hosts:
        if not fits(ask, host):
            continue
        if await q.take(tx.session, host.instance_id, ask.cpu, ask.memory, ask.storage):
            if await q.move(
                tx.session,
                lease.id,
                ("queued",),
                tx.now,
                state="provisioning",
                host=host.instance_id,
                reason=None,
                picked_at=None,
            ):
                return host.instance_id
            await q.give_back(tx.session, host.instance_id, ask.cpu, ask.memory, ask.storage)
            return None  # another replica moved it meanwhile
    if preempt and await q.preemptible_below(tx.session, lease.priority):
        for host in hosts:
            if await _preempt_for(tx, lease, host, ask):
                return await place(tx, lease, preempt=False)
    return None


async def _preempt_for(tx: Tx, lease: LeaseRow, host: HostRow, ask: Ask) -> bool:
    """End lower-priority preemptible leases on ``host`` if that makes room for ``ask``."""
    if ask.cpu > host.cpu or ask.memory > host.memory or ask.storage > host.storage:
        return False
    victims = [
        v
        for v in await q.on_host(tx.session, host.instance_id, q.LIVE)
        if v.preemptible and v.priority < lease.priority
    ]
    victims.sort(key=lambda v: (v.priority, -v.created_at.timestamp()))
    free = Ask(
        host.cpu - host.used_cpu, host.memory - host.used_memory, host.storage - host.used_storage
    )
    chosen: list[LeaseRow] = []
    for v in victims:
        if free.cpu + 1e-9 >= ask.cpu and free.memory >= ask.memory and free.storage >= ask.storage:
            break
        chosen.append(v)
        free = Ask(free.cpu + v.cpu, free.memory + v.memory, free.storage + v.storage)
    if not (
        free.cpu + 1e-9 >= ask.cpu and free.memory >= ask.memory and free.storage >= ask.storage
    ):
        return False
    if not chosen:
        return False
    for v in chosen:
        why = (
            f"preempted by lease {lease.id} of {lease.holder} (persona {lease.persona}, "
            f"priority {lease.priority} > {v.priority})"
        )
        await end(tx, v, "preempted", why, actor="mien-broker")
    return True


async def end(
    tx: Tx,
    lease: LeaseRow,
    state: str,
    reason: str | None,
    *,
    actor: str,
    destroyed: bool = False,
) -> bool:
    """Move a lease to a final state, give back what it held, fail its pending runs."""
    values: dict[str, Any] = {"state": state, "reason": reason}
    if destroyed:
        values["destroyed_at"] = tx.now
    if not await q.move(tx.session, lease.id, q.OPEN, tx.now, **values):
        return False
    if lease.state in q.LIVE and lease.host:
        await q.give_back(tx.session, lease.host, lease.cpu, lease.memory, lease.storage)
    for run_id in await runs_q.end_for_lease(
        tx.session, lease.id, f"the lease was {state}", tx.now
    ):
        tx.changed("result", run_id)
    tx.audit(
        actor,
        f"lease.{state}",
        persona=lease.persona,
        lease_id=lease.id,
        holder=lease.holder,
        host=lease.host,
        reason=reason,
    )
    return True


async def dispatch(tx: Tx) -> list[tuple[str, str]]:
    """Serve the queue in order (a lease that does not fit lets smaller ones behind it
    through); the (lease, host) pairs admitted."""
    admitted: list[tuple[str, str]] = []
    hosts = await q.hosts(tx.session, alive_only=True)
    if not hosts:
        return admitted
    lowest = await q.lowest_preemptible(tx.session)
    for lease in await q.queued(tx.session):
        ask = Ask.of_lease(lease)
        could_preempt = lowest is not None and lowest < lease.priority
        if not could_preempt and not any(fits(ask, h) for h in hosts):
            continue  # cheap: most sweeps find a full house
        where = await place(tx, lease, hosts=hosts, preempt=could_preempt)
        if where is not None:
            hosts = await q.hosts(tx.session, alive_only=True)
            lowest = await q.lowest_preemptible(tx.session)
            admitted.append((lease.id, where))
            tx.audit(
                "mien-broker",
                "lease.admit",
                persona=lease.persona,
                lease_id=lease.id,
                holder=lease.holder,
                host=where,
            )
    return admitted
