"""The sandbox host's glue (:mod:`mien.agent.sandbox_host`) against a real server, driven
through ``mien app`` as a user would.

The environments here come from the tiny driver of tiny_driver.py (a directory per lease,
commands run with subprocess, an int exit status as the first interface had it), so the
glue's own logic — failures, idle reclaim, adoption — runs in seconds; the same path with
the real ``local`` driver is test_host_local_driver.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from broker_support import GiB, app_persona, host, ledger, mien, user
from server_harness import ServerProcess, wait_until
from tiny_driver import TinyDriver

from mien.agent.sandbox_host import SandboxHost
from mien.client import Client
from mien.client import broker as ops


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the glue is the same on either database; admission is tested on both


def test_request_run_status_release_through_the_cli(
    server: ServerProcess, admin: Client, sandbox: tuple[SandboxHost, Path]
) -> None:
    _glue, root = sandbox
    admin.create_persona(
        app_persona("notes", cpu=1, application_configuration={"db_url": "sqlite:///x"})
    )
    token = admin.create_token("alice", role="user").token
    asked = mien(server, token, "app", "request", "notes", "--wait")
    assert asked.returncode == 0, asked.stderr
    lease_id = asked.stdout.strip()
    assert "ready on sbx-1" in asked.stderr
    assert (root / lease_id / "persona.json").is_file()

    ran = mien(
        server, token, "app", "run", lease_id, "--", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (3, "out\n", "err\n")
    shell = mien(server, token, "app", "shell", lease_id, "--", "sh", stdin="echo one\nls\n")
    assert shell.returncode == 0 and shell.stdout == "one\npersona.json\n", shell

    listed = mien(server, token, "app", "list")
    assert lease_id in listed.stdout and "ready" in listed.stdout, listed
    wait_until(lambda: _usage(admin, token, lease_id), what="usage reported")
    status = mien(server, token, "app", "status", lease_id, "--output", "json")
    data = json.loads(status.stdout)
    assert data["state"] == "ready" and data["host"] == "sbx-1"
    assert data["usage"]["cpu_seconds"] == 0.5
    assert ["sh", "-c", "echo out; echo err >&2; exit 3"] in data["usage"]["processes"]
    assert data["usage"]["oom_killed"] is False
    assert "OOM" not in mien(server, token, "app", "status", lease_id).stdout
    assert mien(server, token, "app", "run", lease_id, "--", "touch", "oom").returncode == 0
    wait_until(
        lambda: "killed (OOM)" in mien(server, token, "app", "status", lease_id).stdout,
        what="the OOM kill shown",
    )

    released = mien(server, token, "app", "release", lease_id)
    assert released.returncode == 0 and "released" in released.stderr
    wait_until(lambda: not (root / lease_id).exists(), what="sandbox destroyed")
    again = mien(server, token, "app", "release", lease_id)
    assert again.returncode == 1 and "already ended (released)" in again.stderr
    assert "Traceback" not in again.stderr
    late = mien(server, token, "app", "run", lease_id, "--", "true")
    assert late.returncode == 1 and "has ended (released)" in late.stderr
    assert ledger(admin)["sbx-1"]["used_cpu"] == 0


def _usage(admin: Client, token: str, lease_id: str) -> bool:
    with Client(admin.server, token) as me:
        lease = me.send(ops.get_lease(lease_id))
    return lease.usage is not None and len(lease.usage.processes) >= 2


def test_a_package_that_will_not_install_fails_the_lease_and_leaves_nothing(
    server: ServerProcess, admin: Client, sandbox: tuple[SandboxHost, Path]
) -> None:
    _glue, root = sandbox
    admin.create_persona(app_persona("broken", required_applications=["missing-thing"]))
    token = admin.create_token("bob", role="user").token
    asked = mien(server, token, "app", "request", "broken", "--wait")
    assert asked.returncode == 1
    assert "failed" in asked.stderr and "Unable to locate package missing-thing" in asked.stderr
    assert list(root.iterdir()) == [] if root.exists() else True
    assert ledger(admin)["sbx-1"]["used_cpu"] == 0


def test_idle_lease_is_reclaimed(
    server: ServerProcess, admin: Client, sandbox: tuple[SandboxHost, Path]
) -> None:
    glue, root = sandbox
    glue.idle_timeout = 1.0
    admin.create_persona(app_persona("idle"))
    with user(admin, server, "carol") as carol:
        lease = carol.send(ops.request_lease("idle"))
        wait_until(
            lambda: carol.send(ops.get_lease(lease.id)).state == "released", what="reclaimed"
        )
        ended = carol.send(ops.get_lease(lease.id))
    assert ended.reason and "idle for 1s" in ended.reason
    assert not (root / lease.id).exists()
    assert ledger(admin)["sbx-1"]["used_cpu"] == 0


def test_agent_run_sandbox_host_says_clearly_when_no_driver_can_be_loaded(
    server: ServerProcess, admin: Client, tmp_path: Path
) -> None:
    # An unknown driver: one message, exit 1. The glue with the real local driver is
    # test_host_local_driver.py.
    root = tmp_path / "machine"
    enroll = admin.create_token("e-m", kind="enroll").token
    env = {**os.environ, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "mien.cli.main", "agent"]
    joined = subprocess.run(
        [*cli, "enroll", "--server", server.url, "--token", enroll, "--root", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert joined.returncode == 0, joined.stderr
    started = subprocess.run(
        [*cli, "run", "--root", str(root), "--once", "--sandbox-host", "--sandbox-driver", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert started.returncode == 1, started
    assert "--sandbox-host:" in started.stderr and "Traceback" not in started.stderr


def test_sandboxes_left_by_an_earlier_agent_run_are_destroyed_unless_live(
    server: ServerProcess, admin: Client, tmp_path: Path
) -> None:
    root = tmp_path / "sandboxes"
    stale = root / "3f1c0000-0000-0000-0000-000000000000"
    stale.mkdir(parents=True)
    h = host(admin, server, "sbx-2")
    glue = SandboxHost(h.client, TinyDriver(root), offer=(1.0, GiB, GiB), poll_interval=0.1)
    thread = threading.Thread(target=glue.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: not stale.exists(), what="the stale sandbox destroyed")
    finally:
        glue.stop()
        thread.join(10)
        h.client.close()
