"""The dashboard's orchestrator page (``/ui/orchestrator``), read-only: the fleet rules in
force with where each stands (phase, since when, the note and values of its last
evaluation, its newest journalled action) and which replica leads their evaluation; the
declared providers (whether a secret is set, never the secret) and the fleet's newest
provider calls, those in trouble first; the fleet policy in force.

Every read calls the route functions the API serves (:mod:`mien.server.api.fleet_rules`,
:mod:`mien.server.api.providers`, :mod:`mien.server.api.policy`); each of them needs the
viewer role, which the page checks first with the API's own refusal, so the page and
``mien fleet-rule list``, ``mien provider list`` and ``mien policy show`` never disagree.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from mien.protocol.fleet_rules import FleetRuleDetail
from mien.protocol.providers import ProviderCall
from mien.server.api import fleet_rules as rules_api
from mien.server.api import policy as policy_api
from mien.server.api import providers as providers_api
from mien.server.api.deps import get_state
from mien.server.api.providers import CallStatus
from mien.server.errors import ApiError
from mien.server.ui import sessions as ui
from mien.server.ui.binding_pages import selector_text
from mien.server.ui.render import UiRoute, page

router = APIRouter(route_class=UiRoute, include_in_schema=False)

CALLS = 50
"""How many of the newest provider calls the page lists (and at most as many in trouble)."""
TROUBLE: tuple[CallStatus, ...] = ("failing", "failed", "refused")
"""Call statuses an operator should look at: listed first however old, and marked."""


async def _rules(request: Request, session: ui.Session) -> list[FleetRuleDetail]:
    """Each rule as ``GET /fleet-rules/NAME`` gives it (the list lacks the actions)."""
    state = get_state(request)
    listing = await rules_api.list_fleet_rules(state, session.principal)
    out = []
    for rule in listing.items:
        try:
            out.append(await rules_api.get_fleet_rule(rule.name, state, session.principal))
        except ApiError as exc:  # deleted between the two reads: no longer in force
            if exc.status != 404:
                raise
    return out


def trouble_first(calls: list[ProviderCall]) -> list[ProviderCall]:
    """Calls in trouble first, each group newest first as the API gives them."""
    return sorted(calls, key=lambda c: c.status not in TROUBLE)


def values_text(values: dict[str, Any], size: int = 300) -> str:
    """``avg.cpu_percent=71.5, count=3``: the aggregates a rule last saw, an action's
    detail or a call's params, cut at ``size`` characters (an action on many instances
    lists them all)."""
    text = ", ".join(
        f"{k}={v if isinstance(v, str | int | float) else json.dumps(v, sort_keys=True)}"
        for k, v in sorted(values.items())
    )
    return (text[: size - 1] + "…" if len(text) > size else text) or "–"


def policy_summary(document: dict[str, Any] | None) -> dict[str, Any]:
    """What the page says of a policy document: its description, its trust caps and
    switching entries as short lines, its noncompliance window."""
    doc = document or {}
    trust = [
        f"{selector_text(e.get('selector') or {}) or 'every instance'}: "
        + ", ".join(f"{risk} ≤ {level}" for risk, level in (e.get("max") or {}).items())
        for e in doc.get("trust") or []
    ]
    # No list: the personas' access controls alone decide; an empty one: nobody switches.
    switching = None
    if doc.get("switching") is not None:
        switching = [
            f"{selector_text(e.get('selector') or {}) or 'every instance'}: "
            + "; ".join(
                f"{field} {', '.join(map(str, e[field]))}"
                for field in ("users", "groups", "personas")
                if e.get(field)
            )
            for e in doc["switching"]
        ]
    return {
        "description": doc.get("description"),
        "trust": trust,
        "switching": switching,
        "window": doc.get("noncompliance_window"),
    }


@router.get("/orchestrator")
async def orchestrator(request: Request) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)  # every route this page reads needs Viewer
    state = get_state(request)
    who = session.principal
    status = await rules_api.orchestrator_status(state, who)
    rules = await _rules(request, session)
    providers = (await providers_api.list_providers(state, who)).items
    # Calls in trouble however old (up to CALLS of them), then the newest others.
    troubled_calls = (
        await providers_api.list_provider_calls(state, who, limit=CALLS, status=list(TROUBLE))
    ).items
    seen = {c.id for c in troubled_calls}
    newest = (await providers_api.list_provider_calls(state, who, limit=CALLS)).items
    calls = troubled_calls + [c for c in newest if c.id not in seen]
    policy = await policy_api.get_policy(Response(), state, who)
    return page(
        session,
        "orchestrator.html",
        lead=status,
        rules=rules,
        providers=providers,
        calls=trouble_first(calls),
        trouble=TROUBLE,
        trouble_text=f"{', '.join(TROUBLE[:-1])} or {TROUBLE[-1]}",
        troubled=sum(c.status in TROUBLE for c in calls),
        newest=CALLS,
        policy=policy,
        summary=policy_summary(policy.document),
        selector_text=selector_text,
        values_text=values_text,
    )
