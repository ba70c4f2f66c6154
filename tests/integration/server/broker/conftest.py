"""The broker's tests import their helpers from ``broker_support`` beside this file; the
``sandbox`` fixture is a sandbox host (the agent's glue) serving leases with the tiny driver."""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


import threading
from collections.abc import Iterator

import pytest
from broker_support import GiB, host, ledger
from server_harness import ServerProcess, wait_until
from tiny_driver import TinyDriver

from mien.agent.sandbox_host import SandboxHost
from mien.client import Client


@pytest.fixture
def sandbox(
    server: ServerProcess, admin: Client, tmp_path: Path
) -> Iterator[tuple[SandboxHost, Path]]:
    h = host(admin, server, "sbx-1")
    root = tmp_path / "sandboxes"
    glue = SandboxHost(
        h.client,
        TinyDriver(root),
        driver_name="tiny",
        offer=(4.0, 8 * GiB, 20 * GiB),
        poll_interval=0.1,
        usage_interval=0.3,
    )
    thread = threading.Thread(target=glue.run, daemon=True)
    thread.start()
    wait_until(lambda: "sbx-1" in ledger(admin), what="host offered")
    yield glue, root
    glue.stop()
    thread.join(10)
    h.client.close()
