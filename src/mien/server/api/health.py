"""``/healthz`` (liveness and database reachability) and ``/metrics`` (Prometheus).

Both are outside ``/api/v1`` and need no token, as load balancers and Prometheus expect;
neither reveals more than counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from fastapi import APIRouter, Response

from mien import __version__
from mien.protocol import Health
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import State
from mien.server.metrics import CONTENT_TYPE
from mien.server.state import ServerState
from mien.server.store import activations as activations_q
from mien.server.store import instances as instances_q

router = APIRouter(route_class=CheckedRoute, tags=["health"])
_GAUGE_TTL = 5.0


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(state: State, response: Response) -> Health:
    status = "ok"
    try:
        await asyncio.wait_for(state.db.ping(), 2.0)
    except Exception:
        status = "degraded"
        response.status_code = 503
    if state.shutting_down:
        status = "degraded"
        response.status_code = 503
    return Health(
        status=status,
        version=__version__,
        replica=state.replica,
        database=state.db.backend,
        waiting_agents=state.fleet.waiters.keys(),
    )


FRESH = 300.0
"""A reported value older than this no longer counts in the fleet gauges."""


async def fleet_averages(state: ServerState) -> Sequence[tuple[str, str, float, int]]:
    """``(persona, metric, average, instances)``: the newest value of each fleet gauge
    metric, averaged by applied persona over the instances that reported within
    :data:`FRESH`. The ``/metrics`` gauges and the dashboard's fleet page both read this."""
    from mien.server.store import telemetry as telemetry_q

    async with state.db.read() as s:
        return await telemetry_q.fleet_gauges(s, time.time() - FRESH)


async def _fleet_gauges(state: State) -> None:
    m = state.metrics
    rows = await fleet_averages(state)
    # Cleared first: a persona no instance reports for any more leaves the scrape.
    m.fleet_metric.clear()
    m.fleet_metric_instances.clear()
    for persona, metric, average, count in rows:
        m.fleet_metric.labels(persona, metric).set(average)
        m.fleet_metric_instances.labels(persona, metric).set(count)
    m.fleet_metric_by_tag.clear()
    m.fleet_metric_by_tag_instances.clear()
    keys = state.settings.tag_keys
    if not keys:
        return
    from mien.server.store import telemetry as telemetry_q
    from mien.server.telemetry import by_tag

    async with state.db.read() as s:
        latest = await telemetry_q.fleet_latest(s, time.time() - FRESH)
    tags = {iid: member.tags for iid, member in state.fleet.members.items()}
    for key, value, metric, average, count in by_tag(latest, tags, keys):
        m.fleet_metric_by_tag.labels(key, value, metric).set(average)
        m.fleet_metric_by_tag_instances.labels(key, value, metric).set(count)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(state: State) -> Response:
    m = state.metrics
    if time.monotonic() - m.db_refreshed_at > _GAUGE_TTL:
        try:
            async with state.db.read() as s:
                counts = await activations_q.counts(s)
                live = await instances_q.count(s)
            for status in ("pending", "applying", "applied", "failed", "superseded", "cancelled"):
                m.activations.labels(status).set(counts.get(status, 0))
            m.instances.set(live)
            await _fleet_gauges(state)
            m.db_refreshed_at = time.monotonic()
        except Exception:
            pass  # the gauges keep their last values; the scrape itself must not fail
    return Response(m.render(), media_type=CONTENT_TYPE)
