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
agent that gets the same state (see :mod:`mien.server.fleet`); well-formed long-polls skip
the framework altogether (:mod:`mien.server.fastpath`).
"""

from __future__ import annotations

from typing import Annotated

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
from mien.server.errors import ApiError, json_number_problems, not_found
from mien.server.fastpath import answer, shutting_down
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
    # Well-formed long-polls are answered by the lean path in front of the application
    # (mien.server.fastpath); this route serves the others and documents the endpoint.
    assert who.instance_id is not None
    body = await answer(state, who.instance_id, known, wait)
    if body is None:
        return Response(status_code=204)
    return Response(body, media_type="application/json")


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
        raise shutting_down(state)
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
