"""``/personas/{name}/default``: make a persona the fleet's default, or stop it being one.

The default is what an instance with no activation and no matching binding runs, so
changing it can reach every unbound machine at once. It is therefore only ever changed
here, explicitly (``mien persona default NAME [--unset]``, ``mien persona push FILE
--default``); a pushed document that says ``default_persona: true`` does not change it.
There is one default at a time: setting one clears the mark on any other.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from mien.protocol import DefaultPersona, ErrorBody
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import NAME_RE, Operator, State
from mien.server.errors import not_found
from mien.server.store import personas as q

router = APIRouter(
    prefix="/personas",
    tags=["personas"],
    route_class=CheckedRoute,
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
        404: {"model": ErrorBody, "description": "no such persona"},
    },
)

NamePath = Annotated[str, Path(pattern=NAME_RE, description="persona name")]


@router.put(
    "/{name}/default",
    response_model=DefaultPersona,
    summary="Make this persona the fleet's default (the one default; any other is cleared)",
)
async def set_default(name: NamePath, state: State, who: Operator) -> DefaultPersona:
    async with state.transaction() as tx:
        previous = await q.set_default(tx.session, name, now=tx.now)
        if previous is None:
            raise not_found(f"persona {name!r}")
        was = previous[0] if previous else None
        if previous != [name]:
            tx.audit(who.actor, "persona.default.set", persona=name, previous=was)
            for other in {name, *previous}:
                tx.changed("persona", other)
    return DefaultPersona(persona=name, previous=was)


@router.delete(
    "/{name}/default",
    response_model=DefaultPersona,
    summary="Stop this persona being the fleet's default (nothing if it is not)",
)
async def unset_default(name: NamePath, state: State, who: Operator) -> DefaultPersona:
    async with state.transaction() as tx:
        before = await q.defaults(tx.session)
        was = await q.unset_default(tx.session, name)
        if was is None:
            raise not_found(f"persona {name!r}")
        if was:
            tx.audit(who.actor, "persona.default.unset", persona=name)
            tx.changed("persona", name)
        after = await q.defaults(tx.session)
    return DefaultPersona(
        persona=after[0] if after else None, previous=before[0] if before else None
    )
