"""``/fleet-rules``: the orchestrator's rules (push a document, list, show, delete) and
``/orchestrator``: which replica evaluates them.

A push stores a new version when the content changed; each push and delete is audited.
The document is validated with :mod:`mien.server.orchestrator.documents`: a refusal is a
422 whose problems name the line, column and field (a condition that does not compile,
at its position in the file).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from mien.protocol import ErrorBody, Page
from mien.protocol.fleet_rules import (
    FleetRule,
    FleetRuleAction,
    FleetRuleDetail,
    OrchestratorStatus,
)
from mien.rules.state import RuleState
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import NAME_RE, Operator, State, Viewer
from mien.server.api.documents import SourceQuery
from mien.server.errors import ApiError, json_number_problems, not_found, spec_problems
from mien.server.orchestrator import documents
from mien.server.orchestrator.loop import LEASE
from mien.server.store import fleet_rules as q
from mien.server.store import orchestrator_lease as lease_q
from mien.server.store.fleet_rules import FleetRuleRow, StateRow

router = APIRouter(
    route_class=CheckedRoute,
    tags=["orchestrator"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)

NamePath = Annotated[str, Path(pattern=NAME_RE)]
BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A fleet rule document in YAML or JSON (see docs/orchestrator.md).",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


def _model(row: FleetRuleRow, st: StateRow | None) -> dict[str, Any]:
    state = RuleState.from_json(st.state) if st is not None else None
    return {
        "name": row.name,
        "version": row.version,
        "selector": row.document.get("selector") or {},
        "when": str(row.document.get("when", "")),
        "phase": state.phase if state else "inactive",
        "since": state.since if state else None,
        "note": st.note if st else "not evaluated yet",
        "values": st.seen if st else {},
        "created_at": row.created_at,
        "created_by": row.created_by,
    }


@router.post(
    "/fleet-rules",
    status_code=201,
    response_model=FleetRuleDetail,
    openapi_extra=BODY,
    responses={200: {"model": FleetRuleDetail}, 422: {"model": ErrorBody}},
    summary="Push a fleet rule: a new version when its content changed (200 when not)",
)
async def push_fleet_rule(
    request: Request, response: Response, state: State, who: Operator, source: SourceQuery = None
) -> FleetRuleDetail:
    from mien.spec.errors import SpecError

    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    name = source or ("body.json" if ctype.endswith("json") else "body.yaml")
    if not body.strip():
        raise ApiError(422, "invalid_document", "empty body: send a fleet rule document")
    try:
        parsed = documents.parse(body, name)
    except SpecError as exc:
        problems = spec_problems(exc.problems)
        first = next((p.text for p in problems if p.severity == "error"), str(exc))
        raise ApiError(
            422, "invalid_document", f"invalid fleet rule: {first}", problems=problems
        ) from None
    numbers = json_number_problems(parsed.data, name)
    if numbers:
        raise ApiError(
            422, "invalid_document", f"invalid fleet rule: {numbers[0].text}", problems=numbers
        )
    rule = parsed.doc.name
    async with state.transaction() as tx:
        before = await q.newest(tx.session, rule)
        if before is not None and before.deleted_at is None and before.document == parsed.data:
            row = before
            response.status_code = 200
        else:
            row = await q.add_version(tx.session, rule, parsed.data, parsed.text, who.actor, tx.now)
            tx.audit(
                who.actor,
                "fleet_rule.push",
                rule=rule,
                version=row.version,
                source=PurePath(name).name,
                document=parsed.data,
            )
    response.headers["Location"] = f"/api/v1/fleet-rules/{rule}"
    return await _detail(state, row)


@router.get("/fleet-rules", response_model=Page[FleetRule], summary="The fleet rules in force")
async def list_fleet_rules(state: State, who: Viewer) -> Page[FleetRule]:
    async with state.db.read() as s:
        rows = await q.current(s)
        states = await q.states(s)
    return Page(items=[FleetRule(**_model(r, states.get(r.name))) for r in rows])


async def _detail(state: Any, row: FleetRuleRow) -> FleetRuleDetail:
    async with state.db.read() as s:
        st = (await q.states(s)).get(row.name)
        recent = await q.recent(s, row.name)
    return FleetRuleDetail(
        **_model(row, st),
        document=row.document,
        source=row.source,
        actions=[
            FleetRuleAction(key=a.key, kind=a.kind, at=a.at, status=a.status, detail=a.detail)
            for a in recent
        ],
    )


@router.get(
    "/fleet-rules/{name}",
    response_model=FleetRuleDetail,
    responses={404: {"model": ErrorBody}},
    summary="One fleet rule: its document, state, the values it last saw and its actions",
)
async def get_fleet_rule(name: NamePath, state: State, who: Viewer) -> FleetRuleDetail:
    async with state.db.read() as s:
        row = await q.newest(s, name)
    if row is None or row.deleted_at is not None:
        raise not_found(f"fleet rule {name!r}")
    return await _detail(state, row)


@router.delete(
    "/fleet-rules/{name}",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Delete a fleet rule (what it did while firing is undone at the next evaluation)",
)
async def delete_fleet_rule(name: NamePath, state: State, who: Operator) -> Response:
    async with state.transaction() as tx:
        row = await q.mark_deleted(tx.session, name, tx.now)
        if row is None:
            raise not_found(f"fleet rule {name!r}")
        tx.audit(who.actor, "fleet_rule.delete", rule=name, version=row.version)
    return Response(status_code=204)


@router.get(
    "/orchestrator",
    response_model=OrchestratorStatus,
    summary="Which replica evaluates the fleet rules, and until when its lease runs",
)
async def orchestrator_status(state: State, who: Viewer) -> OrchestratorStatus:
    async with state.db.read() as s:
        held = await lease_q.holder(s, LEASE)
    live = held is not None and held[1] >= state.clock().timestamp()
    return OrchestratorStatus(
        leader=held[0] if held and live else None,
        replica=state.replica,
        expires_at=held[1] if held else None,
        acquired_at=held[2] if held else None,
        interval=state.settings.orchestrator_interval,
        lease_ttl=state.settings.orchestrator_lease_ttl,
    )
