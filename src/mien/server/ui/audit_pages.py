"""The dashboard's audit page: the hash-chained audit log, newest page first, filtered by
actor, action, instance or persona; and, for an admin (as ``GET /api/v1/audit/verify``),
the verification of the whole chain.

The records and the verification come from the API's own route functions
(:mod:`mien.server.api.audit`), with the same role checks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from mien.server.api import audit as audit_api
from mien.server.api.deps import get_state
from mien.server.store import audit as audit_q
from mien.server.ui import sessions as ui
from mien.server.ui.render import UiRoute, page

router = APIRouter(route_class=UiRoute, include_in_schema=False)

PAGE = 100
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/audit")
async def audit(
    request: Request,
    actor: Text = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    instance: Annotated[str | None, Query(max_length=128)] = None,
    persona: Annotated[str | None, Query(max_length=63)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    verify: bool = False,
) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)
    state = get_state(request)
    filtered = any((actor, action, instance, persona))
    if after is None and not filtered:
        # Unfiltered, the page a person wants first is the newest one.
        async with state.db.read() as s:
            head = await audit_q.head(s)
        after = max(0, head[0] - PAGE) if head else 0
    records = await audit_api.list_audit(
        state,
        session.principal,
        actor=actor or None,
        action=action or None,
        instance=instance or None,
        persona=persona or None,
        since=None,
        until=None,
        after=after,
        limit=PAGE,
    )
    verification = None
    if verify:
        ui.require(session, ui.VERIFY)
        verification = await audit_api.verify(state, session.principal)
    return page(
        session,
        "audit.html",
        records=list(reversed(records.items)),
        next=records.next,
        previous=max(0, (after or 0) - PAGE) if (after or 0) > 0 else None,
        filters={
            "actor": actor or "",
            "action": action or "",
            "instance": instance or "",
            "persona": persona or "",
        },
        verification=verification,
    )
