"""The fleet learning from its machines, end to end: a real ``mien server`` and three real
``mien agent run`` processes on loopback, two tagged ``role=web`` and one ``role=batch``.

Their persona samples an HTTP access log under each machine's root (``api_calls``: the
request rate ``api_rps``), and its rule ``busy`` asks for a resize (``scale``) when the
rate is high. Requests written to that log are the load:

- bursts on the batch machine make ``busy`` fire and clear five times; the server shows
  each transition (``mien instance events``) and the rate's series (``mien instance
  metrics``), and ``mien persona effectiveness`` counts the fires and the scale requests and
  gives the rate's median before and after them — real numbers, not "insufficient data";
- load on one web machine lifts the web tier's average: the fleet rule ``web-hot`` (pushed
  with ``mien fleet-rule push``) binds the ``burst`` persona to ``role=web``, both web
  agents apply it, and when the load stops the binding goes and they return to
  ``webapp``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mien.client import Client
from tests.e2e.test_fleet import AgentProcess, ServerProcess, enroll, until
from tests.support import make_machine, run_mien

ACCESS_LOG = "/var/log/app/access.log"

WEBAPP = f"""\
name: webapp
environment_variables: {{MIEN_MODE: calm}}
learning_domains: [api_calls]
telemetry:
  interval: 1s
  access_log: {{path: {ACCESS_LOG}, format: common}}
trust_levels: {{resource_scaling: medium}}
adaptation_rules:
  - name: busy
    when: metrics.api_rps > 20.0
    then: [{{action: scale, cpu: 1}}]
"""

BURST = f"""\
name: burst
environment_variables: {{MIEN_MODE: burst}}
learning_domains: [api_calls]
telemetry:
  interval: 1s
  access_log: {{path: {ACCESS_LOG}, format: common}}
trust_levels: {{resource_scaling: medium}}
"""

FLEET_RULE = """\
name: web-hot
description: a busy web tier gets the burst persona
selector: {role: web}
when: avg.api_rps > 15.0 && count >= 2
fresh: 30s
then:
  - bind: {persona: burst, priority: 50}
