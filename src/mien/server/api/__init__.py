"""The REST API under ``/api/v1``: one module per resource, each a router.

Routes are thin: parse, authorise (:mod:`mien.server.api.deps`), call one function of the
store inside :meth:`~mien.server.state.ServerState.transaction`, shape the response with
the wire types of :mod:`mien.protocol`.
"""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from mien.server.api import (
        activations,
        agent,
        audit,
        bindings,
        broker,
        broker_host,
        broker_shell,
        commands,
        defaults,
        effectiveness,
        fleet_rules,
        instances,
        personas,
        policy,
        providers,
        sources,
        status,
        switching,
        telemetry,
        tokens,
    )

    return [
        effectiveness.router,
        personas.router,
        defaults.router,
        instances.router,
        activations.router,
        bindings.router,
        commands.router,
        tokens.router,
        agent.router,
        audit.router,
        switching.router,
        broker.router,
        broker_host.router,
        broker_shell.router,
        telemetry.router,
        policy.router,
        sources.router,
        status.router,
        fleet_rules.router,
        providers.router,
    ]
