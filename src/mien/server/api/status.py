"""``/instances/{id}/status``: how much of its persona an instance has in effect, and what
its agent last reported of the machine (customizations, drift, rule states, recent
automated actions).

The agent sends the machine's status with its reports (:mod:`mien.server.reports`) and, when
it changed in between, here with ``PUT`` (only the instance's own agent may: another gets
403 before its body is read). ``GET`` is for viewers and the instance's own agent; ``mien
instance show`` and the dashboard's instance page read it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from mien.protocol import ErrorBody
from mien.protocol.status import InstanceStatus, MachineStatus
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import INSTANCE_RE, InstanceReader, OwnAgent, State
from mien.server.api.instances import row_of
from mien.server.api.views import applied_state, desired_summary, effect, in_sync
from mien.server.errors import not_found
from mien.server.fastpath import shutting_down
from mien.server.store import instances as q

router = APIRouter(
    route_class=CheckedRoute,
    tags=["instances"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role (or instance) may not do this"},
    },
)

InstancePath = Annotated[str, Path(pattern=INSTANCE_RE, description="instance id")]


@router.get(
    "/instances/{instance_id}/status",
    response_model=InstanceStatus,
    responses={404: {"model": ErrorBody}},
    summary="How much of the persona is in effect; customizations, drift, rules, actions",
)
async def get_status(
    instance_id: InstancePath, state: State, who: InstanceReader
) -> InstanceStatus:
    row = await row_of(state, instance_id)
    machine = MachineStatus.model_validate(row.machine_status) if row.machine_status else None
    return InstanceStatus(
        instance_id=instance_id,
        in_sync=in_sync(desired_summary(state, instance_id), applied_state(row)),
        effect=effect(row),
        machine=machine,
    )


@router.put(
    "/instances/{instance_id}/status",
    status_code=204,
    responses={404: {"model": ErrorBody}, 413: {"model": ErrorBody}},
    summary="The agent reports its machine's status (customizations, drift, rules, actions)",
)
async def put_status(
    instance_id: InstancePath, body: MachineStatus, state: State, who: OwnAgent
) -> Response:
    state.fleet.seen[instance_id] = state.clock()
    if state.shutting_down:
        raise shutting_down(state)
    async with state.db.write() as s:
        stored = await q.record_status(s, instance_id, body.model_dump(mode="json"), state.clock())
    if not stored:
        raise not_found(f"instance {instance_id!r}")
    return Response(status_code=204)
