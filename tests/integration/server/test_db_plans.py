"""PostgreSQL plans each statement for its parameters. A fleet enrolling into a new database
grows its tables from empty, and the generic plan PostgreSQL adopts for a prepared statement
after five runs, made while a table was small (a whole-table scan), would otherwise be kept
for every later lookup as the table grows (seen: 2 ms instead of 0.1 ms per lookup at 8,000
instances, in bench/fleet_bench.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from mien.server.store.db import Database
from pg import PostgresProvider

pytestmark = pytest.mark.postgres


async def _plan_cache_mode(url: str) -> str:
    db = Database(url, pool_size=1)
    try:
        async with db.read() as session:
            return str((await session.execute(text("SHOW plan_cache_mode"))).scalar_one())
    finally:
        await db.dispose()


def test_every_connection_plans_statements_for_their_parameters(
    postgres: PostgresProvider,
) -> None:
    assert asyncio.run(_plan_cache_mode(postgres.new_database())) == "force_custom_plan"
