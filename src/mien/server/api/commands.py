"""Remote commands (the fleet side of command execution).

``POST /instances/{id}/commands`` queues ``command args…`` for the instance's agent, which
runs it through its active persona's routing table (a restricted command comes back
refused, exit status 126; an overridden one runs its replacement). The call waits up to
``wait`` seconds for the result (200), else answers 202 with the record to poll at
``GET /instances/{id}/commands/{command_id}`` (which takes ``wait`` too).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from mien.protocol import CommandRecord, CommandRequest, ErrorBody, Page
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import INSTANCE_RE, UUID_RE, Operator, State
from mien.server.errors import not_found
from mien.server.state import ServerState
from mien.server.store import commands as q
from mien.server.store import instances as instances_q
from mien.server.store.commands import CommandRow

router = APIRouter(
    route_class=CheckedRoute,
    tags=["commands"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "needs the operator role"},
    },
)

InstancePath = Annotated[str, Path(pattern=INSTANCE_RE)]
Wait = Annotated[float, Query(ge=0, le=3600, description="seconds to wait for the result")]
FINISHED = ("done", "expired")


def command_model(row: CommandRow) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        instance_id=row.instance_id,
        command=row.command,
        args=row.args,
        timeout=row.timeout,
        status=row.status,
        exit_status=row.exit_status,
        refused=row.refused,
        stdout=row.stdout,
        stderr=row.stderr,
        stdout_truncated=row.stdout_truncated,
        stderr_truncated=row.stderr_truncated,
        error=row.error,
        created_at=row.created_at,
        created_by=row.created_by,
        sent_at=row.sent_at,
        finished_at=row.finished_at,
    )


async def await_result(state: ServerState, command_id: str, wait: float) -> CommandRow | None:
    """The command's row once finished, or as it is when ``wait`` runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, state.settings.longpoll_max_wait)
    while True:
        async with state.db.read() as s:
            row = await q.get(s, command_id)
        if row is None or row.status in FINISHED:
            return row
        remaining = deadline - loop.time()
        if remaining <= 0 or state.command_waiters.closed:
            return row
        await state.command_waiters.wait(command_id, remaining)


def _answer(row: CommandRow, response: Response) -> CommandRecord:
    if row.status not in FINISHED:
        response.status_code = 202
        response.headers["Location"] = f"/api/v1/instances/{row.instance_id}/commands/{row.id}"
    return command_model(row)


@router.post(
    "/instances/{instance_id}/commands",
    response_model=CommandRecord,
    responses={
        202: {"model": CommandRecord, "description": "queued or running: poll its Location"},
        404: {"model": ErrorBody},
    },
    summary="Run a command on an instance through its persona's routing table",
)
async def run_command(
    instance_id: InstancePath,
    body: CommandRequest,
    response: Response,
    state: State,
    who: Operator,
    wait: Wait = 30.0,
) -> CommandRecord:
    command_id = str(uuid.uuid4())
    async with state.transaction() as tx:
        if await instances_q.get(tx.session, instance_id) is None:
            raise not_found(f"instance {instance_id!r}")
        await q.create(
            tx.session,
            command_id=command_id,
            instance_id=instance_id,
            command=body.command,
            args=body.args,
            timeout=body.timeout,
            actor=who.actor,
            now=tx.now,
            expires_at=tx.now + timedelta(seconds=state.settings.command_pending_ttl),
        )
        tx.audit(
            who.actor,
            "command.create",
            instance_id=instance_id,
            command_id=command_id,
            command=body.command,
            args=body.args,
        )
        tx.changed("command", instance_id)
    row = await await_result(state, command_id, wait)
    assert row is not None
    return _answer(row, response)


@router.get(
    "/instances/{instance_id}/commands",
    response_model=Page[CommandRecord],
    responses={404: {"model": ErrorBody}},
    summary="Recent remote commands of an instance, newest first",
)
async def list_commands(
    instance_id: InstancePath,
    state: State,
    who: Operator,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[CommandRecord]:
    async with state.db.read() as s:
        if await instances_q.get(s, instance_id, include_deleted=True) is None:
            raise not_found(f"instance {instance_id!r}")
        rows = await q.for_instance(s, instance_id, limit)
    return Page(items=[command_model(r) for r in rows])


@router.get(
    "/instances/{instance_id}/commands/{command_id}",
    response_model=CommandRecord,
    responses={
        202: {"model": CommandRecord, "description": "not finished yet"},
        404: {"model": ErrorBody},
    },
    summary="One remote command; wait=N waits up to N seconds for it to finish",
)
async def get_command(
    instance_id: InstancePath,
    command_id: Annotated[str, Path(pattern=UUID_RE)],
    response: Response,
    state: State,
    who: Operator,
    wait: Wait = 0.0,
) -> CommandRecord:
    row = await await_result(state, command_id, wait)
    if row is None or row.instance_id != instance_id:
        raise not_found(f"command {command_id!r} of instance {instance_id!r}")
    return _answer(row, response)
