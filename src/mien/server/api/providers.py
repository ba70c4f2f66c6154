"""Provider declarations (``/providers``), the provider calls made for an instance
(``/instances/{id}/provider-calls``) and the fleet's newest calls (``/provider-calls``).
Declaring needs the admin role: a provider acts on the machines' infrastructure with a
secret the server holds. The secret is write-only."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import ValidationError

from mien.protocol import ErrorBody, Page, Problem
from mien.protocol.providers import ProviderCall, ProviderView
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import INSTANCE_RE, NAME_RE, Admin, Limit, State, Viewer
from mien.server.errors import ApiError, not_found
from mien.server.providers.declaration import NEEDS_SECRET, ProviderDocument, check_config
from mien.server.store import instances as instances_q
from mien.server.store import providers as q

CallStatus = Literal["pending", "failing", "succeeded", "failed", "refused"]

router = APIRouter(
    route_class=CheckedRoute,
    tags=["providers"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)

Name = Annotated[str, Path(pattern=NAME_RE)]


def view(row: q.ProviderRow) -> ProviderView:
    return ProviderView(
        name=row.name,
        driver=row.driver,
        selector=row.selector,
        config=row.config,
        has_secret=bool(row.secret),
        description=row.description,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def call_view(row: q.CallRow) -> ProviderCall:
    return ProviderCall(
        id=row.id,
        idempotency_key=row.idempotency_key,
        provider=row.provider,
        instance=row.instance_id,
        kind=row.kind,
        params=row.params,
        reason=row.reason,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        result=row.result,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


@router.get("/providers", response_model=Page[ProviderView], summary="Declared providers")
async def list_providers(state: State, who: Viewer) -> Page[ProviderView]:
    async with state.db.read() as s:
        return Page(items=[view(r) for r in await q.list_all(s)])


@router.get(
    "/providers/{name}",
    response_model=ProviderView,
    responses={404: {"model": ErrorBody}},
    summary="One provider's declaration (without its secret)",
)
async def get_provider(state: State, who: Viewer, name: Name) -> ProviderView:
    async with state.db.read() as s:
        row = await q.get(s, name)
    if row is None:
        raise not_found(f"provider {name!r}")
    return view(row)


@router.put(
    "/providers/{name}",
    response_model=ProviderView,
    summary="Declare or replace a provider (a secret left out is kept)",
)
async def put_provider(
    state: State, who: Admin, name: Name, body: ProviderDocument
) -> ProviderView:
    try:
        config = check_config(body.driver, body.config)
    except ValidationError as exc:
        problems = [
            Problem(
                path=".".join(["config", *(str(p) for p in e["loc"])]),
                message=e["msg"],
            )
            for e in exc.errors(include_url=False)
        ]
        raise ApiError(
            422,
            "invalid_request",
            "; ".join(f"{p.path}: {p.message}" for p in problems),
            problems=problems,
        ) from None
    async with state.transaction() as tx:
        old = await q.get(tx.session, name)
        has_secret = body.secret is not None or (old is not None and bool(old.secret))
        if body.driver in NEEDS_SECRET and not has_secret:
            raise ApiError(
                422,
                "invalid_request",
                f"secret: a {body.driver} provider needs a secret (at least 16 characters)",
                problems=[Problem(path="secret", message="required for this driver")],
            )
        row = await q.put(
            tx.session,
            name=name,
            driver=body.driver,
            selector=dict(body.selector),
            config=config,
            secret=body.secret,
            description=body.description,
            actor=who.actor,
            now=tx.now,
        )
        tx.audit(
            who.actor,
            "provider.declare",
            provider=name,
            driver=body.driver,
            selector=dict(body.selector),
            config=config,
            secret_changed=body.secret is not None,
            version=row.version,
        )
    return view(row)


@router.delete(
    "/providers/{name}",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Remove a provider (its open calls then fail: nobody to call)",
)
async def delete_provider(state: State, who: Admin, name: Name) -> Response:
    async with state.transaction() as tx:
        if not await q.remove(tx.session, name):
            raise not_found(f"provider {name!r}")
        tx.audit(who.actor, "provider.remove", provider=name)
    return Response(status_code=204)


@router.get(
    "/instances/{instance_id}/provider-calls",
    response_model=Page[ProviderCall],
    responses={404: {"model": ErrorBody}},
    summary="Provider calls for an instance, newest first, with their outcome",
)
async def instance_provider_calls(
    state: State,
    who: Viewer,
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)],
    limit: Limit = 100,
) -> Page[ProviderCall]:
    async with state.db.read() as s:
        if await instances_q.get(s, instance_id) is None:
            raise not_found(f"instance {instance_id!r}")
        rows = await q.for_instance(s, instance_id, limit)
    return Page(items=[call_view(r) for r in rows])


@router.get(
    "/provider-calls",
    response_model=Page[ProviderCall],
    summary="The fleet's provider calls, newest first, with their outcome",
)
async def list_provider_calls(
    state: State,
    who: Viewer,
    limit: Limit = 100,
    status: Annotated[
        list[CallStatus] | None,
        Query(description="only calls in these states (repeat: ?status=failing&status=failed)"),
    ] = None,
) -> Page[ProviderCall]:
    async with state.db.read() as s:
        rows = await q.newest(s, limit, list(status or ()))
    return Page(items=[call_view(r) for r in rows])
