"""The dashboard's fleet page (every instance, desired against applied, with filters and
the fleet's distribution by persona and state) and instance page (its activations,
history, how much of its persona is in effect and the settings that are not, what its
agent reports of the machine — customizations, drift, rule states, recent actions —, why it
runs what it runs, its telemetry plots).

Each page calls the same route functions the API serves (:mod:`mien.server.api.instances`,
:mod:`mien.server.api.activations`), with the same role check, so the dashboard and the
API cannot disagree.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from mien.protocol import Instance
from mien.protocol.outcomes import Outcome
from mien.protocol.status import fully_in_sync
from mien.server.api import activations as activations_api
from mien.server.api import instances as instances_api
from mien.server.api import status as status_api
from mien.server.api.deps import INSTANCE_RE, get_state
from mien.server.errors import ApiError
from mien.server.ui import lease_pages, metric_pages
from mien.server.ui import sessions as ui
from mien.server.ui.render import UiRoute, page
from mien.server.ui.svg import bar_chart

router = APIRouter(route_class=UiRoute, include_in_schema=False)

STATES = (
    "in-sync",
    "partly-in-effect",
    "out-of-sync",
    "applied",
    "applying",
    "failed",
    "never",
    "offline",
)
PAGE = 500


def health(inst: Instance) -> str:
    """One word for the table: how the instance is doing, from the API's own fields."""
    if inst.deleted_at is not None:
        return "deleted"
    if inst.applied.state is None:
        return "never"
    return inst.applied.state


def sync(inst: Instance) -> tuple[str, str]:
    """The Sync column: (css class, text). "in sync" only when the desired content is
    applied and every setting is in effect; else how much is."""
    if fully_in_sync(inst.in_sync, inst.effect):
        return "ok", "in sync"
    if inst.in_sync:
        return "warn", inst.effect.summary
    return "warn", "not in sync"


def matches_state(inst: Instance, wanted: str) -> bool:
    if wanted == "in-sync":
        return fully_in_sync(inst.in_sync, inst.effect)
    if wanted == "partly-in-effect":
        return inst.in_sync and not fully_in_sync(inst.in_sync, inst.effect)
    if wanted == "out-of-sync":
        return not fully_in_sync(inst.in_sync, inst.effect)
    if wanted == "offline":
        return not inst.connected
    return health(inst) == wanted


@router.get("/")
async def fleet(
    request: Request,
    tag: Annotated[list[str], Query(max_length=300)] = [],  # noqa: B006
    persona: Annotated[str | None, Query(max_length=63)] = None,
    state_: Annotated[str | None, Query(alias="state", max_length=20)] = None,
    after: Annotated[str | None, Query(max_length=128)] = None,
    metric: Annotated[str | None, Query(max_length=63)] = None,
) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)
    state = get_state(request)
    tags = [t.strip() for t in tag if t.strip()]
    if state_ and state_ not in STATES:
        raise ApiError(422, "invalid_request", f"query.state: one of {', '.join(STATES)}")
    listing = await instances_api.list_instances(
        state,
        session.principal,
        limit=PAGE,
        after=after or None,
        tag=tags,
        persona=persona or None,
        hostname=None,
        include_deleted=False,
    )
    items = [i for i in listing.items if not state_ or matches_state(i, state_)]
    summary = await instances_api.fleet_summary(state, session.principal)
    by_state = [
        ("in sync", summary.in_sync - summary.partly_in_effect),
        ("partly in effect", summary.partly_in_effect),
        ("applied", summary.applied),
        ("applying", summary.applying),
        ("failed", summary.failed),
        ("never reported", summary.never_reported),
        ("connected", summary.connected),
    ]
    return page(
        session,
        "fleet.html",
        instances=items,
        next=listing.next,
        summary=summary,
        personas=sorted(summary.by_persona),
        states=STATES,
        filters={"tag": tags, "persona": persona or "", "state": state_ or ""},
        health=health,
        sync=sync,
        persona_chart=bar_chart(
            sorted(summary.by_persona.items()), title="instances per desired persona"
        ),
        state_chart=bar_chart(by_state, title="instances by state"),
        **await metric_pages.fleet_section(state, metric or None),
    )


@router.get("/instances/{instance_id}")
async def instance(
    request: Request,
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)],
    since: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)
    state = get_state(request)
    who = session.principal
    inst = await instances_api.get_instance(instance_id, state, who)
    effective = await instances_api.effective_persona(instance_id, state, who)
    history = await instances_api.history(instance_id, state, who)
    activations = await activations_api.list_activations(
        state, who, instance=instance_id, persona=None, status=None, before=None, limit=20
    )
    status = await status_api.get_status(instance_id, state, who)
    not_in_effect = [s for s in inst.applied.settings if s.status != Outcome.APPLIED]
    return page(
        session,
        "instance.html",
        inst=inst,
        health=health(inst),
        sync=sync(inst),
        machine=status.machine,
        explain=effective.explain,
        history=list(reversed(history.items))[:50],
        activations=activations.items,
        not_in_effect=not_in_effect,
        in_effect=len(inst.applied.settings) - len(not_in_effect),
        **await lease_pages.host_section(request, session, instance_id),
        telemetry=await metric_pages.instance_section(state, who, instance_id, since or None),
    )
