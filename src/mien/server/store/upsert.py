"""What an upsert needs on both databases: the dialect's INSERT (with ``on_conflict_do_…``)
and "the newer of two rows' values". Used by the telemetry, newest-value and lease queries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert(session: AsyncSession, table: Any) -> Any:
    """``INSERT`` of the session's dialect, which has ``on_conflict_do_update/nothing``."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def newer(old_ts: Any, new_ts: Any, old: Any, new: Any) -> Any:
    """In ``SET``: ``new`` when its time is not older than the stored one, else ``old``."""
    return case((new_ts >= old_ts, new), else_=old)
