"""The fleet end to end: a real ``mien server`` and real ``mien agent run`` processes on temp
roots, driven over HTTP as an operator would.

Push personas → bind one by tag → the tagged agent converges; activate another explicitly →
applied; a failing persona → failed with the agent's error and the machine unchanged; remote
commands refused (126) and overridden through the routing table; the audit trail shows it
all; agents stop cleanly on SIGTERM and pick up where they were after a restart.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    EXAMPLES,
    install_zsh,
    make_machine,
    mien_command,
    run_mien,
    snapshot,
    tree_diff,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "server"))

from server_harness import ServerProcess

from mien.client import Client


def until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class AgentProcess:
    def __init__(self, root: Path, log: Path, *extra: str) -> None:
        self.root = root
        self.log_path = log
        fh = log.open("ab")
        self.proc = subprocess.Popen(
            [*mien_command(), "agent", "run", "--root", str(root), "--wait", "5", *extra],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        fh.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.admin_token) as api:
        yield api


def enroll(server: ServerProcess, admin: Client, root: Path, *tags: str) -> str:
    token = admin.create_token(f"enroll-{root.name}", kind="enroll", uses=1).token
    args = [
        "agent",
        "enroll",
        "--server",
        server.url,
        "--token",
        token,
        "--root",
        root,
        "--user",
        "alice",
    ]
    for tag in tags:
        args += ["--tag", tag]
    result = run_mien(*args)
    assert result.returncode == 0, result.stderr
    creds = json.loads((root / "var/lib/mien/agent.json").read_text())
    assert (root / "var/lib/mien/agent.json").stat().st_mode & 0o777 == 0o600
    return str(creds["instance_id"])


def test_fleet_converges_activates_refuses_and_audits(
    tmp_path: Path, server: ServerProcess, admin: Client
) -> None:
    web_root = install_zsh(make_machine(tmp_path / "web"))
    db_root = install_zsh(make_machine(tmp_path / "db"))
    web = enroll(server, admin, web_root, "role=web")
    db = enroll(server, admin, db_root, "role=db")
    agents = [
        AgentProcess(web_root, tmp_path / "web.log"),
        AgentProcess(db_root, tmp_path / "db.log"),
    ]
    try:
        for name in ("persona_developer.yml", "test-runner.json", "persona_security_auditor.yml"):
            admin.create_persona(EXAMPLES / name)
        admin.create_binding("web-developers", {"role": "web"}, "developer", priority=10)

        def web_applied() -> bool:
            active = admin.active_persona(web)
            return bool(active.applied.persona == "developer" and active.in_sync)

        until(web_applied, what="the web agent to apply the bound persona")
        env = (web_root / "etc/environment.d/50-mien.conf").read_text()
        assert "EDITOR=" in env
        assert (web_root / "etc/cron.d/mien-auto-update").exists()

        activation = admin.activate(db, "test-runner")
        done = admin.wait_activation(activation.id, timeout=30)
        assert done.status == "applied", done.error
        assert 'APP_ENV="test"' in (db_root / "etc/environment.d/50-mien.conf").read_text()

        refused = admin.run_command(db, "shutdown", ["-h", "now"], wait=20)
        assert refused.refused and refused.exit_status == 126
        assert "'shutdown' is restricted by persona 'test-runner'" in (refused.stderr or "")
        overridden = admin.run_command(db, "deploy", ["v1.2"], wait=20)
        assert overridden.exit_status == 0, overridden
        assert "deploy is a dry run in the test-runner persona: v1.2" in (overridden.stdout or "")
        plain = admin.run_command(web, "echo", ["hello"], wait=20)
        assert plain.exit_status == 0 and plain.stdout == "hello\n"

        actions = [r.action for r in admin.audit(instance=db)]
        assert any(a.startswith("activation") for a in actions), actions
        assert any("command" in a for a in actions), actions
        assert admin.audit_verify().ok
        local = [
            json.loads(line)["event"]
            for line in (db_root / "var/log/mien/audit.jsonl").read_text().splitlines()
        ]
        assert "persona.activated" in local and "command.refused" in local
    finally:
        statuses = [a.stop() for a in agents]
    assert statuses == [0, 0], [a.log() for a in agents]


def test_failed_apply_is_reported_and_changes_nothing(
    tmp_path: Path, server: ServerProcess, admin: Client
) -> None:
    root = install_zsh(make_machine(tmp_path / "m"))
    instance = enroll(server, admin, root)
    agent = AgentProcess(root, tmp_path / "agent.log")
    try:
        admin.create_persona(EXAMPLES / "persona_developer.yml")
        first = admin.wait_activation(admin.activate(instance, "developer").id, timeout=30)
        assert first.status == "applied", first.error
        # The server shows each setting's outcome exactly as the machine does.
        local = json.loads(run_mien("status", "--root", root, "--output", "json").stdout)
        reported = until(
            lambda: admin.get_instance(instance).applied.settings, what="settings reported"
        )
        assert [o.model_dump(mode="json") for o in reported] == local["notes"]
        assert "pending" in {o.status for o in reported}  # nothing is installed in the root
        before = snapshot(root)
        admin.create_persona(
            "name: broken\nenvironment_variables: {X: '1'}\n"
            "post_activation_script: |\n  #!/bin/sh\n  echo health check failed >&2\n  exit 3\n"
        )
        failed = admin.wait_activation(admin.activate(instance, "broken").id, timeout=30)
        assert failed.status == "failed"
        assert "post_activation_script: exited with status 3: health check failed" in (
            failed.error or ""
        )
        assert tree_diff(before, snapshot(root)) == []
        active = admin.active_persona(instance)
        assert active.applied.persona == "developer"
        assert active.applied.state == "failed" and "health check failed" in (
            active.applied.error or ""
        )
        assert active.desired.persona == "broken"
        assert not active.in_sync
        # What the machine runs did not change, so neither did its settings' outcomes.
        assert admin.get_instance(instance).applied.settings == reported
    finally:
        assert agent.stop() == 0, agent.log()


def test_an_added_persona_reaches_the_machine_as_one_persona(
    tmp_path: Path, server: ServerProcess, admin: Client
) -> None:
    """An add-binding layers a second persona over the bound one: the real agent applies
    one composed persona with the settings of both and the restricted commands of both."""
    root = install_zsh(make_machine(tmp_path / "m"))
    instance = enroll(server, admin, root, "role=web", "region=eu")
    admin.create_persona(EXAMPLES / "persona_developer.yml")
    guard = {
        "name": "guard",
        "environment_variables": {"GUARDED": "yes"},
        "restricted_commands": ["halt"],
        "adaptation_rules": [
            {
                "name": "guard-cpu",
                "when": "metrics.cpu_percent > 99.0",
                "then": [{"action": "notify", "message": "hot"}],
            }
        ],
    }
    admin.create_persona(guard)
    admin.create_binding("web-developers", {"role": "web"}, "developer")
    admin.create_binding("guard-eu", {"region": "eu"}, "guard", mode="add")
    agent = AgentProcess(root, tmp_path / "agent.log")
    try:

        def applied_both() -> bool:
            active = admin.active_persona(instance)
            return bool(active.in_sync and active.desired.added == ["guard-eu"])

        until(applied_both, what="the agent to apply the composed persona")
        active = admin.active_persona(instance)
        assert active.applied.persona == "developer"
        env = (root / "etc/environment.d/50-mien.conf").read_text()
        assert "EDITOR=" in env and 'GUARDED="yes"' in env, env
        refused = admin.run_command(instance, "halt", [], wait=20)
        assert refused.refused and refused.exit_status == 126, refused
        # The machine runs exactly the composed document, whose rules are both personas'.
        status = json.loads(run_mien("status", "--root", root, "--output", "json").stdout)
        assert status["active"] == "developer" and status["hash"] == active.desired.hash
        document = admin.effective_persona(instance).document or {}
        assert "guard-cpu" in [r["name"] for r in document["adaptation_rules"]]
    finally:
        assert agent.stop() == 0, agent.log()


def test_agent_restart_resumes_without_reapplying(
    tmp_path: Path, server: ServerProcess, admin: Client
) -> None:
    root = install_zsh(make_machine(tmp_path / "m"))
    instance = enroll(server, admin, root)
    admin.create_persona(EXAMPLES / "persona_developer.yml")
    admin.activate(instance, "developer")
    agent = AgentProcess(root, tmp_path / "a1.log")
    until(lambda: admin.active_persona(instance).in_sync, what="first apply")
    assert agent.stop() == 0
    history_before = run_mien("history", "--root", root, "--output", "json").stdout
    again = AgentProcess(root, tmp_path / "a2.log")
    try:
        until(lambda: "following" in again.log(), what="the restarted agent")
        time.sleep(0.5)  # give it a poll: it must not apply again
        assert run_mien("history", "--root", root, "--output", "json").stdout == history_before
        assert admin.active_persona(instance).in_sync
    finally:
        assert again.stop() == 0, again.log()


def test_enroll_with_a_bad_token_is_refused(tmp_path: Path, server: ServerProcess) -> None:
    root = install_zsh(make_machine(tmp_path / "m"))
    result = run_mien(
        "agent", "enroll", "--server", server.url, "--token", "mien_e_nope", "--root", root
    )
    assert result.returncode == 1
    assert "enrollment with" in result.stderr and "Traceback" not in result.stderr
    assert not (root / "var/lib/mien/agent.json").exists()
    run = run_mien("agent", "run", "--root", root)
    assert run.returncode == 1
    assert "not enrolled" in run.stderr
