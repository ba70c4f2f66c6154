"""The broker's user side (``/broker/leases``, ``/broker/groups``, ``/broker/hosts``).

``POST /broker/leases`` answers at once with the lease (201): ``provisioning`` when a host
was found, ``queued`` when none has room now, ``insufficient_resources`` when none ever
could (the reason names the resource). The holder follows it with ``GET``, keeps it alive
with ``POST …/renew``, runs commands inside with ``POST …/runs`` and ends it with ``POST
…/release``. A person not admitted by the persona's ``access_controls.users`` gets 403,
and the refusal is audited. The lease's host is a sandbox host: see
:mod:`mien.server.api.broker_host`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import ValidationError

from mien.protocol import ErrorBody, Page
from mien.protocol.broker import (
    Group,
    GroupMembers,
    Lease,
    LeaseRequest,
    Limits,
    RunRecord,
    RunRequest,
    Usage,
)
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import NAME_RE, UUID_RE, Admin, Operator, State, allow
from mien.server.auth import Principal
from mien.server.broker import identity, lifecycle
from mien.server.broker.admission import dispatch, end
from mien.server.broker.writer import RequestJob
from mien.server.errors import ApiError, not_found
from mien.server.resolve import Choice
from mien.server.state import ServerState
from mien.server.store import groups as groups_q
from mien.server.store import lease_runs as runs_q
from mien.server.store import leases as q
from mien.server.store.lease_runs import RunRow
from mien.server.store.leases import LeaseRow
from mien.spec.models import AccessControls, ResourceRequirements

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/broker",
    tags=["broker"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "not allowed for this token"},
    },
)

Person = Annotated[Principal, Depends(allow("viewer", "user"))]
LeaseId = Annotated[str, Path(pattern=UUID_RE)]
GroupName = Annotated[str, Path(pattern=NAME_RE)]
Wait = Annotated[float, Query(ge=0, le=3600, description="seconds to wait for the result")]


def lease_model(row: LeaseRow) -> Lease:
    return Lease(
        id=row.id,
        persona=row.persona,
        version=row.version,
        holder=row.holder,
        state=row.state,
        reason=row.reason,
        priority=row.priority,
        preemptible=row.preemptible,
        limits=Limits(cpu=row.cpu, memory=row.memory, storage=row.storage),
        host=row.host,
        ttl=row.ttl,
        expires_at=row.expires_at,
        usage=Usage.model_validate(row.usage) if row.usage else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def run_model(row: RunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        lease_id=row.lease_id,
        argv=row.argv,
        status=row.status,
        exit_status=row.exit_status,
        stdout=row.stdout,
        stderr=row.stderr,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


async def forbid(
    state: ServerState, who: Principal, action: str, message: str, **detail: Any
) -> ApiError:
    """Audit a refusal (in its own transaction: the refused one changes nothing)."""
    async with state.transaction() as tx:
        tx.audit(who.actor, action, **detail)
    return ApiError(403, "forbidden", message)


async def lease_for(state: ServerState, who: Principal, lease_id: str, action: str) -> LeaseRow:
    async with state.db.read() as s:
        row = await q.get(s, lease_id)
    if row is None:
        raise not_found(f"lease {lease_id!r}")
    if not identity.may_manage(who, row.holder):
        raise await forbid(
            state,
            who,
            "lease.denied",
            f"lease {lease_id} belongs to {row.holder!r}, not to {who.name!r}",
            lease_id=lease_id,
            wanted=action,
        )
    return row


@router.post(
    "/leases",
    status_code=201,
    response_model=Lease,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Ask for an environment of an application persona",
)
async def request_lease(body: LeaseRequest, state: State, who: Person) -> Lease:
    effective = state.fleet.effective(Choice("activation", persona=body.persona))
    doc = state.fleet.personas.get(body.persona)
    if doc is None or doc.deleted or effective.data is None:
        if effective.error and doc is not None and not doc.deleted:
            raise ApiError(422, "invalid_persona", f"persona {body.persona!r}: {effective.error}")
        raise not_found(f"persona {body.persona!r}")
    data = effective.data
    try:
        requirements = ResourceRequirements.model_validate(data.get("resource_requirements") or {})
        access = AccessControls.model_validate(data.get("access_controls") or {})
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_persona", f"persona {body.persona!r}: {exc.errors()[0]['msg']}"
        ) from None
    async with state.db.read() as s:
        allowed = await identity.may_request(s, who, access.users)
    if not allowed:
        raise await forbid(
            state,
            who,
            "lease.denied",
            f"{who.name!r} is not among the users of persona {body.persona!r} (access_controls.users)",
            persona=body.persona,
            wanted="request",
        )
    job = RequestJob(
        persona=body.persona,
        version=effective.version or doc.version,
        document=data,
        requirements=requirements,
        holder=who.name,
        priority=body.priority,
        ttl=body.ttl or state.settings.lease_ttl,
    )
    return lease_model(await state.admissions.submit_job(job))


@router.get(
    "/leases",
    response_model=Page[Lease],
    summary="Your leases (an admin's: everyone's with all=true)",
)
async def list_leases(
    state: State,
    who: Person,
    all_users: Annotated[bool, Query(alias="all")] = False,
    ended: Annotated[bool, Query(description="include ended leases")] = False,
) -> Page[Lease]:
    holder = None if (all_users and who.role == "admin") else who.name
    async with state.db.read() as s:
        rows = await q.list_for(s, holder, include_final=ended)
    return Page(items=[lease_model(r) for r in rows])


@router.get(
    "/leases/{lease_id}",
    response_model=Lease,
    responses={404: {"model": ErrorBody}},
    summary="One lease: state, host, limits, usage",
)
async def get_lease(lease_id: LeaseId, state: State, who: Person) -> Lease:
    return lease_model(await lease_for(state, who, lease_id, "read"))


@router.post(
    "/leases/{lease_id}/renew",
    response_model=Lease,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Keep a lease alive for another TTL",
)
async def renew_lease(lease_id: LeaseId, state: State, who: Person) -> Lease:
    row = await lease_for(state, who, lease_id, "renew")
    async with state.transaction() as tx:
        if not await lifecycle.renew(tx, row):
            raise ApiError(
                409,
                "lease_ended",
                f"lease {lease_id} has ended ({row.state}); it cannot be renewed",
            )
        found = await q.get(tx.session, lease_id)
    assert found is not None
    return lease_model(found)


@router.post(
    "/leases/{lease_id}/release",
    response_model=Lease,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="End a lease and free its resources",
)
async def release_lease(lease_id: LeaseId, state: State, who: Person) -> Lease:
    row = await lease_for(state, who, lease_id, "release")
    async with state.transaction() as tx:
        current = await q.get(tx.session, lease_id)
        assert current is not None
        if current.state not in q.OPEN or not await end(
            tx, current, "released", f"released by {who.name}", actor=who.actor
        ):
            fresh = await q.get(tx.session, lease_id)
            was = fresh.state if fresh else row.state
            raise ApiError(
                409,
                "lease_ended",
                f"lease {lease_id} has already ended ({was}); nothing to release",
            )
        await dispatch(tx)
        found = await q.get(tx.session, lease_id)
    assert found is not None
    return lease_model(found)


async def await_run(state: ServerState, run_id: str, wait: float) -> RunRow | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, state.settings.longpoll_max_wait)
    while True:
        async with state.db.read() as s:
            row = await runs_q.get(s, run_id)
        if row is None or row.status in ("done", "expired"):
            return row
        remaining = deadline - loop.time()
        if remaining <= 0 or state.command_waiters.closed:
            return row
        await state.command_waiters.wait(run_id, min(remaining, 1.0))


@router.post(
    "/leases/{lease_id}/runs",
    response_model=RunRecord,
    responses={202: {"model": RunRecord}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Run a command inside a ready lease",
)
async def run_in_lease(
    lease_id: LeaseId,
    body: RunRequest,
    response: Response,
    state: State,
    who: Person,
    wait: Wait = 30.0,
) -> RunRecord:
    row = await lease_for(state, who, lease_id, "run")
    if row.state != "ready" or row.host is None:
        ended = row.state not in q.OPEN
        detail = (
            f"lease {lease_id} has ended ({row.state}): request a new one"
            if ended
            else f"lease {lease_id} is {row.state}, not ready yet"
        )
        raise ApiError(409, "lease_not_ready", detail)
    run_id = str(uuid.uuid4())
    async with state.transaction() as tx:
        await runs_q.create(
            tx.session,
            run_id=run_id,
            lease_id=lease_id,
            host=row.host,
            argv=list(body.argv),
            timeout=body.timeout,
            actor=who.actor,
            now=tx.now,
            expires_at=tx.now + timedelta(seconds=state.settings.command_pending_ttl),
        )
        await lifecycle.renew(tx, row)
        tx.audit(
            who.actor,
            "lease.run",
            persona=row.persona,
            lease_id=lease_id,
            run_id=run_id,
            argv=list(body.argv),
        )
    found = await await_run(state, run_id, wait)
    assert found is not None
    if found.status not in ("done", "expired"):
        response.status_code = 202
    return run_model(found)


@router.get(
    "/leases/{lease_id}/runs/{run_id}",
    response_model=RunRecord,
    responses={202: {"model": RunRecord}, 404: {"model": ErrorBody}},
    summary="A command run inside a lease; wait=N waits for it",
)
async def get_run(
    lease_id: LeaseId,
    run_id: Annotated[str, Path(pattern=UUID_RE)],
    response: Response,
    state: State,
    who: Person,
    wait: Wait = 0.0,
) -> RunRecord:
    await lease_for(state, who, lease_id, "read")
    found = await await_run(state, run_id, wait)
    if found is None or found.lease_id != lease_id:
        raise not_found(f"run {run_id!r} of lease {lease_id!r}")
    if found.status not in ("done", "expired"):
        response.status_code = 202
    return run_model(found)


# --- groups ----------------------------------------------------------------------------


@router.get("/groups", response_model=Page[Group], summary="Groups of users and their members")
async def list_groups(state: State, who: Operator) -> Page[Group]:
    async with state.db.read() as s:
        found = await groups_q.all_groups(s)
    return Page(items=[Group(name=n, members=m) for n, m in found.items()])


@router.post(
    "/groups/{name}/members",
    response_model=Group,
    summary="Add users to a group (made on first use)",
)
async def add_members(name: GroupName, body: GroupMembers, state: State, who: Admin) -> Group:
    async with state.transaction() as tx:
        added = await groups_q.add(tx.session, name, list(body.users), actor=who.actor, now=tx.now)
        tx.audit(who.actor, "group.add", group=name, users=added)
        members = await groups_q.members(tx.session, name)
    return Group(name=name, members=members)


@router.delete(
    "/groups/{name}/members/{user}",
    response_model=Group,
    responses={404: {"model": ErrorBody}},
    summary="Remove a user from a group",
)
async def remove_member(
    name: GroupName,
    user: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}$")],
    state: State,
    who: Admin,
) -> Group:
    async with state.transaction() as tx:
        if not await groups_q.remove(tx.session, name, [user]):
            raise not_found(f"user {user!r} in group {name!r}")
        tx.audit(who.actor, "group.remove", group=name, users=[user])
        members = await groups_q.members(tx.session, name)
    return Group(name=name, members=members)


@router.delete(
    "/groups/{name}",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Delete a group",
)
async def delete_group(name: GroupName, state: State, who: Admin) -> Response:
    async with state.transaction() as tx:
        if not await groups_q.remove(tx.session, name, None):
            raise not_found(f"group {name!r}")
        tx.audit(who.actor, "group.delete", group=name)
    return Response(status_code=204)
