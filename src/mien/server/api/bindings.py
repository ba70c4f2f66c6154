"""``/bindings``: tag selectors that choose a persona, with an optional override (a persona
overlay composed over it) and a priority. The tag → persona mapping. A binding of mode
``add`` layers its persona on top of the chosen one instead (see :mod:`mien.server.resolve`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Response

from mien.protocol import Binding, BindingIn, ErrorBody, Page
from mien.server import resolve
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import NAME_RE, Operator, State, Viewer, etag, etag_matches
from mien.server.errors import ApiError, json_number_problems, not_found, spec_problems
from mien.server.resolve import BindingDoc
from mien.server.state import ServerState
from mien.server.store import bindings as q
from mien.server.store.bindings import BindingRow, StaleBinding

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/bindings",
    tags=["bindings"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)

NamePath = Annotated[str, Path(pattern=NAME_RE)]


def binding_model(row: BindingRow) -> Binding:
    return Binding(
        name=row.name,
        selector=row.selector,
        persona=row.persona,
        override=row.override,
        priority=row.priority,
        description=row.description,
        mode="add" if row.mode == "add" else "replace",
        version=row.version,
        etag=etag("b", row.version),
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def validate(state: ServerState, body: BindingIn) -> dict[str, Any] | None:
    """The override in canonical form, checked to compose over the persona (422 if not)."""
    from mien.spec.document import parse_document
    from mien.spec.errors import SpecError

    persona = state.fleet.personas.get(body.persona)
    if persona is None or persona.deleted:
        raise ApiError(
            422,
            "invalid_binding",
            f"persona: persona {body.persona!r} does not exist",
        )
    if body.override is None:
        return None
    numbers = json_number_problems(body.override, "override.json", "override")
    if numbers:
        raise ApiError(
            422, "invalid_document", f"invalid override: {numbers[0].text}", problems=numbers
        )
    try:
        doc = parse_document(orjson.dumps(body.override), "override.json", overlay=True)
    except SpecError as exc:
        problems = spec_problems(exc.problems)
        for p in problems:
            p.path = f"override.{p.path}" if p.path != "(document)" else "override"
        first = next((p.text for p in problems if p.severity == "error"), str(exc))
        raise ApiError(
            422, "invalid_document", f"invalid override: {first}", problems=problems
        ) from None
    override = doc.data
    for key in ("name", "extends"):
        if key in override:
            raise ApiError(
                422,
                "invalid_binding",
                f"override.{key}: an override cannot change a persona's {key}",
            )
    # Whatever its mode, the persona with the override must compose on its own; an
    # add-binding's clashes with the personas it lands on show on those instances.
    probe = BindingDoc(body.name, body.selector, body.persona, override, body.priority)
    choice = resolve.Choice("binding", body.persona, None, (body.name,), (body.name,))
    effective = resolve.compose_choice(
        choice, state.fleet.personas, {body.name: probe}, state.fleet.pinned
    )
    if effective.error:
        raise ApiError(422, "unresolvable", f"persona {body.persona!r}: {effective.error}")
    if effective.skipped:
        raise ApiError(
            422, "invalid_binding", "override does not compose: " + "; ".join(effective.skipped)
        )
    return override


@router.post(
    "",
    status_code=201,
    response_model=Binding,
    responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Create a binding",
)
async def create_binding(
    body: BindingIn, response: Response, state: State, who: Operator
) -> Binding:
    override = validate(state, body)
    async with state.transaction() as tx:
        row = await q.create(
            tx.session,
            name=body.name,
            selector=body.selector,
            persona=body.persona,
            override=override,
            priority=body.priority,
            description=body.description,
            actor=who.actor,
            now=tx.now,
            mode=body.mode,
        )
        if row is None:
            raise ApiError(409, "exists", f"binding {body.name!r} already exists; PUT to change it")
        tx.audit(who.actor, "binding.create", persona=body.persona, binding=_record(row))
        tx.changed("binding", row.name)
    response.headers["ETag"] = etag("b", row.version)
    response.headers["Location"] = f"/api/v1/bindings/{row.name}"
    return binding_model(row)


def _record(row: BindingRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "selector": row.selector,
        "persona": row.persona,
        "override": row.override,
        "priority": row.priority,
        "mode": row.mode,
        "version": row.version,
    }


@router.get("", response_model=Page[Binding], summary="List bindings in decision order")
async def list_bindings(state: State, who: Viewer) -> Page[Binding]:
    async with state.db.read() as s:
        rows = await q.list_all(s)
    rows.sort(key=lambda r: (-r.priority, -len(r.selector), r.name))
    return Page(items=[binding_model(r) for r in rows])


@router.get(
    "/{name}", response_model=Binding, responses={404: {"model": ErrorBody}}, summary="One binding"
)
async def get_binding(name: NamePath, response: Response, state: State, who: Viewer) -> Binding:
    async with state.db.read() as s:
        row = await q.get(s, name)
    if row is None:
        raise not_found(f"binding {name!r}")
    response.headers["ETag"] = etag("b", row.version)
    return binding_model(row)


@router.put(
    "/{name}",
    response_model=Binding,
    responses={404: {"model": ErrorBody}, 412: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Replace a binding; If-Match makes it conditional",
)
async def update_binding(
    name: NamePath,
    body: BindingIn,
    response: Response,
    state: State,
    who: Operator,
    if_match: Annotated[str | None, Header(max_length=500)] = None,
) -> Binding:
    if body.name != name:
        raise ApiError(
            422, "invalid_binding", f"name: the body names {body.name!r}, the URL {name!r}"
        )
    override = validate(state, body)
    async with state.transaction() as tx:
        current = await q.get(tx.session, name)
        if current is None:
            raise not_found(f"binding {name!r}")
        if not etag_matches(if_match, etag("b", current.version)):
            raise _stale(name, current.version)
        try:
            row = await q.update_binding(
                tx.session,
                name=name,
                selector=body.selector,
                persona=body.persona,
                override=override,
                priority=body.priority,
                description=body.description,
                expected=current.version,
                actor=who.actor,
                now=tx.now,
                mode=body.mode,
            )
        except StaleBinding as exc:
            raise _stale(name, exc.current) from None
        assert row is not None
        tx.audit(
            who.actor,
            "binding.update",
            persona=row.persona,
            before=_record(current),
            after=_record(row),
        )
        tx.changed("binding", name)
    response.headers["ETag"] = etag("b", row.version)
    return binding_model(row)


def _stale(name: str, version: int) -> ApiError:
    tag = etag("b", version)
    return ApiError(
        412,
        "stale_version",
        f"binding {name!r} changed since you read it (now version {version}, ETag {tag}); "
        "read it again and retry",
        headers={"ETag": tag},
    )


@router.delete(
    "/{name}", status_code=204, responses={404: {"model": ErrorBody}}, summary="Delete a binding"
)
async def delete_binding(name: NamePath, state: State, who: Operator) -> Response:
    async with state.transaction() as tx:
        row = await q.delete_binding(tx.session, name)
        if row is None:
            raise not_found(f"binding {name!r}")
        tx.audit(who.actor, "binding.delete", persona=row.persona, binding=_record(row))
        tx.changed("binding", name)
    return Response(status_code=204)
