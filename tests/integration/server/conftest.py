"""Fixtures of the server's integration tests: a real ``mien server`` process on SQLite and
on PostgreSQL (a throwaway cluster, see ``tests/pg.py``), clients, simulated agents."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helpers beside this file and tests/pg.py are plain modules, not a package.
for _dir in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[2]):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

from server_harness import AgentFleet, ServerProcess  # noqa: E402

from mien.client import Client  # noqa: E402
from pg import PostgresProvider, PostgresUnavailable  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresProvider]:
    try:
        provider = PostgresProvider.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    yield provider
    provider.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the data directory, else a fresh PostgreSQL database."""
    if backend == "sqlite":
        return None
    provider: PostgresProvider = request.getfixturevalue("postgres")
    return provider.new_database()


@pytest.fixture
def server(tmp_path: Path, db_url: str | None) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", db_url).start()
    yield proc
    status = proc.stop()
    assert status == 0, f"server did not stop cleanly ({status}):\n{proc.log()}"
    assert "Traceback" not in proc.log(), proc.log()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[Client]:
    with server.client() as api:
        yield api


@pytest.fixture
def fleet() -> Iterator[AgentFleet]:
    agents = AgentFleet()
    yield agents
    agents.close()