"""

SERVER_ENV = {
    "MIEN_SERVER_ORCHESTRATOR_INTERVAL": "0.5",
    "MIEN_SERVER_HEARTBEAT_FLUSH_INTERVAL": "0.5",
}

LINE = '127.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET /api/items HTTP/1.1" 200 512\n'


class Requests:
    """Load on one machine: about ``rate`` requests a second written to its access log
    while on (what the web server in front of it would log)."""

    def __init__(self, root: Path, rate: int = 100) -> None:
        self.path = root / ACCESS_LOG.lstrip("/")
        self.rate = rate
        self.on = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        while not self.done.is_set():
            if self.on.is_set():
                with self.path.open("a") as log:
                    log.write(LINE * (self.rate // 10))
            time.sleep(0.1)

    @contextmanager
    def running(self) -> Iterator[None]:
        self.on.set()
        try:
            yield
        finally:
            self.on.clear()

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)


def machine(tmp_path: Path, name: str) -> Path:
    root = make_machine(tmp_path / name)
    (root / ACCESS_LOG.lstrip("/")).parent.mkdir(parents=True)
    (root / ACCESS_LOG.lstrip("/")).touch()
    return root


def local_events(root: Path, name: str) -> list[dict[str, Any]]:
    """The agent's own audit records of kind ``adapt.NAME`` (what it queues for the
    server), read from its machine."""
    path = root / "var/log/mien/audit.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written
        if record.get("event") == f"adapt.{name}":
            out.append(record)
    return out


def test_the_fleet_learns_from_its_machines(tmp_path: Path) -> None:
    started = time.monotonic()
    server = ServerProcess(tmp_path / "server", env=SERVER_ENV).start()
    env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
    roots = {name: machine(tmp_path, name) for name in ("web-1", "web-2", "batch-1")}
    agents: list[AgentProcess] = []
    loads: list[Requests] = []
    admin = Client(server.url, server.admin_token)
    try:
        for name, text in (("webapp", WEBAPP), ("burst", BURST)):
            (tmp_path / f"{name}.yaml").write_text(text)
            admin.create_persona(tmp_path / f"{name}.yaml")
        admin.create_binding("apps", {"role": ["web", "batch"]}, "webapp", priority=10)
        ids = {
            name: enroll(server, admin, root, f"role={'batch' if 'batch' in name else 'web'}")
            for name, root in roots.items()
        }
        for name, root in roots.items():
            agents.append(
                AgentProcess(root, tmp_path / f"{name}.log", "--interval", "1", "--send-every", "1")
            )

        def on(name: str, persona: str) -> bool:
            active = admin.active_persona(ids[name])
            return bool(active.applied and active.applied.persona == persona and active.in_sync)

        for name in roots:
            until(lambda n=name: on(n, "webapp"), 60, f"{name} to apply webapp")  # type: ignore[misc]

        # Bursts on the batch machine: `busy` fires at the first busy sample and clears at
        # the first quiet one. Five times, watching the agent's own log of transitions.
        batch = Requests(roots["batch-1"])
        loads.append(batch)
        for n in range(1, 6):
            with batch.running():
                until(
                    lambda n=n: len(local_events(roots["batch-1"], "rule.firing")) >= n,  # type: ignore[misc]
                    30,
                    f"fire {n} of busy",
                )
            until(
                lambda n=n: len(local_events(roots["batch-1"], "rule.inactive")) >= n,  # type: ignore[misc]
                30,
                f"busy to clear after fire {n}",
            )
        last_scale = until(
            lambda: local_events(roots["batch-1"], "action.requested")[4:],
            20,
            "five scale requests",
        )
        assert last_scale[0]["action"] == "scale" and last_scale[0]["params"] == {"cpu": 1}

        # The server has the transitions and the series.
        def server_events(kind: str) -> list[dict[str, Any]]:
            done = run_mien(
                "instance", "events", ids["batch-1"], "--kind", kind, "--output", "json",
                env=env,
            )  # fmt: skip
            return json.loads(done.stdout) if done.returncode == 0 else []

        fired = until(
            lambda: (got := server_events("adapt.rule.firing"))[4:] and got,
            30,
            "five firings on the server",
        )
        assert {e["detail"]["rule"] for e in fired} == {"busy"}
        assert len(server_events("adapt.rule.inactive")) >= 5
        series = run_mien(
            "instance", "metrics", ids["batch-1"], "--name", "api_rps", "--since", "1h",
            "--output", "json", env=env,
        )  # fmt: skip
        assert series.returncode == 0, series.stderr
        (rps,) = [s for s in json.loads(series.stdout)["series"] if s["name"] == "api_rps"]
        assert rps["points"] and rps["max"] > 20 and rps["min"] == 0, rps

        # The web tier: load on one web machine lifts the tier's average over 15 req/s.
        (tmp_path / "web-hot.yaml").write_text(FLEET_RULE)
        pushed = run_mien("fleet-rule", "push", tmp_path / "web-hot.yaml", env=env)
        assert pushed.returncode == 0, pushed.stderr
        web = Requests(roots["web-1"])
        loads.append(web)

        def bound() -> list[str]:
            done = run_mien("bind", "list", "--output", "json", env=env)
            if done.returncode != 0:
                return []
            return [b["name"] for b in json.loads(done.stdout)]

        with web.running():
            until(lambda: "fleet-web-hot" in bound(), 30, "the fleet rule's binding")
            for name in ("web-1", "web-2"):
                until(lambda n=name: on(n, "burst"), 30, f"{name} to apply burst")  # type: ignore[misc]
                conf = roots[name] / "etc/environment.d/50-mien.conf"
                assert "MIEN_MODE=burst" in conf.read_text().replace('"', "")
            assert on("batch-1", "webapp")  # not role=web
        until(lambda: "fleet-web-hot" not in bound(), 30, "the binding to go when it clears")
        for name in ("web-1", "web-2"):
            until(lambda n=name: on(n, "webapp"), 30, f"{name} back on webapp")  # type: ignore[misc]
        shown = run_mien("fleet-rule", "show", "web-hot", env=env)
        assert shown.returncode == 0, shown.stderr
        journal = shown.stdout + shown.stderr  # the journal: bound, then undone
        assert "#00  bind  done" in journal and "#00/undo  bind  done" in journal, journal

        # Effectiveness: the five fires and their scale requests, and the rate before and
        # after each, once the window after the fifth (60 s) has passed.
        def effect() -> dict[str, Any] | None:
            done = run_mien("persona", "effectiveness", "webapp", "--output", "json", env=env)
            if done.returncode != 0:
                return None
            answer = json.loads(done.stdout)
            (version,) = answer["versions"]
            (rule,) = [r for r in version["rules"] if r["rule"] == "busy"]
            return rule if rule["metric"]["insufficient"] is None else None

        rule = until(effect, 100, "effectiveness with samples after five actions")
        assert rule["fires"] >= 5 and rule["insufficient"] is None, rule
        assert rule["actions"]["applied"] >= 5, rule
        metric = rule["metric"]
        assert metric["metric"] == "api_rps" and metric["measured"] >= 5, metric
        assert metric["before"] is not None and metric["after"] is not None
        assert metric["change"] is not None
        table = run_mien("persona", "effectiveness", "webapp", env=env)
        assert table.returncode == 0 and "busy" in table.stdout, table.stderr
        print(f"wall time: {time.monotonic() - started:.1f} s")
    finally:
        for load in loads:
            load.close()
        admin.close()
        codes = [agent.stop() for agent in agents]
        assert server.stop() == 0, server.log()
        assert codes == [0] * len(agents), [a.log()[-2000:] for a in agents]
