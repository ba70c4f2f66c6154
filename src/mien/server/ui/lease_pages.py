"""The dashboard's leases page (``/ui/leases``): the broker's leases with their persona,
holder, state and its reason, host, limits and usage, filtered by state, persona and
holder; the sandbox hosts' capacity, used against offered; and a form to release a lease.
Also the leases of one sandbox host, shown on its instance page (:func:`host_section`).

Every read and the release call the broker's own route functions
(:mod:`mien.server.api.broker`, :mod:`mien.server.api.broker_host`) after the same role
check those routes make, so the page shows exactly what the API would: a person (``user``,
``viewer``, ``operator``) sees only the leases they hold, an admin everyone's; the hosts'
ledger is for operators; a lease may be released by its holder or an admin
(:func:`mien.server.broker.identity.may_manage`, which the release route applies itself).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from mien.protocol.broker import Lease
from mien.server.api import broker as broker_api
from mien.server.api import broker_host as hosts_api
from mien.server.api.deps import UUID_RE, get_state
from mien.server.broker import identity
from mien.server.errors import ApiError
from mien.server.store import leases as q
from mien.server.ui import sessions as ui
from mien.server.ui.render import UiRoute, page
from mien.server.ui.svg import bar_chart

router = APIRouter(route_class=UiRoute, include_in_schema=False)

# The role lists of the broker's routes: ``Person`` for leases, ``Operator`` for hosts.
PEOPLE = ui.LEASES
HOSTS = ("operator",)
STATES = (*q.OPEN, *q.FINAL)
GiB = 1024**3


def size(value: int | float | None) -> str:
    """Bytes for a person: ``1.5 GiB``, ``200 MiB``."""
    if value is None:
        return "–"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            text = f"{amount:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        amount /= 1024
    return str(value)  # pragma: no cover (the loop always returns)


async def _leases(request: Request, session: ui.Session, *, ended: bool) -> list[Lease]:
    """The leases this session's token would get from ``GET /broker/leases?all=true``."""
    ui.require(session, PEOPLE)
    listing = await broker_api.list_leases(
        get_state(request), session.principal, all_users=True, ended=ended
    )
    return listing.items


async def _hosts(request: Request, session: ui.Session) -> list[dict[str, Any]] | None:
    """The ledger (``GET /broker/hosts``), or ``None`` when the role may not see it."""
    if not session.may(HOSTS):
        return None
    listing = await hosts_api.list_hosts(get_state(request), session.principal)
    return listing.items


def capacity_charts(hosts: list[dict[str, Any]]) -> list[Markup]:
    """One bar chart per resource: each host's share in use and what it offers."""
    charts = []
    for key, title, unit, scale in (
        ("cpu", "CPU cores used / offered", "", 1),
        ("memory", "memory used / offered", " GiB", GiB),
        ("storage", "storage used / offered", " GiB", GiB),
    ):
        bars: list[tuple[str, float]] = []
        for h in hosts:
            name = h["instance_id"] + ("" if h["alive"] else " (dead)")
            bars.append((f"{name} used", h[f"used_{key}"] / scale))
            bars.append((f"{name} total", h[key] / scale))
        charts.append(bar_chart(bars, title=title, unit=unit))
    return charts


def releasable(session: ui.Session, lease: Lease) -> bool:
    """Whether the page offers a release button: the release route's own rule."""
    return lease.state in q.OPEN and identity.may_manage(session.principal, lease.holder)


@router.get("/leases")
async def leases(
    request: Request,
    state_: Annotated[str | None, Query(alias="state", max_length=30)] = None,
    persona: Annotated[str | None, Query(max_length=63)] = None,
    holder: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    session = await ui.current(request)
    if state_ and state_ not in STATES:
        raise ApiError(422, "invalid_request", f"query.state: one of {', '.join(STATES)}")
    everyone = await _leases(request, session, ended=True)
    items = [
        x
        for x in everyone
        if (not state_ or x.state == state_)
        and (not persona or x.persona == persona)
        and (not holder or x.holder == holder)
    ]
    hosts = await _hosts(request, session)
    return page(
        session,
        "leases.html",
        leases=items,
        releasable={x.id: releasable(session, x) for x in items},
        states=STATES,
        personas=sorted({x.persona for x in everyone}),
        holders=sorted({x.holder for x in everyone}),
        filters={"state": state_ or "", "persona": persona or "", "holder": holder or ""},
        everyone=session.principal.role == "admin",
        hosts=hosts,
        charts=capacity_charts(hosts) if hosts else [],
        size=size,
    )


@router.post("/leases/{lease_id}/release")
async def release(request: Request, lease_id: Annotated[str, Path(pattern=UUID_RE)]) -> Response:
    session = await ui.current(request)
    await ui.checked_form(request, session)
    ui.require(session, PEOPLE)
    await broker_api.release_lease(lease_id, get_state(request), session.principal)
    return RedirectResponse("/ui/leases", status_code=303)


async def host_section(request: Request, session: ui.Session, instance_id: str) -> dict[str, Any]:
    """What an instance page shows of a sandbox host: its ledger line (operators) and the
    leases on it this session may see (none when the instance is not a sandbox host)."""
    hosts = await _hosts(request, session)
    ledger = next((h for h in hosts or [] if h["instance_id"] == instance_id), None)
    on_host: list[Lease] = []
    if session.may(PEOPLE):
        on_host = [x for x in await _leases(request, session, ended=True) if x.host == instance_id]
    return {
        "sandbox_host": ledger,
        "host_leases": on_host,
        "host_charts": capacity_charts([ledger]) if ledger else [],
        "host_releasable": {x.id: releasable(session, x) for x in on_host},
        "size": size,
    }
