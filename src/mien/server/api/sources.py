"""``GET /agent/sources/{key}``: the server's copy of a fleet-wide data source, for the
agents whose desired persona names it.

An endpoint of its own rather than a part of the desired state: a feed changes on its own
schedule (a threat list every few minutes), the desired state only when an operator
changes something. Inside the desired state every change of every feed would wake every
long-polling agent and resend the whole persona with up to 1 MiB of payload; here each agent
asks at its source's ``every`` and an unchanged copy costs a 304 (``If-None-Match``).

The ETag is a digest of the value, so it stays the same while the origin's payload does;
``X-Mien-Fetched-At`` (on 200 and 304) is when the server last confirmed its copy at the
origin, which is the age the agent's rules see. A key the agent's desired persona does not
name is 404, whether or not another persona names it. The polling itself:
:mod:`mien.server.sources`.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Path, Response

from mien.protocol import ErrorBody
from mien.protocol.sources import FETCHED_AT, SourceCopy
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import Agent, State
from mien.server.errors import ApiError
from mien.server.store import fleet_sources as q

router = APIRouter(
    prefix="/agent",
    route_class=CheckedRoute,
    tags=["agent"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "not an agent token"},
    },
)

KEY_RE = r"^[0-9a-f]{1,64}$"


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/sources/{key}",
    response_model=SourceCopy,
    responses={
        304: {"description": "the copy the agent holds (If-None-Match) is still current"},
        404: {"model": ErrorBody, "description": "the desired persona names no such source"},
        503: {"model": ErrorBody, "description": "the server has no good copy yet: retry"},
    },
    summary="The server's copy of a fleet-wide data source of this instance's persona",
)
async def get_source(
    state: State,
    who: Agent,
    key: Annotated[str, Path(pattern=KEY_RE)],
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    assert who.instance_id is not None
    named = state.sources.of_instance(who.instance_id)
    if key not in named:
        raise ApiError(
            404,
            "not_found",
            f"the persona instance {who.instance_id!r} is desired to run names no "
            f"fleet-wide source {key!r}",
        )
    async with state.db.read() as session:
        row = await q.get(session, key)
    if row is None or row.fetched_at is None or row.digest is None:
        why = f" (last try: {row.last_error})" if row is not None and row.last_error else ""
        raise ApiError(
            503,
            "source_not_ready",
            f"the server has no good copy of source {named[key].url} yet{why}; retry later",
            headers={"Retry-After": "5"},
        )
    etag = f'"{row.digest}"'
    headers = {"ETag": etag, FETCHED_AT: repr(row.fetched_at), "Cache-Control": "no-cache"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    body = SourceCopy(
        key=row.key,
        url=row.url,
        parse=row.parse,
        value=row.value,
        fetched_at=row.fetched_at,
        changed_at=row.changed_at or row.fetched_at,
        error=row.last_error,
    )
    return Response(
        orjson.dumps(body.model_dump(mode="json")),
        media_type="application/json",
        headers=headers,
    )
