"""A lease's life after admission: renewals, release, TTL expiry, hosts that stop
reporting, and the background pass every replica runs (:func:`sweep`).

A lease lives ``ttl`` seconds past its last renewal (``mien app`` renews while it waits and
while a command runs); an overdue lease is ``expired`` and its host told to destroy it. A
host silent for ``sandbox_host_timeout`` seconds is marked dead: leases it was still
provisioning go back to the queue (they move), ready ones fail, and its ledger is recounted.
"""

from __future__ import annotations

from datetime import timedelta

from mien.server.broker import admission
from mien.server.store import lease_runs as runs_q
from mien.server.store import leases as q
from mien.server.store.leases import LeaseRow
from mien.server.tx import Tx


async def renew(tx: Tx, lease: LeaseRow) -> bool:
    return await q.move(
        tx.session, lease.id, q.OPEN, tx.now, expires_at=tx.now + timedelta(seconds=lease.ttl)
    )


async def sweep(tx: Tx, host_timeout: float) -> None:
    """Expire overdue leases and runs, bury silent hosts, then serve the queue."""
    for lease in await q.overdue(tx.session, tx.now):
        await admission.end(
            tx, lease, "expired", f"not renewed for {lease.ttl:g}s", actor="mien-broker"
        )
    for run in await runs_q.expire(tx.session, tx.now):
        tx.changed("result", run.id)
    for host in await q.mark_dead(tx.session, tx.now - timedelta(seconds=host_timeout)):
        await host_lost(tx, host, host_timeout)
    await admission.dispatch(tx)


async def host_lost(tx: Tx, host: str, host_timeout: float) -> None:
    silent = f"sandbox host {host} stopped reporting for {host_timeout:g}s"
    for lease in await q.on_host(tx.session, host, q.LIVE):
        if lease.state == "provisioning":
            # Nothing of it was ready: it moves to another host through the queue.
            if await q.move(
                tx.session,
                lease.id,
                ("provisioning",),
                tx.now,
                state="queued",
                host=None,
                picked_at=None,
                reason=f"{silent} while provisioning; queued again",
            ):
                tx.audit(
                    "mien-broker",
                    "lease.requeue",
                    persona=lease.persona,
                    lease_id=lease.id,
                    host=host,
                )
        else:
            await admission.end(tx, lease, "failed", silent, actor="mien-broker")
    await q.recount(tx.session, host)
    tx.audit("mien-broker", "sandbox_host.lost", instance_id=host)
