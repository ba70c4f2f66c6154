"""The agent protocol: what ``mien agent run`` speaks, with its instance's own token.

* ``GET /agent/desired?known=STATE&wait=SECONDS`` — long-poll. Answers 200 with the
  desired state (:class:`~mien.protocol.DesiredState`) as soon as it differs from
  ``known`` or remote commands are waiting; 204 when ``wait`` runs out with nothing new.
  Each poll is also the heartbeat.
* ``POST /agent/report`` — applying / applied / failed, with the activation it concerns,
  the hash now applied, the error, and the agent's history summary.
* ``POST /agent/commands/{id}/result`` — a remote command's exit status and output.
* ``POST /agent/heartbeat`` — for an agent that is not polling (busy applying).

The long-poll reads only the replica's cache and answers with bytes encoded once for every
agent that gets the same state (see :mod:`mien.server.fleet`).
"""

from __future__ import annotations

import asyncio
import random
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Path, Query, Response

from mien.protocol import (
    AgentReport,
    CommandResult,
    DesiredState,
    ErrorBody,
    Heartbeat,
    ReportAck,
)
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import UUID_RE, Agent, State
from mien.server.api.views import ensure_cached
from mien.server.errors import ApiError, json_number_problems, not_found
from mien.server.state import ServerState
from mien.server.store import commands as commands_q
from mien.server.store import instances as instances_q

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/agent",
    tags=["agent protocol"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "not an agent token"},
    },
)


def _deleted(instance_id: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        f"instance {instance_id!r} was deleted and its token revoked; enroll again",
        headers={"WWW-Authenticate": 'Bearer realm="mien"'},
    )


def _shutting_down(state: ServerState) -> ApiError:
    state.metrics.longpolls.labels("shutdown").inc()
    return ApiError(
        503, "shutting_down", "the server is restarting; reconnect", headers={"Retry-After": "1"}
    )


async def _with_commands(state: ServerState, instance_id: str) -> bytes | None:
    """Hand the instance its queued commands (at most once), with its desired state."""
    state.fleet.pending_commands.discard(instance_id)
    async with state.transaction() as tx:
        rows = await commands_q.claim(
            tx.session, instance_id, now=tx.now, grace=state.settings.command_result_grace
        )
    if not rows:
        return None
    desired = state.fleet.desired(instance_id)
    if desired is None:
        return None
    commands = [
        {"id": r.id, "command": r.command, "args": r.args, "timeout": r.timeout} for r in rows
    ]
    return orjson.dumps({**desired.payload, "commands": commands})


@router.get(
    "/desired",
    response_class=Response,
    responses={
        200: {"model": DesiredState, "description": "the desired state (differs from `known`)"},
        204: {"description": "nothing changed within `wait`"},
        503: {"model": ErrorBody, "description": "the server is shutting down: reconnect"},
    },
    summary="Long-poll for this instance's desired state and pending commands",
)
async def desired(
    state: State,
    who: Agent,
    known: Annotated[
        str | None, Query(max_length=64, description="`state` of the last answer")
    ] = None,
    wait: Annotated[
        float | None, Query(ge=0, le=3600, description="seconds; capped by the server")
    ] = None,
) -> Response:
    iid = who.instance_id
    assert iid is not None
    fleet = state.fleet
    settings = state.settings
    fleet.seen[iid] = state.clock()
    if iid not in fleet.members:
        try:
            await ensure_cached(state, iid)
        except ApiError:
            raise _deleted(iid) from None
    loop = asyncio.get_running_loop()
    timeout = min(
        settings.longpoll_default_wait if wait is None else wait, settings.longpoll_max_wait
    )
    if timeout > 2:
        # Up to 10% early, so that agents that connected together do not all come back
        # together at every timeout.
        timeout *= 1 - random.random() * 0.1
    deadline = loop.time() + timeout
    while True:
        if state.shutting_down:
            raise _shutting_down(state)
        if iid in fleet.pending_commands:
            body = await _with_commands(state, iid)
            if body is not None:
                state.metrics.longpolls.labels("commands").inc()
                return Response(body, media_type="application/json")
        answer = fleet.desired(iid)
        if answer is None:
            raise _deleted(iid)
        if answer.state != known:
            state.metrics.longpolls.labels("changed").inc()
            return Response(answer.body, media_type="application/json")
        remaining = deadline - loop.time()
        if remaining <= 0:
            fleet.seen[iid] = state.clock()
            state.metrics.longpolls.labels("unchanged").inc()
            return Response(status_code=204)
        await fleet.waiters.wait(iid, remaining, known)


@router.post(
    "/report",
    response_model=ReportAck,
    responses={404: {"model": ErrorBody}},
    summary="Report applying / applied / failed (and the history summary)",
)
async def report(body: AgentReport, state: State, who: Agent) -> ReportAck:
    assert who.instance_id is not None
    state.fleet.seen[who.instance_id] = state.clock()
    if state.shutting_down:
        raise _shutting_down(state)
    if body.history:
        history = [h.model_dump(mode="json") for h in body.history]
        numbers = json_number_problems(history, "report", "history")
        if numbers:
            raise ApiError(422, "invalid_request", numbers[0].text, problems=numbers)
    return await state.reports.submit(who, body)


@router.post("/heartbeat", status_code=204, summary="I am alive (polling counts as well)")
async def heartbeat(
    state: State, who: Agent, body: Annotated[Heartbeat | None, Body()] = None
) -> Response:
    assert who.instance_id is not None
    state.fleet.seen[who.instance_id] = state.clock()
    if body is not None and body.agent_version:
        async with state.db.write() as s:
            await instances_q.set_agent_version(s, who.instance_id, body.agent_version)
    return Response(status_code=204)


def cap(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` bytes of ``text`` (UTF-8, cut on a character boundary)."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


@router.post(
    "/commands/{command_id}/result",
    status_code=204,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="A remote command's exit status and output (capped by the server)",
)
async def command_result(
    command_id: Annotated[str, Path(pattern=UUID_RE)],
    body: CommandResult,
    state: State,
    who: Agent,
) -> Response:
    limit = state.settings.command_output_cap
    stdout, out_cut = cap(body.stdout, limit)
    stderr, err_cut = cap(body.stderr, limit)
    async with state.transaction() as tx:
        row = await commands_q.get(tx.session, command_id)
        if row is None or row.instance_id != who.instance_id:
            raise not_found(f"command {command_id!r} of this instance")
        stored = await commands_q.record_result(
            tx.session,
            command_id,
            exit_status=body.exit_status,
            refused=body.refused,
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=out_cut,
            stderr_truncated=err_cut,
            error=body.error,
            now=tx.now,
        )
        if not stored:
            raise ApiError(
                409,
                "not_awaited",
                f"command {command_id!r} is not awaiting a result (it is {row.status})",
            )
        tx.audit(
            who.actor,
            "command.result",
            instance_id=row.instance_id,
            command_id=command_id,
            command=row.command,
            exit_status=body.exit_status,
            refused=body.refused,
        )
        tx.changed("result", command_id)
    return Response(status_code=204)
