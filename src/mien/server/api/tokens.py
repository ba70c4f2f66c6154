"""Tokens (admin), ``whoami``, and enrollment: an agent trades a limited-use enrollment
token for its instance's own credential."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response

from mien.protocol import (
    Enrollment,
    EnrollRequest,
    ErrorBody,
    Page,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    WhoAmI,
)
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import UUID_RE, Admin, State, allow
from mien.server.auth import Principal, bearer, check_row, hash_secret, new_secret
from mien.server.enrollment import EnrollJob
from mien.server.errors import ApiError, not_found
from mien.server.store import tokens as q
from mien.server.store.tokens import TokenRow

router = APIRouter(
    route_class=CheckedRoute,
    tags=["tokens"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "needs the admin role"},
    },
)


def token_model(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        kind=row.kind,
        role="agent" if row.kind == "agent" else row.role,
        instance_id=row.instance_id,
        uses_left=row.uses_left,
        tags=row.tags or {},
        expires_at=row.expires_at,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses={422: {"model": ErrorBody}},
    summary="Make an API token (a role) or an enrollment token (uses, expiry, tags)",
)
async def create_token(body: TokenCreate, state: State, who: Admin) -> TokenCreated:
    if body.kind == "api":
        if body.role is None:
            raise ApiError(422, "invalid_request", "role: an api token needs a role")
        if body.uses is not None or body.tags:
            raise ApiError(422, "invalid_request", "uses/tags: only enrollment tokens take them")
    elif body.role is not None:
        raise ApiError(422, "invalid_request", "role: enrollment tokens have no role")
    secret = new_secret(body.kind)
    token_id = str(uuid.uuid4())
    async with state.transaction() as tx:
        expires = tx.now + timedelta(seconds=body.expires_in) if body.expires_in else None
        row = await q.create(
            tx.session,
            token_id=token_id,
            name=body.name,
            kind=body.kind,
            role=body.role,
            secret_hash=hash_secret(secret),
            uses_left=(body.uses or 1) if body.kind == "enroll" else None,
            tags=dict(body.tags) if body.kind == "enroll" else None,
            expires_at=expires,
            actor=who.actor,
            now=tx.now,
        )
        tx.audit(
            who.actor,
            "token.create",
            token_id=token_id,
            name=body.name,
            kind=body.kind,
            role=body.role,
            uses=row.uses_left,
            expires_at=expires.isoformat() if expires else None,
        )
    return TokenCreated(**token_model(row).model_dump(), token=secret)


@router.get("/tokens", response_model=Page[TokenInfo], summary="List tokens (never their secrets)")
async def list_tokens(state: State, who: Admin, include_revoked: bool = False) -> Page[TokenInfo]:
    async with state.db.read() as s:
        rows = await q.list_all(s, include_revoked=include_revoked)
    return Page(items=[token_model(r) for r in rows])


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Revoke a token (at once, on every replica)",
)
async def revoke_token(
    token_id: Annotated[str, Path(pattern=UUID_RE)], state: State, who: Admin
) -> Response:
    async with state.transaction() as tx:
        row = await q.get(tx.session, token_id)
        if row is None or not await q.revoke(tx.session, token_id, tx.now):
            raise not_found(f"token {token_id!r} (or it is already revoked)")
        tx.audit(
            who.actor, "token.revoke", instance_id=row.instance_id, token_id=token_id, name=row.name
        )
        tx.changed("token", token_id)
    return Response(status_code=204)


@router.get("/whoami", response_model=WhoAmI, summary="The caller's token: name, role, instance")
async def whoami(
    who: Annotated[Principal, Depends(allow("viewer", "user", "agent"))],
) -> WhoAmI:
    return WhoAmI(token_id=who.token_id, name=who.name, role=who.role, instance_id=who.instance_id)


@router.post(
    "/enroll",
    status_code=201,
    response_model=Enrollment,
    tags=["agent protocol"],
    responses={409: {"model": ErrorBody}},
    summary="Trade an enrollment token (Authorization: Bearer) for an instance credential",
)
async def enroll(
    body: EnrollRequest,
    state: State,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Enrollment:
    # From the token cache: a burst of enrollments does not read the token each time (the
    # use is spent, and the token rechecked, when the enrollment is written).
    found = await state.tokens.row(bearer(authorization))
    enrolling = check_row(found, state.clock(), kind="enroll")
    agent_secret = new_secret("agent")
    instance_id = body.instance_id or f"i-{secrets.token_hex(8)}"
    # Tags set by the admin on the enrollment token win over the agent's own.
    tags = {**body.tags, **(enrolling.tags or {})}
    await state.enrollments.submit_job(
        EnrollJob(
            token=enrolling,
            instance_id=instance_id,
            hostname=body.hostname,
            tags=tags,
            agent_version=body.agent_version,
            secret_hash=hash_secret(agent_secret),
        )
    )
    return Enrollment(instance_id=instance_id, token=agent_secret, tags=tags)
