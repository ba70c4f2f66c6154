"""The whole path with the real ``local`` sandbox driver (bubblewrap + cgroups): a user
asks for the seed's example persona through ``mien app``, the sandbox host's glue builds
it with the driver, a command runs inside with the flat application settings in its
environment, and release destroys the sandbox and frees the ledger.

Skips, saying why, without root or the cached Debian base root the sandbox tests build
(``~/.cache/mien-test-images``; see tests/integration/agent/sandbox/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_support import GiB, host, ledger, mien
from server_harness import ServerProcess, wait_until

from mien.agent.sandbox_host import SandboxHost
from mien.client import Client

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "personas" / "marketing-app.json"
CACHE = Path.home() / ".cache" / "mien-test-images"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def local_driver() -> Iterator[object]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    from mien.agent.sandbox import roots
    from mien.agent.sandbox.local import LocalDriver

    recipe = roots.Recipe()
    if not (CACHE / f"base-{recipe.key()}").is_dir():
        pytest.skip("no cached Debian base root (run the sandbox driver tests once to build it)")
    runs = Path(tempfile.mkdtemp(prefix="mien-broker-test-", dir="/run"))
    runs.chmod(0o711)
    driver = LocalDriver(recipe, cache=CACHE, runs=runs)
    missing = driver.available()
    if missing:
        pytest.skip(f"local sandbox driver: {missing}")
    yield driver
    shutil.rmtree(runs, ignore_errors=True)


def test_the_seed_example_provisions_runs_and_releases_with_the_local_driver(
    server: ServerProcess, admin: Client, local_driver: object
) -> None:
    document = json.loads(EXAMPLE.read_text())
    # The example names host paths and a network endpoint of its own site: here the
    # sandbox gets neither (the driver tests cover mounts and egress).
    document["access_controls"] = {"users": ["group:marketing"]}
    document["required_applications"] = []  # packages: the driver tests install them
    admin.create_persona(document)
    h = host(admin, server, "sbx-local")
    glue = SandboxHost(
        h.client,
        local_driver,
        driver_name="local",
        offer=(2.0, 4 * GiB, 20 * GiB),  # type: ignore[arg-type]
        poll_interval=0.1,
        usage_interval=0.5,
    )
    thread = threading.Thread(target=glue.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: "sbx-local" in ledger(admin), what="host offered")
        token = admin.create_token("ann", role="user").token
        admin._http.post(
            "/api/v1/broker/groups/marketing/members", json={"users": ["ann"]}
        ).raise_for_status()
        started = time.monotonic()
        asked = mien(server, token, "app", "request", "marketing-report-creator", "--wait")
        assert asked.returncode == 0, asked.stderr
        lease_id = asked.stdout.strip()
        print(f"time to ready with the local driver: {time.monotonic() - started:.2f}s")
        ran = mien(
            server,
            token,
            "app",
            "run",
            lease_id,
            "--",
            "sh",
            "-c",
            'echo "$database_connection_string"; cat /etc/persona/application.env',
        )
        assert ran.returncode == 0, ran.stderr
        lines = ran.stdout.splitlines()
        assert lines[0] == "postgresql://reports@warehouse.internal:5432/marketing"
        assert "ui_preferences=dark" in ran.stdout
        assert ledger(admin)["sbx-local"]["used_memory"] == 512 * 2**20
        released = mien(server, token, "app", "release", lease_id)
        assert released.returncode == 0, released.stderr
        wait_until(lambda: not local_driver.list(), timeout=30, what="sandbox destroyed")  # type: ignore[attr-defined]
        assert ledger(admin)["sbx-local"]["used_memory"] == 0
    finally:
        glue.stop()
        thread.join(30)
        h.client.close()
