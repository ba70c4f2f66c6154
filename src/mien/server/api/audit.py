"""``/audit``: the append-only, hash-chained audit log, filtered; and its verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query

from mien.protocol import AuditRecord, AuditVerification, ErrorBody, Page
from mien.server import audit as chain
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import Admin, Limit, State, Viewer
from mien.server.errors import ApiError
from mien.server.store import audit as q
from mien.server.store.audit import AuditRow

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/audit",
    tags=["audit"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)


def record_model(row: AuditRow) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        instance_id=row.instance_id,
        persona=row.persona,
        detail=orjson.loads(row.detail),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _time(name: str, value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ApiError(422, "invalid_request", f"query.{name}: give a time zone (e.g. Z)")
    return chain.timestamp(value)


@router.get("", response_model=Page[AuditRecord], summary="Audit records, oldest first")
async def list_audit(
    state: State,
    who: Viewer,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64, description="prefix, e.g. persona.")] = None,
    instance: Annotated[str | None, Query(max_length=128)] = None,
    persona: Annotated[str | None, Query(max_length=63)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="a `next` value")] = None,
    limit: Limit = 100,
) -> Page[AuditRecord]:
    async with state.db.read() as s:
        rows = await q.query(
            s,
            actor=actor,
            action=action,
            instance_id=instance,
            persona=persona,
            since=_time("since", since),
            until=_time("until", until),
            after=after,
            limit=limit,
        )
    nxt = str(rows[-1].seq) if len(rows) == limit else None
    return Page(items=[record_model(r) for r in rows], next=nxt)


@router.get(
    "/verify", response_model=AuditVerification, summary="Check the whole hash chain (admin)"
)
async def verify(state: State, who: Admin) -> AuditVerification:
    async with state.db.read() as s:
        result = await chain.verify(s)
    return AuditVerification(
        ok=result.ok,
        records=result.records,
        head=result.head,
        first_bad=result.first_bad,
        reason=result.reason,
    )
