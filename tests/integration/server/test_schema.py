"""The schema is written twice, in the Alembic migrations (``store/migrations/``) and in
``store/tables*.py`` (what the queries use, gathered by ``store/schema.py``): Alembic's own
autogenerate comparison, run against a database the migrations just built, finds no
difference on SQLite or PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Index, MetaData, String

from mien.server.store import migrate
from mien.server.store.db import Database
from mien.server.store.schema import metadata


def _differences(connection: Connection, target: MetaData) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True},
    )
    return list(compare_metadata(context, target))


def _drifted() -> MetaData:
    """The code's tables with one column, one type and one index more or different: what a
    change to the tables without a migration looks like."""
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    personas = drifted.tables["personas"]
    personas.append_column(Column("owner", String(63)))
    Index("ix_personas_owner", personas.c.owner)
    return drifted


async def _migrated_differences(url: str) -> tuple[list[Any], list[Any]]:
    db = Database(url)
    try:
        await migrate.upgrade(db)
        async with db.engine.connect() as conn:
            same = await conn.run_sync(_differences, metadata)
            drifted = await conn.run_sync(_differences, _drifted())
        return same, drifted
    finally:
        await db.engine.dispose()


def test_migrations_build_exactly_the_tables_the_code_uses(
    backend: str, db_url: str | None, tmp_path: Path
) -> None:
    url = db_url or f"sqlite+aiosqlite:///{tmp_path / 'mien.db'}"
    same, drifted = asyncio.run(_migrated_differences(url))
    assert same == []
    # The comparison sees a drift when there is one (a column and its index, here).
    assert {d[0] for d in drifted} == {"add_column", "add_index"}, drifted
