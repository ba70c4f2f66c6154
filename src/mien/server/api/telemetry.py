"""Fleet telemetry: agents send metric samples and adaptation events
(``POST /agent/telemetry``, gzip-compressed JSON); operators read a metric series
(``GET /instances/{id}/metrics``) and the events (``GET /events``).

A batch is stored whole or not at all, each sample and event once by (instance, seq), so
an agent re-sending a batch whose answer it lost changes nothing. Storage, roll-ups and
retention: :mod:`mien.server.store.telemetry` and :mod:`mien.server.telemetry`.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from mien.protocol import ErrorBody, Page
from mien.protocol.telemetry import (
    MetricsAnswer,
    MetricSeries,
    TelemetryAck,
    TelemetryBatch,
    TelemetryEvent,
)
from mien.server.api.body import CheckedRequest, CheckedRoute
from mien.server.api.deps import (
    INSTANCE_RE,
    Agent,
    InstanceReader,
    Limit,
    State,
    Viewer,
    get_state,
)
from mien.server.errors import ApiError, not_found
from mien.server.providers.intake import SCALE_EVENT, provider_for, scale_requests
from mien.server.state import ServerState
from mien.server.store import instances as instances_q
from mien.server.store import providers as providers_q
from mien.server.store import telemetry as q
from mien.server.telemetry import Retention, choose, parse_duration, points
from mien.server.tx import Tx

EXPANSION = 16
"""A compressed batch may expand to this many times the body limit, no more."""


class GzipRequest(CheckedRequest):
    """A request whose body may come gzip-compressed (``Content-Encoding: gzip``); it is
    inflated up to :data:`EXPANSION` times the body limit, no further (a small bomb must
    not fill the replica's memory)."""

    async def body(self) -> bytes:
        if not hasattr(self, "_inflated"):
            raw = await super().body()
            encoding = self.headers.get("content-encoding", "").strip().lower()
            if encoding == "gzip":
                limit = get_state(self).settings.max_body_bytes * EXPANSION
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                try:
                    raw = inflater.decompress(raw, limit)
                except zlib.error as exc:
                    raise HTTPException(400, f"body: not valid gzip ({exc})") from None
                if inflater.unconsumed_tail:
                    raise HTTPException(413, f"body: expands beyond {limit} bytes")
            elif encoding not in ("", "identity"):
                raise HTTPException(415, f"Content-Encoding {encoding!r}: send gzip or none")
            self._inflated = raw
        return self._inflated


class TelemetryRoute(CheckedRoute):
    """A :class:`CheckedRoute` whose request also inflates a gzip body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = APIRoute.get_route_handler(self)

        async def inflating(request: Request) -> Response:
            return await handler(GzipRequest(request.scope, request.receive))

        return inflating


router = APIRouter(
    route_class=TelemetryRoute,
    tags=["telemetry"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role (or instance) may not do this"},
    },
)


@router.post(
    "/agent/telemetry",
    response_model=TelemetryAck,
    responses={413: {"model": ErrorBody}, 415: {"model": ErrorBody}},
    summary="Send metric samples and adaptation events (JSON, best gzip-compressed)",
)
async def post_telemetry(batch: TelemetryBatch, state: State, who: Agent) -> TelemetryAck:
    assert who.instance_id is not None
    if batch.instance is not None and batch.instance != who.instance_id:
        raise ApiError(
            403,
            "forbidden",
            f"this agent token belongs to instance {who.instance_id!r}; it may send only "
            "that instance's telemetry",
        )
    if not any(e.kind == SCALE_EVENT for e in batch.events):
        async with state.db.write() as session:
            samples, events, dups = await q.ingest(session, who.instance_id, batch, time.time())
        return TelemetryAck(samples=samples, events=events, duplicates=dups)
    # Scale requests: stored with the batch, in one transaction, as provider calls.
    async with state.transaction() as tx:
        samples, events, dups = await q.ingest(tx.session, who.instance_id, batch, time.time())
        await scale_intake(state, tx, who.instance_id, batch)
    return TelemetryAck(samples=samples, events=events, duplicates=dups)


async def scale_intake(state: ServerState, tx: Tx, instance_id: str, batch: TelemetryBatch) -> None:
    """Submit a resize for each ``scale`` event of ``batch`` to the instance's provider."""
    members = state.fleet.members.get(instance_id)
    providers = [(r.name, r.selector) for r in await providers_q.list_all(tx.session)]
    name = provider_for(providers, members.tags if members else {})
    for request in scale_requests(instance_id, batch.events, name):
        await state.providers.submit_in(tx, request)


def _duration(value: str | None, name: str, default: float | None) -> float | None:
    if value is None or value == "":
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"query.{name}: {exc}") from None


