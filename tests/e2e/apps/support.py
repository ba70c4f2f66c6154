"""What the application-persona e2e tests share besides their fixtures (conftest.py): a
sandbox host process (``mien agent run --sandbox-host``) and ``mien`` as a person types
it. The Debian base root and the persona layers are cached by content hash under
:data:`CACHE` (the cache of tests/integration/agent/sandbox), so only a first run
downloads packages.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support import make_machine, mien_command, run_mien

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "server"))

from server_harness import ServerProcess, wait_until

from mien.client import Client

CACHE = Path.home() / ".cache" / "mien-test-images"


class SandboxHostProcess:
    """``mien agent run --sandbox-host`` on an enrolled temp root."""

    def __init__(self, root: Path, runs: Path, log: Path, driver: str = "local") -> None:
        self.log_path = log
        self.runs = runs
        env = {
            **os.environ,
            "MIEN_SANDBOX_CACHE": str(CACHE),
            "MIEN_SANDBOX_RUN": str(runs),
        }
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [
                    *mien_command(),
                    "agent",
                    "run",
                    "--root",
                    str(root),
                    "--wait",
                    "5",
                    "--no-adapt",
                    "--sandbox-host",
                    "--sandbox-driver",
                    driver,
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(60)
        stop_podman_service(self.runs)
        return code


def stop_podman_service(runs: Path) -> None:
    """Stop the ``podman system service`` a podman-driven host started under ``runs`` (it
    outlives the agent by design, so that a restarted agent finds its containers)."""
    pid_file = runs / "podman" / "service.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if str(runs).encode() not in fh.read():
                return  # not the service of these runs (the pid was reused)
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


def mien(
    server: ServerProcess, token: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``mien ARGS`` as a person would type it, with their token (``stdin``: piped in)."""
    env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": token}
    done = run_mien(*args, env=env, timeout=600, input=stdin)
    assert "Traceback" not in done.stderr, done.stderr
    return done  # type: ignore[return-value]


def enroll(server: ServerProcess, admin: Client, root: Path) -> str:
    token = admin.create_token("enroll-sandbox-host", kind="enroll", uses=1).token
    done = run_mien(
        "agent", "enroll", "--server", server.url, "--token", token, "--root", root,
        "--user", "alice",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return str(json.loads((root / "var/lib/mien/agent.json").read_text())["instance_id"])


def hosts(admin: Client) -> dict[str, dict[str, Any]]:
    r = admin._http.get("/api/v1/broker/hosts")
    r.raise_for_status()
    return {h["instance_id"]: h for h in r.json()["items"]}


def status(server: ServerProcess, token: str, lease: str) -> dict[str, Any]:
    done = mien(server, token, "app", "status", lease, "--output", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def traces(lease: str, runs: Path) -> list[str]:
    """What of the lease's sandbox is still on the host: its directory, its cgroups, its
    network namespace."""
    from mien.agent.sandbox import cgroups, netns

    left = [str(p) for p in (runs / f"lease-{lease}",) if p.exists()]
    left += [str(p) for p in cgroups.paths(lease).values() if p.exists()]
    ns = netns.NETNS_DIR / netns.name_for(lease)
    return left + ([str(ns)] if ns.exists() else [])


@contextlib.contextmanager
def sandbox_host(
    tmp_path: Path, runs: Path, server: ServerProcess, admin: Client, driver: str = "local"
) -> Iterator[tuple[str, SandboxHostProcess]]:
    """An enrolled sandbox host serving the broker with ``driver``, stopped (exit 0) after."""
    machine = make_machine(tmp_path / "host")
    instance = enroll(server, admin, machine)
    agent = SandboxHostProcess(machine, runs, tmp_path / "host.log", driver)
    try:
        wait_until(lambda: instance in hosts(admin), timeout=60, what="the host's offer")
        yield instance, agent
    finally:
        code = agent.stop()
    assert code == 0, agent.log()


def push(server: ServerProcess, tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / f"{document.get('name', 'persona')}.json"
    path.write_text(json.dumps(document))
    pushed = mien(server, server.admin_token, "persona", "push", str(path))
    assert pushed.returncode == 0, pushed.stderr


def reporter(name: str) -> dict[str, Any]:
    """The drivers' shared application persona: an apt program the base root already has
    (so its layer needs no download), a structured configuration file, a flat setting for
    the application env file, a memory limit and a storage size."""
    return {
        "name": name,
        "required_applications": [{"name": "perl-base", "manager": "apt"}],
        "application_configuration": {
            "reporter": {
                "path": "/etc/reporter.json",
                "format": "json",
                "values": {"title": "weekly", "rows": 10},
            },
            "report_bucket": "s3://reports/weekly",
        },
        "resource_requirements": {"cpu": 1, "memory": "64MiB", "storage": "64MiB"},
    }
