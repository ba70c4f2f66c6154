"""Fixtures of the operator CLI's integration tests: a real ``mien server`` process, the
real ``mien`` command run as a subprocess against it (:mod:`cli_harness`), and simulated
agents speaking the real protocol (``tests/integration/server/server_harness.py``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The helpers beside this file and the server tests' harness are plain modules.
for _dir in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "server"):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

from cli_harness import Cli  # noqa: E402
from server_harness import AgentFleet, ServerProcess, SimAgent  # noqa: E402

from mien.client import Client  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a test module (tests use their own names)."""
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data").start()
    yield proc
    status = proc.stop()
    assert status == 0, f"server did not stop cleanly ({status}):\n{proc.log()}"
    assert "Traceback" not in proc.log(), proc.log()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[Client]:
    with server.client() as api:
        yield api


@pytest.fixture
def cli(server: ServerProcess, tmp_path: Path) -> Cli:
    return Cli(server, tmp_path / "home")


@pytest.fixture
def fleet() -> Iterator[AgentFleet]:
    agents = AgentFleet()
    yield agents
    agents.close()


@pytest.fixture
def enroll(server: ServerProcess, admin: Client, fleet: AgentFleet) -> Callable[..., SimAgent]:
    """Enroll and start a simulated agent: ``enroll("vm-1", {"role": "web"}, fail_with=…)``."""

    def make(instance_id: str, tags: dict[str, str] | None = None, **kw: object) -> SimAgent:
        token = admin.create_token(f"e-{instance_id}", kind="enroll").token
        agent = SimAgent(server.url, **kw)  # type: ignore[arg-type]
        fleet.call(agent.enroll(token, tags or {}, instance_id=instance_id, hostname=instance_id))
        return fleet.start(agent)

    return make
