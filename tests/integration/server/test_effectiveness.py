"""Persona effectiveness against a real server on SQLite and PostgreSQL: agents post
telemetry batches over HTTP (rule transitions, action outcomes and cpu samples around
them, for two versions of a persona), then the API, ``mien persona effectiveness`` and the
dashboard's persona page report fires, time firing, outcomes and the metric before →
after; bad queries are refused with the parameter named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from server_harness import ServerProcess
from test_telemetry import body, enroll, get, post
from ui_harness import sign_in

from mien.client import Client

TRUST = """\
trust_levels:
  file_system_modification: high
  network_access: high
  process_control: high
  resource_scaling: high
  persona_change: low
"""


def persona(for_: str, description: str) -> str:
    return (
        f"name: web\ndescription: {description}\nenvironment_variables: {{MODE: calm}}\n"
        "learning_domains: [metrics]\n"
        + TRUST
        + f"""\
adaptation_rules:
  - name: hot
    when: metrics.cpu_percent > 80.0
    for: {for_}
    then: [{{action: set_setting, key: environment_variables.MODE, value: busy}}]
"""
    )


class Agent:
    """What one agent sends: its queue's sequence numbers, its events and samples."""

    def __init__(self) -> None:
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def event(self, ts: float, kind: str, **detail: Any) -> None:
        self.events.append({"seq": len(self.events) + 1, "ts": ts, "kind": kind, "detail": detail})

    def sample(self, ts: float, value: float) -> None:
        seq = len(self.samples) + 1
        self.samples.append({"seq": seq, "ts": ts, "name": "cpu_percent", "value": value})

    def fire(
        self, start: float, version: int, window: float, before: float, after: float, change: int
    ) -> float:
        """One fire of rule ``hot``: pending at ``start``, firing 30 s later with its action
        applied, inactive 100 s after that; cpu ``before`` in the window before the action
        and ``after`` in the window after it. Returns the action's time."""
        who = {"persona": "web", "persona_version": version, "rule": "hot"}
        at = start + 30
        self.event(start, "adapt.rule.pending", **who, from_="inactive", to="pending", at=start)
        self.event(at, "adapt.rule.firing", **who, from_="pending", to="firing", at=at)
        self.event(at, "adapt.action.applied", **who, action="set_setting", change=change)
        self.event(
            at + 100, "adapt.rule.inactive", **who, from_="firing", to="inactive", at=at + 100
        )
        step = window / 6
        for i in range(6):
            self.sample(at - window + step / 2 + i * step, before)
            self.sample(at + step / 2 + i * step, after)
        return at

    def send(self, server: ServerProcess, token: str) -> None:
        doc = {"samples": self.samples, "events": self.events}
        answer = post(server, token, body(doc))
        assert answer.status_code == 200, answer.text


