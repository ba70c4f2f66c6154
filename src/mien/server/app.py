"""The ASGI application of one replica: :func:`create_app` builds it from :class:`Settings`.

Used by ``mien server`` (under uvicorn), by the integration tests and by benchmarks. The
lifespan migrates the database, warms the fleet cache, starts the change notifier and the
background loops, and on the first start of a new database creates the admin token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mien import __version__
from mien.server import bootstrap, errors
from mien.server.api import health, routers
from mien.server.limits import BodyLimitMiddleware
from mien.server.metrics import LatencyMiddleware
from mien.server.settings import Settings
from mien.server.state import Clock, ServerState

log = logging.getLogger("mien.server")

API_PREFIX = "/api/v1"
DESCRIPTION = """\
The Persona Manager Service of **mien**: personas (versioned, immutable per version),
instances and their tags, bindings (tag selector → persona, with overrides), explicit
activations, remote commands, and an append-only hash-chained audit log. Agents speak the
protocol under `/agent` with their instance's own token. Every request needs
`Authorization: Bearer <token>` except `/healthz` and `/metrics`. Errors are
`{"detail", "code", "problems"}`. See docs/api.md.
"""


def _announce(secret: str, path: Path) -> None:
    log.warning("first start: admin token %s (also written to %s, mode 0600)", secret, path)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    on_admin_token: Callable[[str, Path], None] | None = None,
) -> FastAPI:
    """A replica serving ``settings``. ``on_admin_token(secret, file)`` is called once, when
    a new database gets its first admin token (default: logged)."""
    state = ServerState(settings, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            created = await bootstrap.ensure_admin(state)
            if created is not None:
                (on_admin_token or _announce)(*created)
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="mien",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.mien = state
    errors.install(app)
    for router in routers():
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=lambda: state.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}]
            for path in ("/healthz", "/metrics"):
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
