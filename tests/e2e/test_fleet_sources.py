"""A fleet-wide data source end to end: a real ``mien server``, two real ``mien agent run``
processes whose persona names one ``fleet: true`` source, and a real origin on loopback.
The server fetches it; both agents' rules see ``data.blocklist`` (the rule fires) though
neither asked the origin; ``mien top`` says each copy came from the server.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.feed_origin import serve_feed
from tests.support import make_machine, mien_command, run_mien

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "server"))
from server_harness import ServerProcess

from mien.client import Client

PERSONA = """\
name: guarded
telemetry: {{interval: 1s}}
external_data_sources:
  - name: blocklist
    url: http://127.0.0.1:{port}/feed
    every: 10s
    fleet: true
adaptation_rules:
  - name: listed
    when: size(data.blocklist.value) > 1
    then: [{{action: notify, message: blocklist has entries}}]
"""


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def events(root: Path) -> list[dict[str, Any]]:
    done = run_mien("events", "--root", root, "--output", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_agents_get_a_fleet_wide_source_from_the_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", env={"MIEN_SERVER_SOURCES_INTERVAL": "0.2"})
    agents: list[subprocess.Popen[bytes]] = []
    with serve_feed() as origin:
        server.start()
        try:
            admin = Client(server.url, server.admin_token)
            (tmp_path / "guarded.yaml").write_text(PERSONA.format(port=origin.port))
            admin.create_persona(tmp_path / "guarded.yaml")
            roots = []
            for i in (1, 2):
                root = make_machine(tmp_path / f"vm{i}")
                secret = admin.create_token(f"enroll-vm{i}", kind="enroll", uses=1).token
                enrolled = run_mien(
                    "agent", "enroll", "--server", server.url, "--token", secret,
                    "--root", root, "--user", "alice", "--instance-id", f"vm-{i}",
                )  # fmt: skip
                assert enrolled.returncode == 0, enrolled.stderr
                log = (tmp_path / f"agent{i}.log").open("ab")
                agents.append(
                    subprocess.Popen(
                        [*mien_command(), "agent", "run", "--root", str(root), "--wait", "5"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
                log.close()
                roots.append(root)
                admin.wait_activation(admin.activate(f"vm-{i}", "guarded").id, timeout=30)

            def fired(root: Path) -> bool:
                return any(
                    e["event"] == "rule.firing" and e.get("rule") == "listed" for e in events(root)
                )

            for root in roots:
                until(lambda root=root: fired(root), 40, f"rule 'listed' firing on {root.name}")
            # One origin fetch per 10 s interval (±10 %) for both machines, each after the
            # first conditional (the server's ETag): never one per agent.
            seen = list(origin.requests)
            assert seen and all(r["path"] == "/feed" for r in seen)
            assert all(r.get("if-none-match") == '"v1"' for r in seen[1:]), seen
            times = [float(r["at"]) for r in seen]
            assert all(b - a >= 8.5 for a, b in itertools.pairwise(times)), times
            for root in roots:
                top = run_mien("top", "--once", "--output", "json", "--root", root)
                assert top.returncode == 0, top.stderr
                source = json.loads(top.stdout)["status"]["sources"]["blocklist"]
                assert source["via"] == "server" and source["last_error"] is None, source
                assert not [e for e in events(root) if e["event"] == "source.direct"]
            admin.close()
        finally:
            for agent in agents:
                agent.send_signal(signal.SIGTERM)
                agent.wait(30)
            server.stop()
