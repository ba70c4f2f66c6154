"""The operators' dashboard under ``/ui``: server-rendered pages over the same route
functions the API serves, a session signed in with an API token, CSRF tokens on every
form, plots drawn as inline SVG and a rollout followed live through server-sent events.

:func:`install` mounts it on the application (:func:`mien.server.app.create_app`). The
pages: fleet (``/ui/``), an instance, personas and one persona (versions, diff, uses),
bindings (create, edit, priority, delete), a rollout (``/ui/rollouts/{binding|persona}/NAME``
with ``…/events``), the audit log and its verification, the broker's leases and sandbox hosts
(``/ui/leases``), the orchestrator (``/ui/orchestrator``: fleet rules, providers and their
calls, the fleet policy). Templates and the one stylesheet
and script are files in this package; nothing is built and nothing is fetched from
elsewhere. See docs/dashboard.md.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from mien.server.ui.render import STATIC
from mien.server.ui.sessions import Sessions

PREFIX = "/ui"


def routers() -> list[APIRouter]:
    """Every router of the dashboard, each mounted under :data:`PREFIX`."""
    from mien.server.ui import (
        audit_pages,
        binding_pages,
        fleet_pages,
        lease_pages,
        login,
        orchestrator_pages,
        persona_pages,
        rollouts,
    )

    modules = (
        login,
        fleet_pages,
        persona_pages,
        binding_pages,
        rollouts,
        audit_pages,
        lease_pages,
        orchestrator_pages,
    )
    return [module.router for module in modules]


def install(app: FastAPI) -> None:
    app.state.mien_ui_sessions = Sessions()
    for router in routers():
        app.include_router(router, prefix=PREFIX)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(STATIC)), name="ui-static")
