"""The dashboard's orchestrator page over plain HTTP against a real ``mien server``: a
pushed fleet rule with the phase, last evaluation and last action the API reports, and the
replica that leads; a declared webhook provider shown with its secret set and the secret
nowhere in the page; its calls (one failing against a receiver that is down, one refused),
those in trouble first, each linked to its instance; the fleet policy's version, or none.
A viewer sees what the API gives a viewer, a user is refused as the API refuses it, and
markup in a provider's description and a call's error stays text.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from server_harness import ServerProcess, free_port, wait_until
from ui_harness import IMG, SCRIPT, Tokens, assert_escaped, make_tokens, sign_in

from mien.client import AgentClient

SECRET = "a-webhook-secret-never-shown-on-any-page"
INSTANCE = "vm-orch"
RULE = """\
name: web-count
selector: {role: web}
when: count >= 1
then:
  - set_tags: {tier: hot}
"""
POLICY = f"""\
description: {json.dumps(SCRIPT)}
trust:
  - selector: {{role: web}}
    max: {{resource_scaling: medium, process_control: none}}
switching: []
"""


@dataclass
class Site:
    server: ServerProcess
    tokens: Tokens
    no_policy: str  # the page as an admin saw it before the policy was pushed

    @contextmanager
    def session(self, token: str) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.server.url, timeout=20) as http:
            assert sign_in(http, token).status_code == 303
            yield http

    def api(self, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.server.admin_token}"}
        answer = httpx.get(f"{self.server.url}/api/v1{path}", headers=headers, timeout=20, **kw)
        assert answer.status_code == 200, answer.text
        return answer.json()


def admin_call(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.admin_token}", **kw.pop("headers", {})}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=20, **kw)


def scale(server: ServerProcess, token: str, seq: int, rule: str, params: dict[str, Any]) -> None:
    """An agent's ``scale`` action, as its telemetry carries it."""
    detail = {"persona": "scaler", "rule": rule, "action": "scale", "params": params}
    event = {"seq": seq, "ts": time.time(), "kind": "adapt.action.requested", "detail": detail}
    sent = httpx.post(
        f"{server.url}/api/v1/agent/telemetry",
        content=gzip.compress(json.dumps({"events": [event]}).encode()),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=20,
    )
    assert sent.status_code == 200, sent.text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {
        "MIEN_SERVER_ORCHESTRATOR_INTERVAL": "0.3",
        "MIEN_SERVER_PROVIDER_POLL_INTERVAL": "0.1",
        # A failing call stays failing while the tests look at it.
        "MIEN_SERVER_PROVIDER_RETRY_BASE": "600",
    }
    server = ServerProcess(tmp_path_factory.mktemp("ui-orch") / "data", env=env).start()
    try:
        with server.client() as admin:
            tokens = make_tokens(admin, server.admin_token)
            admin.create_persona({"name": "scaler", "trust_levels": {"resource_scaling": "medium"}})
            admin.create_binding("web", {"role": "web"}, "scaler")
            enroll = admin.create_token("enroll-orch", kind="enroll", uses=1).token
        declared = admin_call(
            server,
            "PUT",
            "/providers/hooks",
            json={
                "driver": "webhook",
                "selector": {"role": "web"},
                # Nobody listens there: each attempt fails and the call stays failing.
                "config": {"url": f"http://127.0.0.1:{free_port()}/resize", "timeout": 2},
                "secret": SECRET,
                "description": f"resize {SCRIPT}{IMG}",
            },
        )
        assert declared.status_code == 200, declared.text
        with AgentClient(server.url) as anon:
            agent = anon.enroll(enroll, instance_id=INSTANCE, tags={"role": "web"}).token
        pushed = admin_call(
            server,
            "POST",
            "/fleet-rules",
            content=RULE,
            headers={"Content-Type": "application/yaml"},
        )
        assert pushed.status_code == 201, pushed.text
        scale(server, agent, 1, "busy", {"cpu": 4})
        # Neither cpu nor memory: refused by the gate, whose error names the keys sent.
        scale(server, agent, 2, IMG, {SCRIPT: 1})
        site = Site(server, tokens, "")
        wait_until(
            lambda: (
                {c["status"] for c in site.api("/provider-calls")["items"]}
                == {"failing", "refused"}
            ),
            what="one call failing and one refused",
        )
        wait_until(
            lambda: site.api("/fleet-rules/web-count")["actions"],
            what="the fleet rule to fire and act",
        )
        with site.session(tokens.admin) as http:
            site.no_policy = http.get("/ui/orchestrator").text
        policy = admin_call(
            server, "PUT", "/policy", content=POLICY, headers={"Content-Type": "application/yaml"}
        )
        assert policy.status_code == 200, policy.text
        yield site
    finally:
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def section(html: str, table: str) -> str:
    return html.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]


def rows(html: str, table: str, key: str) -> list[str]:
    """The ``data-KEY`` of each row of a table, in page order."""
    return re.findall(rf'<tr data-{key}="([^"]+)"', section(html, table))


def row(html: str, table: str, key: str, value: str) -> str:
    return section(html, table).split(f'<tr data-{key}="{value}"', 1)[1].split("</tr>", 1)[0]


