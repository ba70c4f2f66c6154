"""The dashboard's telemetry plots: an instance's metric series (one line chart per
metric, with its min/max/last) and its rules' latest transitions, for the instance page;
the fleet's latest average of one metric by persona, for the fleet page; a persona
version's effectiveness (a row per rule and a before/after plot of its served metric), for
the persona page.

Nothing is computed twice: the series are the answer of the metrics route itself
(:func:`mien.server.api.telemetry.instance_metrics`), the rule transitions that of the
events route (:func:`mien.server.api.telemetry.list_events`), and the fleet averages are
:func:`mien.server.api.health.fleet_averages`, the ones ``/metrics`` exports, and the
effectiveness that of :func:`mien.server.api.effectiveness.effectiveness`. Used by
:mod:`mien.server.ui.fleet_pages` and :mod:`mien.server.ui.persona_pages`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup

from mien.server.api import effectiveness as effectiveness_api
from mien.server.api import health as health_api
from mien.server.api import telemetry as telemetry_api
from mien.server.auth import Principal
from mien.server.errors import ApiError
from mien.server.state import ServerState
from mien.server.telemetry import FLEET_GAUGES
from mien.server.ui.svg import Series, bar_chart, line_chart

RANGES = ("1h", "6h", "1d", "7d")
"""The ranges the instance page offers (``since``); the first is the default."""
RULE_PAGES = 5
"""Pages of rule events read for one range (1000 each): enough for any sane rule set."""


def _range(since: str | None) -> str:
    if not since:
        return RANGES[0]
    if since not in RANGES:
        raise ApiError(422, "invalid_request", f"query.since: one of {', '.join(RANGES)}")
    return since


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


async def instance_section(
    state: ServerState, who: Principal, instance_id: str, since: str | None
) -> dict[str, Any]:
    """The instance page's telemetry: ``metrics`` (name, chart, min, max, last, points),
    ``rules`` (rule, state, when: the newest transition of each rule in the range) and the
    ``since`` chosen among :data:`RANGES`."""
    chosen = _range(since)
    answer = await telemetry_api.instance_metrics(
        state, who, instance_id, name=None, since=chosen, step=None
    )
    metrics = []
    for s in answer.series:
        points = [(p[0], p[1]) for p in s.points]
        chart: Markup = line_chart([Series(s.name, points)], title=f"{s.name}, last {chosen}")
        metrics.append(
            {
                "name": s.name,
                "chart": chart,
                "min": _number(s.min),
                "max": _number(s.max),
                "last": _number(s.last),
                "points": len(points),
            }
        )
    newest: dict[str, tuple[str, datetime]] = {}
    after: str | None = None
    for _ in range(RULE_PAGES):
        found = await telemetry_api.list_events(
            state,
            who,
            limit=1000,
            instance=instance_id,
            since=chosen,
            kind="adapt.rule",
            after=after,
        )
        for event in found.items:
            rule = str(event.detail.get("rule", "?"))
            newest[rule] = (event.kind.removeprefix("adapt.rule").lstrip(".") or "?", event.at)
        after = found.next
        if after is None:
            break
    rules = [{"rule": r, "state": st, "at": at} for r, (st, at) in sorted(newest.items())]
    return {
        "metrics": metrics,
        "rules": rules,
        "since": chosen,
        "ranges": RANGES,
        "step": answer.step,
        "source": answer.source,
    }


async def fleet_section(state: ServerState, metric: str | None) -> dict[str, Any]:
    """The fleet page's ``metric_chart``: the latest average of one of
    :data:`FLEET_GAUGES` per applied persona (``metric``, default the first), with the
    ``gauges`` to choose from."""
    chosen = metric or FLEET_GAUGES[0]
    if chosen not in FLEET_GAUGES:
        raise ApiError(422, "invalid_request", f"query.metric: one of {', '.join(FLEET_GAUGES)}")
    rows = await health_api.fleet_averages(state)
    bars = sorted((persona, avg) for persona, name, avg, _n in rows if name == chosen)
    title = f"{chosen}: latest average by applied persona"
    return {
        "metric": chosen,
        "gauges": FLEET_GAUGES,
        "metric_chart": bar_chart(bars, title=title),
    }


EFFECT_SINCE = "7d"
"""The range of the persona page's effectiveness section."""


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    whole = round(value)
    if whole < 120:
        return f"{whole}s"
    return f"{whole // 60}m" if whole < 7200 else f"{whole / 3600:.1f}h"


async def persona_section(
    state: ServerState, who: Principal, name: str, version: int
) -> dict[str, Any]:
    """The persona page's ``effectiveness`` of one version over :data:`EFFECT_SINCE`:
    ``rules`` (a row of text per rule, and a before/after chart of its served metric per
    measured action) or ``problem`` (why there is none)."""
    try:
        answer = await effectiveness_api.effectiveness(
            state, who, name, version=version, since=EFFECT_SINCE
        )
    except ApiError as exc:
        return {"since": EFFECT_SINCE, "problem": exc.detail, "rules": []}
    (found,) = answer.versions
    rules = []
    for r in found.rules:
        m = r.metric
        if m.insufficient is None and m.change is not None:
            sign = "+" if m.change > 0 else ""
            moved = f"{_number(m.before)} → {_number(m.after)} ({sign}{_number(m.change)})"
        else:
            moved = m.insufficient or "insufficient data"
        chart = None
        if m.points and m.metric:
            chart = line_chart(
                [
                    Series(
                        f"before (median of {_seconds(m.window)})", [(p[0], p[1]) for p in m.points]
                    ),
                    Series(
                        f"after (median of {_seconds(m.window)})", [(p[0], p[2]) for p in m.points]
                    ),
                ],
                title=f"{r.rule}: {m.metric} around each action",
            )
        rules.append(
            {
                "rule": r.rule,
                "fires": r.fires,
                "firing": _seconds(r.firing_seconds) if r.fires else "–",
                "median": _seconds(r.firing_median),
                "actions": r.actions,
                "metric": m.metric or "–",
                "moved": moved,
                "chart": chart,
            }
        )
    return {
        "since": EFFECT_SINCE,
        "problem": None,
        "rules": rules,
        "instances": found.instances,
        "version": found.version,
    }
