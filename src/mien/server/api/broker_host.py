"""The broker's host side: what a sandbox host's agent (``mien agent run --sandbox-host``)
speaks with its instance's own token.

* ``POST /broker/host/offer`` — the capacity it offers (CPU, memory, storage); sent every
  few seconds, it is also the host's heartbeat.
* ``GET /broker/host/work`` — leases to build, leases to destroy, commands to run inside
  leases (each handed out once), and the ids it should still be holding.
* ``POST /broker/host/leases/{id}`` — ready | failed (with the reason) | destroyed |
  released (reclaimed when idle).
* ``POST /broker/host/leases/{id}/usage`` — CPU seconds, peak memory, processes launched.
* ``POST /broker/host/runs/{id}/result`` — a command's exit status and output.
* ``WS /broker/host/shells/{id}`` — an interactive shell the holder waits for (handed out
  by ``work``; :mod:`mien.server.api.broker_shell`).

``GET /broker/hosts`` (operator) shows the ledger.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from mien.protocol import ErrorBody, Page
from mien.protocol.broker import (
    HostLease,
    HostLeaseReport,
    HostOffer,
    HostRun,
    HostRunResult,
    HostShell,
    HostUsage,
    HostWork,
    Limits,
)
from mien.server.api.agent import cap
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import UUID_RE, Agent, Operator, State
from mien.server.broker import admission
from mien.server.errors import ApiError, not_found
from mien.server.store import lease_runs as runs_q
from mien.server.store import leases as q

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/broker",
    tags=["broker (sandbox hosts)"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "not an agent token"},
    },
)

LeaseId = Annotated[str, Path(pattern=UUID_RE)]


@router.post("/host/offer", status_code=204, summary="A sandbox host's capacity (and heartbeat)")
async def offer(body: HostOffer, state: State, who: Agent) -> Response:
    assert who.instance_id is not None
    state.fleet.seen[who.instance_id] = state.clock()
    async with state.transaction() as tx:
        revived = await q.offer(
            tx.session,
            who.instance_id,
            cpu=body.cpu,
            memory=body.memory,
            storage=body.storage,
            driver=body.driver,
            now=tx.now,
        )
        if revived:
            await q.recount(tx.session, who.instance_id)
            tx.audit(
                who.actor,
                "sandbox_host.online",
                instance_id=who.instance_id,
                cpu=body.cpu,
                memory=body.memory,
                storage=body.storage,
            )
            await admission.dispatch(tx)
    return Response(status_code=204)


@router.get("/host/work", response_model=HostWork, summary="What this sandbox host should do now")
async def work(state: State, who: Agent) -> HostWork:
    host = who.instance_id
    assert host is not None
    async with state.transaction() as tx:
        if await q.host(tx.session, host) is None:
            raise ApiError(
                409, "not_a_sandbox_host", "offer capacity first: POST /api/v1/broker/host/offer"
            )
        build = await q.to_provision(tx.session, host, tx.now)
        gone = await q.to_destroy(tx.session, host)
        runs = await runs_q.claim(
            tx.session, host, now=tx.now, grace=state.settings.command_result_grace
        )
        live = await q.on_host(tx.session, host, q.LIVE)
    shells = state.shells.claim(host)
    return HostWork(
        provision=[
            HostLease(
                id=r.id,
                persona=r.persona,
                version=r.version,
                holder=r.holder,
                document=r.document,
                limits=Limits(cpu=r.cpu, memory=r.memory, storage=r.storage),
            )
            for r in build
        ],
        destroy=[r.id for r in gone],
        runs=[HostRun(id=r.id, lease_id=r.lease_id, argv=r.argv, timeout=r.timeout) for r in runs],
        live=[r.id for r in live],
        shells=[
            HostShell(
                id=s.id,
                lease_id=s.lease_id,
                argv=s.argv,
                tty=s.tty,
                rows=s.rows,
                cols=s.cols,
                term=s.term,
            )
            for s in shells
        ],
    )


async def _host_lease(state: Any, tx: Any, who: Any, lease_id: str) -> q.LeaseRow:
    row = await q.get(tx.session, lease_id)
    if row is None or row.host != who.instance_id:
        raise not_found(f"lease {lease_id!r} on this host")
    return row


@router.post(
    "/host/leases/{lease_id}",
    status_code=204,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Report a lease ready, failed, destroyed or released",
)
async def report_lease(
    lease_id: LeaseId, body: HostLeaseReport, state: State, who: Agent
) -> Response:
    async with state.transaction() as tx:
        row = await _host_lease(state, tx, who, lease_id)
        if body.state == "ready":
            if not await q.move(
                tx.session, lease_id, ("provisioning",), tx.now, state="ready", reason=None
            ):
                raise ApiError(409, "lease_not_provisioning", f"lease {lease_id} is {row.state}")
            tx.audit(
                who.actor,
                "lease.ready",
                persona=row.persona,
                lease_id=lease_id,
                instance_id=row.host,
            )
        elif body.state == "destroyed":
            await q.set_fields(tx.session, lease_id, destroyed_at=tx.now)
        else:
            final = "failed" if body.state == "failed" else "released"
            reason = body.reason or (
                "the sandbox host failed to build it"
                if final == "failed"
                else "reclaimed by its host"
            )
            ended = await admission.end(tx, row, final, reason, actor=who.actor, destroyed=True)
            if not ended and row.destroyed_at is None:
                await q.set_fields(tx.session, lease_id, destroyed_at=tx.now)
            await admission.dispatch(tx)
    return Response(status_code=204)


@router.post(
    "/host/leases/{lease_id}/usage",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="A lease's usage so far",
)
async def report_usage(lease_id: LeaseId, body: HostUsage, state: State, who: Agent) -> Response:
    async with state.transaction() as tx:
        await _host_lease(state, tx, who, lease_id)
        usage = body.model_dump(mode="json")
        usage["processes"] = usage["processes"][-200:]
        usage["reported_at"] = tx.now.isoformat()
        await q.set_fields(tx.session, lease_id, usage=usage)
    return Response(status_code=204)


@router.post(
    "/host/runs/{run_id}/result",
    status_code=204,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="A command's exit status and output",
)
async def run_result(
    run_id: Annotated[str, Path(pattern=UUID_RE)], body: HostRunResult, state: State, who: Agent
) -> Response:
    limit = state.settings.command_output_cap
    async with state.transaction() as tx:
        row = await runs_q.get(tx.session, run_id)
        if row is None or row.host != who.instance_id:
            raise not_found(f"run {run_id!r} on this host")
        if not await runs_q.finish(
            tx.session,
            run_id,
            exit_status=body.exit_status,
            stdout=cap(body.stdout, limit)[0],
            stderr=cap(body.stderr, limit)[0],
            error=body.error,
            now=tx.now,
        ):
            raise ApiError(
                409, "not_awaited", f"run {run_id!r} is not awaiting a result (it is {row.status})"
            )
        tx.audit(
            who.actor,
            "lease.run_result",
            lease_id=row.lease_id,
            run_id=run_id,
            exit_status=body.exit_status,
        )
        tx.changed("result", run_id)
    return Response(status_code=204)


@router.get(
    "/hosts",
    response_model=Page[dict[str, Any]],
    summary="The ledger: each sandbox host's capacity and what its leases hold",
)
async def list_hosts(state: State, who: Operator) -> Page[dict[str, Any]]:
    async with state.db.read() as s:
        rows = await q.hosts(s)
    return Page(
        items=[
            {
                "instance_id": h.instance_id,
                "alive": h.alive,
                "driver": h.driver,
                "cpu": h.cpu,
                "memory": h.memory,
                "storage": h.storage,
                "used_cpu": h.used_cpu,
                "used_memory": h.used_memory,
                "used_storage": h.used_storage,
                "last_seen": h.last_seen.isoformat(),
            }
            for h in rows
        ]
    )
