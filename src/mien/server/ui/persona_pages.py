"""The dashboard's persona pages: the list, and one persona with its versions, what uses
it, how well the shown version's rules work (effectiveness), and a diff between any two of
its versions.

The data comes from the API's own route functions (:mod:`mien.server.api.personas`) and
the fleet cache's :meth:`~mien.server.fleet.Fleet.uses_of` (what the API's delete refusal
names), with the same role check.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from mien.server.api import personas as personas_api
from mien.server.api.deps import NAME_RE, get_state
from mien.server.ui import metric_pages
from mien.server.ui import sessions as ui
from mien.server.ui.render import UiRoute, page
from mien.server.ui.svg import bar_chart

router = APIRouter(route_class=UiRoute, include_in_schema=False)

Version = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("/personas")
async def personas(request: Request) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.PERSONAS)
    state = get_state(request)
    listing = await personas_api.list_personas(
        state, session.principal, limit=1000, after=None, include_deleted=False
    )
    counts: dict[str, int] = {}
    if session.may(ui.READ):
        for iid in list(state.fleet.members):
            desired = state.fleet.desired(iid)
            name = desired.effective.choice.persona if desired else None
            if name:
                counts[name] = counts.get(name, 0) + 1
    return page(
        session,
        "personas.html",
        personas=listing.items,
        counts=counts,
        chart=bar_chart(
            [(p.name, counts.get(p.name, 0)) for p in listing.items],
            title="instances that should run each persona",
        )
        if session.may(ui.READ)
        else None,
    )


@router.get("/personas/{name}")
async def persona(
    request: Request,
    name: Annotated[str, Path(pattern=NAME_RE)],
    from_: Annotated[int | None, Query(alias="from", ge=1, le=2**31 - 1)] = None,
    to: Version = None,
) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.PERSONAS)
    state = get_state(request)
    who = session.principal
    versions = await personas_api.list_versions(name, state, who)
    latest = max(v.version for v in versions.items)
    shown = await personas_api.get_version(name, to or latest, state, who)
    diff = None
    if len(versions.items) > 1 or from_:
        diff = await personas_api.diff_versions(name, state, who, from_=from_, to=to)
    uses = state.fleet.uses_of(name) if session.may(ui.READ) else []
    effect = None
    if session.may(ui.READ):
        effect = await metric_pages.persona_section(state, who, name, shown.version)
    return page(
        session,
        "persona.html",
        name=name,
        versions=list(reversed(versions.items)),
        shown=shown,
        diff=diff,
        uses=uses,
        latest=latest,
        effect=effect,
    )
