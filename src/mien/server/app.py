"""The ASGI application of one replica: :func:`create_app` builds it from :class:`Settings`.

Used by ``mien server`` (under uvicorn), by the integration tests and by benchmarks. The
lifespan migrates the database, warms the fleet cache, starts the change notifier and the
background loops, and on the first start of a new database creates the admin token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from mien import __version__
from mien.server import bootstrap, errors, ui
from mien.server.api import docs_ui, health, routers
from mien.server.fastpath import AgentFastPath
from mien.server.limits import BodyLimitMiddleware
from mien.server.metrics import LatencyMiddleware
from mien.server.settings import Settings
from mien.server.state import ServerState
from mien.server.tx import Clock

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


def _error_bodies(schema: dict[str, Any]) -> None:
    """Document the error shape the server really sends: every 4xx/5xx is an ``ErrorBody``
    (FastAPI would document its own 422 shape, which mien replaces)."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for item in schema["paths"].values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses or operation.get("parameters") or operation.get("requestBody"):
                responses["422"] = {
                    "description": "invalid request: the problems name each field",
                    "content": {"application/json": {"schema": ref}},
                }
            if operation.get("requestBody"):
                responses.setdefault(
                    "400",
                    {
                        "description": "the body cannot be read (not UTF-8 JSON)",
                        "content": {"application/json": {"schema": ref}},
                    },
                )
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)


def _persona_documents(schema: dict[str, Any]) -> None:
    """Describe persona bodies with the persona language's own JSON Schema (``mien
    schema``), so API users and fuzzers see every field. Its ``$defs`` move into the
    components under a ``Persona`` prefix."""
    from mien.spec.schema import json_schema

    persona = json_schema()
    defs = persona.pop("$defs", {})
    for key in ("$schema", "$id"):
        persona.pop(key, None)

    def relink(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: relink(v) for k, v in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                out["$ref"] = "#/components/schemas/Persona" + ref.rsplit("/", 1)[1]
            return out
        if isinstance(node, list):
            return [relink(v) for v in node]
        return node

    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, body in defs.items():
        components["Persona" + name] = relink(body)
    persona = relink(persona)
    persona["description"] = (
        "A persona document in canonical form. The other spellings of the persona "
        "language (CamelCase keys, a persona wrapped in one key) are accepted as well, "
        "in JSON or YAML."
    )
    components["PersonaDocument"] = persona
    ref = {"$ref": "#/components/schemas/PersonaDocument"}
    for path in ("/api/v1/personas", "/api/v1/personas/{name}"):
        for method, operation in schema["paths"].get(path, {}).items():
            body = operation.get("requestBody")
            if method in ("post", "put") and body:
                body["content"]["application/json"]["schema"] = ref


def _announce(secret: str, path: Path) -> None:
    log.warning("first start: admin token %s (also written to %s, mode 0600)", secret, path)


class MienApp(FastAPI):
    """The FastAPI application, with the agents' fast path in front of everything.

    Long-polls and reports are routed to :class:`AgentFastPath` before the framework's own
    middleware stack (server errors, body limits and ours), which each add a coroutine
    frame to every request for its whole life: a parked long-poll went from thirteen frames
    to three, about 3 KiB less per connected agent.
    """

    fastpath: AgentFastPath

    def __call__(  # type: ignore[override]
        self, scope: Scope, receive: Receive, send: Send
    ) -> Awaitable[None]:
        # Not a coroutine itself: the handler's coroutine is handed back for the server to
        # await, one frame fewer per request (uvicorn is told the interface, asgi3, since
        # it would guess from this method's kind).
        handler = self.fastpath.route(scope)
        if handler is not None:
            return handler(scope, receive, send)
        return super().__call__(scope, receive, send)


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

    app = MienApp(
        title="mien",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served with local assets by docs_ui, not from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.mien = state
    errors.install(app)
    for router in routers():
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(docs_ui.router(API_PREFIX, f"{API_PREFIX}/openapi.json", app.title))
    ui.install(app)  # the operators' dashboard under /ui
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=lambda: state.metrics, prefix=API_PREFIX)
    # In front of all of the above: well-formed long-polls and reports (see MienApp).
    app.fastpath = AgentFastPath(super(MienApp, app).__call__, state=lambda: state)

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
            _error_bodies(schema)
            _persona_documents(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
