"""Fleet policy end to end: a real ``mien server`` and a real ``mien agent run``. The
persona grants ``process_control: high`` and has a rule that runs a command every time it
samples; the fleet policy, pushed with ``mien policy push``, caps ``process_control`` to
``none`` on ``env=prod``. The agent is handed the capped persona, its trust gate refuses
the command (it never runs: the marker file it would write stays absent), the refusal
reaches the server as telemetry, and ``mien instance list --noncompliant`` lists the
machine with that reason.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import make_machine, mien_command, run_mien

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "server"))
from server_harness import ServerProcess

from mien.client import Client

PERSONA = """\
name: guarded
environment_variables: {MIEN_MODE: guarded}
learning_domains: [metrics]
telemetry: {interval: 1s}
trust_levels: {process_control: high, file_system_modification: low}
adaptation_rules:
  - name: always
    when: metrics.cpu_percent >= 0
    then: [{action: run, command: "touch MARKER"}]
"""

POLICY = """\
trust:
  - selector: {env: prod}
    max: {process_control: none}
"""


def until(check: Callable[[], Any], timeout: float = 40.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_capped_action_is_refused_by_the_agent_and_reported(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server").start()
    agent: subprocess.Popen[bytes] | None = None
    marker = tmp_path / "ran"
    try:
        env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
        admin = Client(server.url, server.admin_token)
        (tmp_path / "guarded.yaml").write_text(PERSONA.replace("MARKER", str(marker)))
        admin.create_persona(tmp_path / "guarded.yaml")
        (tmp_path / "policy.yaml").write_text(POLICY)
        checked = run_mien("policy", "check", tmp_path / "policy.yaml")
        assert checked.returncode == 0, checked.stderr
        pushed = run_mien("policy", "push", tmp_path / "policy.yaml", env=env)
        assert pushed.returncode == 0, pushed.stderr
        assert "fleet policy v1 stored" in pushed.stderr
        shown = run_mien("policy", "show", env=env)
        assert shown.returncode == 0 and "process_control: none" in shown.stdout
        assert '"p1-' in shown.stderr  # the ETag to push with --if-match
        stale = run_mien("policy", "push", tmp_path / "policy.yaml", "--if-match", '"p0"', env=env)
        assert stale.returncode == 1 and "changed since you read it" in stale.stderr
        bad = tmp_path / "bad.yaml"
        bad.write_text(POLICY.replace("process_control", "process_contrl"))
        refused = run_mien("policy", "push", bad, env=env)
        assert refused.returncode == 1
        assert f"{bad}:3:11: trust[0].max.process_contrl: must be one of" in refused.stderr
        versions = run_mien("policy", "versions", env=env)
        assert "v1" in versions.stdout and "admin" in versions.stdout

        root = make_machine(tmp_path / "vm")
        secret = admin.create_token("enroll-vm", kind="enroll", uses=1).token
        enrolled = run_mien(
            "agent", "enroll", "--server", server.url, "--token", secret, "--root", root,
            "--user", "alice", "--instance-id", "vm-1",
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr
        admin.set_tags("vm-1", {"env": "prod"})
        log = (tmp_path / "agent.log").open("ab")
        agent = subprocess.Popen(
            [*mien_command(), "agent", "run", "--root", str(root), "--wait", "5",
             "--send-every", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        admin.wait_activation(admin.activate("vm-1", "guarded").id, timeout=30)

        effective = run_mien("instance", "effective", "vm-1", env=env)
        assert effective.returncode == 0, effective.stderr
        assert "trust capped by fleet policy v1" in effective.stdout
        assert "trust[0] (env=prod)" in effective.stdout

        def refused() -> list[dict[str, Any]]:
            done = run_mien(
                "instance", "events", "vm-1", "--kind", "adapt.action.refused",
                "--output", "json", env=env,
            )  # fmt: skip
            return json.loads(done.stdout) if done.returncode == 0 else []

        (first, *_rest) = until(refused, 40, "the agent's refusal on the server")
        assert first["detail"]["action"] == "run"
        assert "process_control" in first["detail"]["reason"]
        assert "grants none" in first["detail"]["reason"]
        assert not marker.exists()  # the command never ran

        listed = run_mien("instance", "list", "--noncompliant", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "vm-1" in listed.stdout and "action refused" in listed.stdout
        described = run_mien("instance", "show", "vm-1", env=env)
        assert "out of fleet policy" in described.stdout
        admin.close()
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        server.stop()