def mien(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
    return subprocess.run(
        [sys.executable, "-m", "mien.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.fixture
def reported(server: ServerProcess, admin: Client) -> ServerProcess:
    admin.create_persona(persona("30s", "first"))  # v1: window 90 s on each side
    admin.update_persona("web", persona("10s", "second"))  # v2: window 60 s
    start = time.time() - 3 * 3600
    one, two = Agent(), Agent()
    # v1 on vm-1: six fires, cpu 90 before each action and 50 after.
    for i in range(6):
        one.fire(start + i * 600, 1, 90.0, 90.0, 50.0, change=i + 1)
    who = {"persona": "web", "persona_version": 1, "rule": "hot"}
    one.event(start + 4000, "adapt.action.refused", **who, reason="beyond trust")
    one.event(start + 4001, "adapt.action.suppressed", **who, suppressed_by="other")
    one.event(start + 4002, "adapt.action.failed", **who, change=7, retry_in=None)
    # Another persona's rule of the same name, and an event without a version: not counted.
    one.event(start + 4003, "adapt.rule.firing", persona="api", persona_version=1, rule="hot",
              from_="inactive", to="firing", at=start + 4003)  # fmt: skip
    one.event(start + 4004, "adapt.rule.firing", persona="web", persona_version=None,
              rule="hot", from_="inactive", to="firing", at=start + 4004)  # fmt: skip
    # v2 on vm-2: three fires (too few for a number), the last one still firing.
    for i in range(3):
        two.fire(start + i * 600, 2, 60.0, 70.0, 60.0, change=i + 1)
    two.events.pop()  # the last fire's inactive transition
    two.events[-1]["seq"] = len(two.events)
    for name, agent in (("vm-1", one), ("vm-2", two)):
        _, token = enroll(admin, server, name)
        agent.send(server, token)
    return server


def test_the_api_reports_fires_outcomes_and_the_metric_around_actions(
    reported: ServerProcess, admin: Client
) -> None:
    server = reported
    viewer = admin.create_token("watcher", role="viewer").token
    answer = get(server, viewer, "/personas/web/effectiveness", version=1, since="1d")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["persona"] == "web" and doc["truncated"] is False
    (v1,) = doc["versions"]
    assert (v1["version"], v1["instances"]) == (1, 1)
    (hot,) = v1["rules"]
    assert hot["rule"] == "hot" and hot["for_seconds"] == 30
    assert (hot["fires"], hot["still_firing"]) == (6, 0)
    assert hot["firing_seconds"] == pytest.approx(600) and hot["firing_median"] == 100
    assert hot["actions"] == {"applied": 6, "refused": 1, "suppressed": 1, "failed": 1}
    assert hot["insufficient"] is None
    metric = hot["metric"]
    assert metric["metric"] == "cpu_percent" and metric["window"] == 90
    assert (metric["before"], metric["after"], metric["change"]) == (90, 50, -40)
    assert metric["measured"] == 6 and len(metric["points"]) == 6

    # No version: the latest (v2), where three fires are too few for a number.
    latest = get(server, viewer, "/personas/web/effectiveness", since="1d").json()
    (v2,) = latest["versions"]
    (hot2,) = v2["rules"]
    assert v2["version"] == 2 and hot2["fires"] == 3 and hot2["still_firing"] == 1
    assert hot2["insufficient"] == "insufficient data: 3 fire(s), 5 needed"
    assert hot2["metric"]["window"] == 60 and hot2["metric"]["change"] is None
    assert hot2["metric"]["insufficient"].startswith("insufficient data")

    both = get(server, viewer, "/personas/web/effectiveness", compare="1,2", since="1d").json()
    assert [v["version"] for v in both["versions"]] == [1, 2]
    assert both["versions"][0]["rules"] == v1["rules"]
    # A range that ends before the actions' after-windows holds nothing to measure.
    short = get(server, viewer, "/personas/web/effectiveness", version=1, since="1m").json()
    assert short["versions"][0]["rules"][0]["fires"] == 0


def test_bad_queries_are_refused_naming_the_parameter(
    reported: ServerProcess, admin: Client
) -> None:
    server, token = reported, reported.admin_token
    path = "/personas/web/effectiveness"
    for params, status, words in (
        ({"compare": "1"}, 422, "query.compare"),
        ({"compare": "1,x"}, 422, "query.compare"),
        ({"version": 1, "compare": "1,2"}, 422, "query.version"),
        ({"since": "soon"}, 422, "query.since"),
        ({"version": 9}, 404, "version 9"),
    ):
        answer = get(server, token, path, **params)
        assert answer.status_code == status, (params, answer.text)
        assert words in answer.json()["detail"], answer.json()
    assert get(server, token, "/personas/nobody/effectiveness").status_code == 404
    _, agent_token = enroll(admin, server, "vm-3")
    assert get(server, agent_token, path).status_code == 403


def test_the_cli_prints_a_table_per_version_and_json(reported: ServerProcess) -> None:
    done = mien(reported, "persona", "effectiveness", "web", "--compare", "1", "2", "--since", "1d")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "web v1: 1 instance(s)" in text and "web v2: 1 instance(s)" in text
    assert "cpu_percent: 90 → 50 (median change -40, 6 actions, ±1m30s)" in text
    assert "6 / 1 / 1 / 1" in text
    assert "insufficient data: 3 fire(s), 5 needed" in text
    assert "1 still firing" in text
    as_json = mien(reported, "persona", "effectiveness", "web", "--version", "1", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    (v1,) = json.loads(as_json.stdout)["versions"]
    assert v1["rules"][0]["metric"]["change"] == -40
    both = mien(
        reported, "persona", "effectiveness", "web", "--version", "1", "--compare", "1", "2"
    )
    assert both.returncode == 2 and "--version and --compare" in both.stderr
    bad = mien(reported, "persona", "effectiveness", "web", "--since", "soon")
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr


def test_the_persona_page_shows_the_table_and_a_before_after_plot(
    reported: ServerProcess, admin: Client
) -> None:
    viewer = admin.create_token("page-viewer", role="viewer").token
    with httpx.Client(base_url=reported.url, timeout=30) as http:
        assert sign_in(http, viewer).status_code == 303
        first = http.get("/ui/personas/web", params={"to": 1})
        latest = http.get("/ui/personas/web")
    assert first.status_code == 200, first.text
    table = first.text.split('<table id="effectiveness">')[1].split("</table>")[0]
    row = table.split('<tr data-rule="hot">')[1].split("</tr>")[0]
    cells = [c.split(">", 1)[1] for c in row.split("</td>")[:-1]]
    assert cells == ["hot", "6", "10m (100s)", "6", "1", "1", "1", "cpu_percent", "90 → 50 (-40)"]
    figure = first.text.split('<div class="charts" id="effect-charts">')[1].split("</div>")[0]
    before, after = figure.split("<polyline")[1:3]
    assert "before" in before and "after" in after
    # The after line is drawn lower (larger y) than the before line: cpu fell.
    ys = [
        [float(pt.split(",")[1]) for pt in line.split('points="')[1].split('"')[0].split()]
        for line in (before, after)
    ]
    assert len(ys[0]) == len(ys[1]) == 6 and min(ys[1]) > max(ys[0])
    assert "insufficient data: 3 fire(s), 5 needed" in latest.text
    assert '<div class="charts" id="effect-charts"><figure' in latest.text  # 3 points drawn
