"""Alembic environment: runs on the connection :mod:`mien.server.store.migrate` hands over."""

from __future__ import annotations

from alembic import context

from mien.server.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached when run by hand without a connection
    raise SystemExit("run migrations through `mien server` (mien.server.store.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
