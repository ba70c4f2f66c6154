"""The server's whole schema: ``metadata`` with every table registered.

Each area's tables live in a module of their own (:mod:`mien.server.store.tables`, the
fleet's and the shared ``metadata``; ``tables_broker``, ``tables_telemetry``,
``tables_orchestrator``) and register with ``metadata`` when that module is imported. This
module imports them all, so whatever needs every table takes ``metadata`` from here, never
from :mod:`~mien.server.store.tables` alone: Alembic's environment (``migrations/env.py``)
and the test comparing the code's tables with what the migrations build.
"""

from __future__ import annotations

from mien.server.store import tables, tables_broker, tables_orchestrator, tables_telemetry

# Every module that defines tables; importing them is what registers their tables.
AREAS = (tables, tables_broker, tables_orchestrator, tables_telemetry)

metadata = tables.metadata
