"""The dashboard's telemetry plots over plain HTTP against a real ``mien server``: an
enrolled instance sends samples and rule transitions through the agent's own route, and
the instance page draws one line chart per metric with its min/max/last (the numbers the
metrics API answers), the fleet page the latest average per persona; a viewer sees both,
a user token's session does not; metric names and rule names full of markup stay text.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from server_harness import ServerProcess
from ui_harness import IMG, SCRIPT, assert_escaped, sign_in

from mien.client import AgentClient

HOSTILE_METRIC = SCRIPT + IMG


@dataclass
class Plotted:
    server: ServerProcess
    instance: str
    quiet: str
    viewer: str
    user: str
    values: list[float]


def _batch(instance: str, now: float, values: list[float]) -> bytes:
    samples = [
        {"seq": i + 1, "ts": now - 250 + i * 60, "name": "cpu_percent", "value": v}
        for i, v in enumerate(values)
    ]
    samples.append({"seq": 100, "ts": now - 30, "name": HOSTILE_METRIC, "value": 1.0})
    samples.append({"seq": 101, "ts": now - 5, "name": "memory_percent", "value": 61.5})
    events = [
        {"seq": 1, "ts": now - 300, "kind": "adapt.rule.firing", "detail": {"rule": "hot"}},
        {"seq": 2, "ts": now - 100, "kind": "adapt.rule.resolved", "detail": {"rule": "hot"}},
        {"seq": 3, "ts": now - 50, "kind": "adapt.rule.firing", "detail": {"rule": SCRIPT}},
    ]
    doc = {"instance": instance, "samples": samples, "events": events}
    return gzip.compress(json.dumps(doc).encode())


@pytest.fixture(scope="module")
def plotted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plotted]:
    server = ServerProcess(tmp_path_factory.mktemp("plots") / "data").start()
    values = [12.0, 40.0, 7.5, 93.25, 50.0]
    try:
        with server.client() as admin:
            viewer = admin.create_token("viewer-plots", role="viewer").token
            user = admin.create_token("user-plots", role="user").token
            admin.create_persona("name: watched\ndescription: plotted\n")
            admin.create_binding("watched-b", {"zone": "plot"}, "watched", priority=1)
            made = []
            for name in ("vm-plot", "vm-quiet"):
                secret = admin.create_token(f"enroll-{name}", kind="enroll", uses=1).token
                with AgentClient(server.url) as anon:
                    made.append(anon.enroll(secret, instance_id=name, tags={"zone": "plot"}))
        with AgentClient(server.url, token=made[0].token) as agent:
            desired = agent.desired(None, wait=5)
            assert desired is not None and desired.persona == "watched"
            agent.report(
                "applied",
                activation_id=desired.activation_id,
                persona=desired.persona,
                version=desired.version,
                hash=desired.hash,
            )
            ack = agent.telemetry(_batch(made[0].instance_id, time.time(), values))
            assert ack.samples == len(values) + 2 and ack.events == 3
        yield Plotted(server, made[0].instance_id, made[1].instance_id, viewer, user, values)
    finally:
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def _page(p: Plotted, token: str, path: str) -> httpx.Response:
    with httpx.Client(base_url=p.server.url, timeout=20) as http:
        assert sign_in(http, token).status_code == 303
        return http.get(path)


def _figure(html: str, metric: str) -> str:
    found = re.search(
        rf'<figure class="metric" data-metric="{re.escape(metric)}">(.*?)</figure>', html, re.S
    )
    assert found, f"no chart for {metric}"
    return found.group(1)


def test_a_viewer_sees_each_series_as_a_line_with_min_max_last(plotted: Plotted) -> None:
    r = _page(plotted, plotted.viewer, f"/ui/instances/{plotted.instance}")
    assert r.status_code == 200, r.text
    assert "no telemetry reported" not in r.text
    cpu = _figure(r.text, "cpu_percent")
    assert "<svg" in cpu
    (line,) = re.findall(r'<polyline points="([^"]+)"', cpu)
    assert len(line.split()) == len(plotted.values)  # one point per raw sample (last hour)
    # Higher values are drawn higher (smaller y): the shape is the series'.
    ys = [float(pt.split(",")[1]) for pt in line.split()]
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    assert order == sorted(range(len(ys)), key=lambda i: -plotted.values[i])
    text = re.sub(r"<[^>]+>", "", cpu.split("<figcaption>")[1])
    assert "min 7.5, max 93.25, last 50" in text
    # The same numbers the metrics API answers.
    api = httpx.get(
        f"{plotted.server.url}/api/v1/instances/{plotted.instance}/metrics",
        params={"name": "cpu_percent"},
        headers={"Authorization": f"Bearer {plotted.viewer}"},
    ).json()["series"][0]
    assert (api["min"], api["max"], api["last"]) == (7.5, 93.25, 50.0)
    assert "last 61.5" in re.sub(r"<[^>]+>", "", _figure(r.text, "memory_percent"))
    # The rule states: the newest transition of each rule.
    rules = r.text.split('<table id="rules">')[1].split("</table>")[0]
    assert re.search(r"<td>hot</td><td[^>]*>resolved</td>", rules)
    assert "&lt;script&gt;" in rules
    assert_escaped(r.text)
    assert "&lt;script&gt;window" in r.text  # the hostile metric is shown, as text


def test_the_range_selector_and_its_refusal(plotted: Plotted) -> None:
    week = _page(plotted, plotted.viewer, f"/ui/instances/{plotted.instance}?since=7d")
    assert week.status_code == 200 and "<option selected>7d</option>" in week.text
    assert 'data-metric="cpu_percent"' in week.text
    bad = _page(plotted, plotted.viewer, f"/ui/instances/{plotted.instance}?since=2y")
    assert bad.status_code == 422 and "query.since: one of 1h, 6h, 1d, 7d" in bad.text


def test_no_telemetry_only_when_there_is_none(plotted: Plotted) -> None:
    r = _page(plotted, plotted.viewer, f"/ui/instances/{plotted.quiet}")
    assert r.status_code == 200
    assert "no telemetry reported in the last 1h" in r.text
    assert 'class="metric"' not in r.text and '<table id="rules">' not in r.text


def test_the_fleet_page_plots_a_metric_by_persona(plotted: Plotted) -> None:
    r = _page(plotted, plotted.viewer, "/ui/?metric=memory_percent")
    assert r.status_code == 200, r.text
    chart = r.text.split('<div class="charts" id="metric-chart">')[1].split("</div>")[0]
    assert "memory_percent: latest average by applied persona" in chart
    assert re.search(r'class="label">watched</text>', chart)
    assert 'class="value">61.5</text>' in chart
    cpu = _page(plotted, plotted.viewer, "/ui/")
    assert 'class="value">50</text>' in cpu.text.split('id="metric-chart"')[1]
    # The same averages /metrics exports.
    scrape = httpx.get(f"{plotted.server.url}/metrics").text
    assert 'mien_fleet_metric{metric="memory_percent",persona="watched"} 61.5' in scrape
    # And by tag (the instances are tagged zone=plot; zone is a default metrics_tag_keys).
    assert (
        'mien_fleet_metric_by_tag{metric="memory_percent",tag="zone",value="plot"} 61.5' in scrape
    )
    bad = _page(plotted, plotted.viewer, "/ui/?metric=" + SCRIPT)
    assert bad.status_code == 422 and "query.metric: one of cpu_percent" in bad.text
    assert_escaped(bad.text)


def test_a_user_role_may_not_read_the_plots(plotted: Plotted) -> None:
    for path in (f"/ui/instances/{plotted.instance}", "/ui/?metric=cpu_percent"):
        r = _page(plotted, plotted.user, path)
        assert r.status_code == 403 and "<polyline" not in r.text