@router.get(
    "/instances/{instance_id}/metrics",
    response_model=MetricsAnswer,
    responses={404: {"model": ErrorBody}},
    summary="An instance's metric series (raw samples or roll-ups, by step)",
)
async def instance_metrics(
    state: State,
    who: InstanceReader,
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)],
    name: Annotated[str | None, Query(max_length=200, description="one metric")] = None,
    since: Annotated[
        str | None, Query(max_length=20, description="how far back: 90s, 15m, 1h, 7d")
    ] = None,
    step: Annotated[
        str | None, Query(max_length=20, description="seconds per point (0: every sample)")
    ] = None,
) -> MetricsAnswer:
    async with state.db.read() as session:
        if await instances_q.get(session, instance_id) is None:
            raise not_found(f"instance {instance_id!r}")
    s = state.settings
    keep = Retention(
        s.telemetry_raw_retention, s.telemetry_minute_retention, s.telemetry_hour_retention
    )
    until = time.time()
    start = until - (_duration(since, "since", 3600.0) or 3600.0)
    wanted = None if step is None else (0.0 if step.strip() == "0" else _duration(step, "step", 0))
    source, used = choose(start, until, wanted, keep)
    async with state.db.read() as session:
        found = await q.series(session, instance_id, name, start, until, source)
    series = []
    for metric, items in sorted(found.items()):
        kept = items
        series.append(
            MetricSeries(
                name=metric,
                points=points(kept, used),
                min=min(a.min for _, a in kept),
                max=max(a.max for _, a in kept),
                last=max(kept, key=lambda x: x[1].last_ts)[1].last,
            )
        )
    return MetricsAnswer(
        instance=instance_id, since=start, until=until, step=used, source=source, series=series
    )


def _cursor(text: str) -> tuple[float, str, int]:
    try:
        ts, instance, seq = json.loads(base64.urlsafe_b64decode(text.encode()))
        return float(ts), str(instance), int(seq)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "invalid_request", "query.after: not a cursor this API gave") from exc


@router.get(
    "/events",
    response_model=Page[TelemetryEvent],
    summary="Adaptation events the agents sent, oldest first (paged)",
)
async def list_events(
    state: State,
    who: Viewer,
    limit: Limit = 100,
    instance: Annotated[str | None, Query(pattern=INSTANCE_RE)] = None,
    since: Annotated[str | None, Query(max_length=20, description="how far back: 1h, 2d")] = None,
    kind: Annotated[
        str | None, Query(max_length=100, description="a kind or its prefix: adapt.rule")
    ] = None,
    after: Annotated[str | None, Query(max_length=400)] = None,
) -> Page[TelemetryEvent]:
    from datetime import UTC, datetime

    back = _duration(since, "since", None)
    rows = []
    async with state.db.read() as session:
        rows = await q.events_page(
            session,
            instance_id=instance,
            since=None if back is None else time.time() - back,
            kind=kind,
            after=None if after is None else _cursor(after),
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        TelemetryEvent(
            instance=r.instance_id,
            seq=r.seq,
            at=datetime.fromtimestamp(r.ts, UTC),
            kind=r.kind,
            detail=r.detail,
        )
        for r in rows
    ]
    cursor = None
    if more and rows:
        last = rows[-1]
        cursor = base64.urlsafe_b64encode(
            json.dumps([last.ts, last.instance_id, last.seq]).encode()
        ).decode()
    return Page(items=items, next=cursor)