def test_the_page_shows_rules_providers_calls_and_policy(site: Site) -> None:
    with site.session(site.tokens.admin) as http:
        page = http.get("/ui/orchestrator")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<a href="/ui/orchestrator">Orchestrator</a>' in html

    # The rule, as GET /fleet-rules/web-count gives it.
    rule = site.api("/fleet-rules/web-count")
    assert rows(html, "fleet-rules", "rule") == ["web-count"]
    shown = row(html, "fleet-rules", "rule", "web-count")
    assert rule["phase"] == "firing" and 'class="state-firing">firing' in shown
    assert f"<td>{rule['version']}</td>" in shown and "role=web" in shown
    assert "count &gt;= 1" in shown and "count=1" in shown  # the condition, what it saw
    assert "instances=[&#34;vm-orch&#34;]" in shown  # the action's detail
    assert rule["actions"][0]["kind"] in shown and rule["actions"][0]["status"] in shown
    lead = site.api("/orchestrator")
    assert lead["leader"] and f"Replica <code>{lead['leader']}</code> leads" in html

    # The provider: its secret is set, and nowhere in the page.
    assert rows(html, "providers", "provider") == ["hooks"]
    hooks = row(html, "providers", "provider", "hooks")
    assert "<td>webhook</td>" in hooks and "role=web" in hooks
    assert '<td class="secret">set</td>' in hooks
    assert SECRET not in html

    # The calls: the same as the API's, those in trouble first and marked, linked.
    calls = site.api("/provider-calls")["items"]
    assert set(rows(html, "provider-calls", "call")) == {c["id"] for c in calls}
    failing = next(c for c in calls if c["status"] == "failing")
    assert failing["last_error"] and failing["attempts"] >= 1
    shown = row(html, "provider-calls", "call", failing["id"])
    assert shown.startswith(' class="problem"') and 'class="state-failing"' in shown
    assert f'<a href="/ui/instances/{INSTANCE}">{INSTANCE}</a>' in shown
    assert f"<td>{failing['attempts']}</td>" in shown and "cpus=4" in shown
    assert "next " in shown  # when it is tried again
    assert "2 failing, failed or refused (however old, 50 at most) listed first" in html

    # The policy in force, and before it none.
    assert "<dt>Version</dt><dd>1 " in html and "resource_scaling ≤ medium" in html
    assert "nobody may switch" in html
    assert "No fleet policy" in site.no_policy and "No fleet policy" not in html


def test_a_viewer_sees_what_the_api_gives_a_viewer(site: Site) -> None:
    viewer = site.tokens.viewer
    with site.session(viewer) as http:
        page = http.get("/ui/orchestrator")
    assert page.status_code == 200, page.text
    html = page.text
    names = [r["name"] for r in site.api("/fleet-rules", viewer)["items"]]
    assert rows(html, "fleet-rules", "rule") == names
    assert rows(html, "providers", "provider") == ["hooks"]
    assert '<td class="secret">set</td>' in html and SECRET not in html
    calls = site.api("/provider-calls", viewer)["items"]
    assert set(rows(html, "provider-calls", "call")) == {c["id"] for c in calls}
    assert site.api("/policy", viewer)["version"] == 1 and "<dt>Version</dt><dd>1 " in html


def test_a_user_is_refused_as_the_api_refuses_it(site: Site) -> None:
    user = site.tokens.user
    refused = httpx.get(
        f"{site.server.url}/api/v1/providers",
        headers={"Authorization": f"Bearer {user}"},
        timeout=20,
    )
    assert refused.status_code == 403
    with site.session(user) as http:
        page = http.get("/ui/orchestrator")
        leases = http.get("/ui/leases").text
    assert page.status_code == 403
    assert refused.json()["detail"].replace("'", "&#39;") in page.text
    assert "hooks" not in page.text and "web-count" not in page.text
    assert 'href="/ui/orchestrator"' not in leases  # no link to a page it may not open


def test_markup_in_a_description_and_a_call_error_is_text(site: Site) -> None:
    with site.session(site.tokens.hostile_viewer) as http:
        page = http.get("/ui/orchestrator")
    assert page.status_code == 200
    html = page.text
    assert_escaped(html)
    hooks = row(html, "providers", "provider", "hooks")
    assert "resize &lt;script&gt;window.__pwned=" in hooks
    refused = next(c for c in site.api("/provider-calls")["items"] if c["status"] == "refused")
    assert "<script>" in refused["last_error"]  # the API gives the markup back as sent
    shown = row(html, "provider-calls", "call", refused["id"])
    assert "not &lt;script&gt;window.__pwned=" in shown and "&lt;img src=x" in shown


def test_the_fleet_calls_route_filters_by_status(site: Site) -> None:
    failing = site.api("/provider-calls", params={"status": "failing"})["items"]
    assert failing and {c["status"] for c in failing} == {"failing"}
    both = site.api("/provider-calls", params=[("status", "failing"), ("status", "refused")])
    assert {c["status"] for c in both["items"]} == {"failing", "refused"}
    bad = admin_call(site.server, "GET", "/provider-calls", params={"status": "broken"})
    assert bad.status_code == 422 and "status" in bad.text
