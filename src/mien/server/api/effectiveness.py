"""``GET /personas/{name}/effectiveness``: how well a persona version's rules work, from
the adaptation events and metric samples its instances' agents sent.

``version=V`` reports one version (default: the latest), ``compare=V1,V2`` two side by side
in one answer; ``since`` bounds the range (default 7 days). The route reads the persona
version (composed with its ``extends`` parents, for the rules it inherits), the events
(:mod:`mien.server.store.effectiveness`) and the sample windows around each applied
action, and hands them to :mod:`mien.server.effectiveness`. Also used by the dashboard's
persona page.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from mien.protocol import ErrorBody
from mien.protocol.effectiveness import (
    ActionCounts,
    Effectiveness,
    MetricEffect,
    RuleEffect,
    VersionEffect,
)
from mien.server import effectiveness as calc
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import NAME_RE, State, Viewer
from mien.server.auth import Principal
from mien.server.errors import ApiError, not_found
from mien.server.state import ServerState
from mien.server.store import effectiveness as q
from mien.server.store import personas as personas_q
from mien.server.telemetry import parse_duration

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/personas",
    tags=["personas"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)

DEFAULT_SINCE = "7d"
MAX_COMPARE = 4


def _since(text: str | None) -> float:
    try:
        return parse_duration(text or DEFAULT_SINCE)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"query.since: {exc}") from None


def _compare(text: str) -> list[int]:
    parts = [p.strip().removeprefix("v") for p in text.split(",")]
    if not 2 <= len(parts) <= MAX_COMPARE or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ApiError(
            422,
            "invalid_request",
            f"query.compare: {text!r}: give 2 to {MAX_COMPARE} version numbers, "
            "comma-separated (compare=1,2)",
        )
    return list(dict.fromkeys(int(p) for p in parts))


def _rules(state: ServerState, name: str, document: dict[str, Any]) -> list[calc.RuleInfo]:
    """The rules of a stored version, composed with its ``extends`` parents (their latest
    versions, as the server composes it for instances)."""
    from mien.spec.compose import chain_of, compose
    from mien.spec.errors import SpecError
    from mien.spec.layers import Layer

    personas = state.fleet.personas

    def find(parent_name: str, child: Layer) -> Layer:
        parent = personas.get(parent_name)
        if parent is None:
            raise SpecError(
                [child.problem(("extends",), f"persona {parent_name!r} is not on this server")]
            )
        label = f"{parent_name} v{parent.version}"
        return Layer("persona", label, parent.document, persona=parent_name)

    leaf = Layer("persona", name, dict(document), persona=name)
    try:
        persona = compose(chain_of(leaf, find)).persona
    except SpecError as exc:
        raise ApiError(409, "conflict", f"persona {name!r} does not compose here: {exc}") from None
    return calc.rules_of(persona)


def _wire(rule: calc.RuleEffect) -> RuleEffect:
    m = rule.metric
    return RuleEffect(
        rule=rule.rule,
        for_seconds=rule.for_seconds,
        fires=rule.fires,
        still_firing=rule.still_firing,
        firing_seconds=rule.firing_total,
        firing_median=rule.firing_median,
        actions=ActionCounts(**rule.actions),
        metric=MetricEffect(
            metric=m.metric,
            window=m.window,
            measured=m.measured,
            before=m.before,
            after=m.after,
            change=m.change,
            insufficient=m.insufficient,
            points=[list(p) for p in m.points],
        ),
        insufficient=rule.insufficient,
    )


@router.get(
    "/{name}/effectiveness",
    response_model=Effectiveness,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="How well a persona version's rules work: fires, actions, the metric before/after",
)
async def persona_effectiveness(
    state: State,
    who: Viewer,
    name: Annotated[str, Path(pattern=NAME_RE, description="persona name")],
    version: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="one version (default: the latest)")
    ] = None,
    compare: Annotated[
        str | None,
        Query(max_length=100, description="2 to 4 versions side by side: compare=1,2"),
    ] = None,
    since: Annotated[
        str | None, Query(max_length=20, description="how far back: 1h, 2d (default 7d)")
    ] = None,
) -> Effectiveness:
    return await effectiveness(state, who, name, version=version, compare=compare, since=since)


async def effectiveness(
    state: ServerState,
    who: Principal,
    name: str,
    *,
    version: int | None = None,
    compare: str | None = None,
    since: str | None = None,
) -> Effectiveness:
    """The answer of the route (also called by the dashboard)."""
    if version is not None and compare is not None:
        raise ApiError(422, "invalid_request", "query.version: give version or compare, not both")
    back = _since(since)
    async with state.db.read() as session:
        row = await personas_q.get(session, name, include_deleted=True)
        if row is None:
            raise not_found(f"persona {name!r}")
        wanted = _compare(compare) if compare else [version or row.latest_version]
        documents = {}
        for v in wanted:
            found = await personas_q.get_version(session, name, v)
            if found is None:
                raise not_found(f"persona {name!r} version {v}")
            documents[v] = found.document
    until = time.time()
    start = until - back
    async with state.db.read() as session:
        events, truncated = await q.persona_events(session, name, start, until)
    answers = []
    for v in wanted:
        rules = _rules(state, name, documents[v])
        mine = [e for e in events if e.version == v]
        samples: dict[calc.Measure, calc.Sides] = {}
        async with state.db.read() as session:
            for m in calc.measures(rules, mine, until):
                before = await q.window_values(
                    session, m.instance, m.metric, *m.before, side="before"
                )
                after = await q.window_values(session, m.instance, m.metric, *m.after, side="after")
                samples[m] = calc.Sides(before, after)
        answers.append(
            VersionEffect(
                version=v,
                instances=len({e.instance for e in mine}),
                events=len(mine),
                rules=[_wire(r) for r in calc.report(rules, mine, samples, until)],
            )
        )
    return Effectiveness(
        persona=name,
        since=datetime.fromtimestamp(start, UTC),
        until=datetime.fromtimestamp(until, UTC),
        truncated=truncated,
        versions=answers,
    )
