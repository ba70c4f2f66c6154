"""Explicit activations: ``POST /instances/{id}/personas/{name}/activate`` (202, then the
record moves pending → applying → applied | failed as the agent reports), clearing one,
and reading them back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from mien.protocol import Activation, ActivationStatus, ErrorBody, Page
from mien.server import activation
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import INSTANCE_RE, NAME_RE, UUID_RE, Limit, Operator, State, Viewer
from mien.server.errors import ApiError, not_found
from mien.server.reports import activation_model
from mien.server.store import activations as q

router = APIRouter(
    route_class=CheckedRoute,
    tags=["activations"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)


@router.post(
    "/instances/{instance_id}/personas/{persona_name}/activate",
    status_code=202,
    response_model=Activation,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Ask an instance to run a persona (asynchronous: follow the activation record)",
)
async def activate(
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)],
    persona_name: Annotated[str, Path(pattern=NAME_RE)],
    response: Response,
    state: State,
    who: Operator,
    version: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="default: the latest")
    ] = None,
) -> Activation:
    async with state.transaction() as tx:
        row = await activation.activate(
            tx, state.fleet, instance_id, persona_name, version, who.actor
        )
    response.headers["Location"] = f"/api/v1/activations/{row.id}"
    return activation_model(row)


@router.delete(
    "/instances/{instance_id}/activation",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Drop the explicit activation: the instance follows its bindings (or the default)",
)
async def clear_activation(
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)], state: State, who: Operator
) -> Response:
    async with state.transaction() as tx:
        await activation.clear(tx, instance_id, who.actor)
    return Response(status_code=204)


def _cursor(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid_request", f"query.before: {value!r} is not a time") from None


@router.get(
    "/activations", response_model=Page[Activation], summary="Activation records, newest first"
)
async def list_activations(
    state: State,
    who: Viewer,
    instance: Annotated[str | None, Query(max_length=128)] = None,
    persona: Annotated[str | None, Query(max_length=63)] = None,
    status: ActivationStatus | None = None,
    before: Annotated[str | None, Query(max_length=64, description="a `next` value")] = None,
    limit: Limit = 100,
) -> Page[Activation]:
    cursor = _cursor(before)
    if cursor is not None and cursor.tzinfo is None:
        raise ApiError(422, "invalid_request", "query.before: give a time with a zone")
    async with state.db.read() as s:
        rows = await q.page(
            s, instance_id=instance, status=status, persona=persona, before=cursor, limit=limit
        )
    nxt = rows[-1].created_at.isoformat() if len(rows) == limit else None
    return Page(items=[activation_model(r) for r in rows], next=nxt)


@router.get(
    "/activations/{activation_id}",
    response_model=Activation,
    responses={404: {"model": ErrorBody}},
    summary="One activation record",
)
async def get_activation(
    activation_id: Annotated[str, Path(pattern=UUID_RE)], state: State, who: Viewer
) -> Activation:
    async with state.db.read() as s:
        row = await q.get(s, activation_id)
    if row is None:
        raise not_found(f"activation {activation_id!r}")
    return activation_model(row)
