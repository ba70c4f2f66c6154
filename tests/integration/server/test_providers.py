"""Providers against a real server process and a real loopback webhook receiver: a signed,
idempotent resize retried after a 500 and shown as succeeded; a receiver that is down shown
as failing with its next attempt, and the call finished after a server restart; a persona
without resource_scaling trust refused and shown; a persona's resource_requirements asking
for a resize; declarations checked and their secret never given back.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_harness import ServerProcess, free_port, wait_until

from mien.client import AgentClient
from mien.server.providers.signing import verify

SECRET = "a-webhook-secret-of-some-length"
FAST = {
    "MIEN_SERVER_PROVIDER_POLL_INTERVAL": "0.1",
    "MIEN_SERVER_PROVIDER_RETRY_BASE": "0.3",
    "MIEN_SERVER_PROVIDER_RETRY_CAP": "1",
    "MIEN_SERVER_PROVIDER_RECONCILE_INTERVAL": "0.3",
}


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: checks each request's signature, records it, and
    answers the next status of ``answers`` (then 200). Acts once per idempotency key."""

    answers: list[int] = field(default_factory=list)
    port: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    acted: list[str] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                why = verify(
                    SECRET,
                    self.headers.get("X-Mien-Timestamp", ""),
                    self.headers.get("X-Mien-Signature", ""),
                    body,
                    time.time(),
                )
                key = self.headers.get("Idempotency-Key", "")
                outer.seen.append({"body": json.loads(body), "key": key, "bad": why})
                status = outer.answers.pop(0) if outer.answers else 200
                if why is not None:
                    status = 401
                elif status < 300 and key not in outer.acted:
                    outer.acted.append(key)
                answer = json.dumps({"cpus": 4}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = self.port or free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/resize"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def fast_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", env=FAST).start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


@pytest.fixture
def any_server(tmp_path: Path, db_url: str | None) -> Iterator[ServerProcess]:
    """:func:`fast_server` on SQLite and on a throwaway PostgreSQL."""
    proc = ServerProcess(tmp_path / "data", db_url, env=FAST).start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {kw.pop('token', server.admin_token)}"}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=30, **kw)


def mien(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
    return subprocess.run(
        [sys.executable, "-m", "mien.cli.main", *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        timeout=120,
        check=False,
    )


def persona(name: str, trust: str | None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "description": "providers test", **extra}
    if trust is not None:
        doc["trust_levels"] = {"resource_scaling": trust}
    return doc


def fleet(server: ServerProcess, doc: dict[str, Any], url: str) -> tuple[str, str]:
    """A persona bound to role=web, a webhook provider serving role=web, and an enrolled
    instance vm-1 with role=web: (instance, agent token)."""
    admin = server.client()
    with admin:
        admin.create_persona(doc)
        admin.create_binding("web", {"role": "web"}, doc["name"])
        secret = admin.create_token("enroll", kind="enroll", uses=1).token
    declared = api(
        server,
        "PUT",
        "/providers/hooks",
        json={
            "driver": "webhook",
            "selector": {"role": "web"},
            "config": {"url": url, "timeout": 2},
            "secret": SECRET,
        },
    )
    assert declared.status_code == 200, declared.text
    with AgentClient(server.url) as agent:
        done = agent.enroll(secret, instance_id="vm-1", tags={"role": "web"})
    return done.instance_id, done.token


def scale_event(server: ServerProcess, token: str, seq: int = 1, cpu: Any = 4) -> httpx.Response:
    batch = {
        "events": [
            {
                "seq": seq,
                "ts": time.time(),
                "kind": "adapt.action.requested",
                "detail": {
                    "persona": "scaler",
                    "rule": "busy",
                    "action": "scale",
                    "params": {"cpu": cpu},
                    "change": 1,
                },
            }
        ]
    }
    return httpx.post(
        f"{server.url}/api/v1/agent/telemetry",
        content=gzip.compress(json.dumps(batch).encode()),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=30,
    )


def calls(server: ServerProcess, instance: str) -> list[dict[str, Any]]:
    answer = api(server, "GET", f"/instances/{instance}/provider-calls")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def audit_actions(server: ServerProcess) -> list[str]:
    answer = api(server, "GET", "/audit", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return [r["action"] for r in answer.json()["items"]]


def test_a_scale_request_is_signed_retried_after_a_500_and_acted_on_once(
    any_server: ServerProcess, receiver: Receiver
) -> None:
    fast_server = any_server
    receiver.answers = [500]
    instance, token = fleet(fast_server, persona("scaler", "medium"), receiver.url)
    sent = scale_event(fast_server, token)
    assert sent.status_code == 200, sent.text

    done = wait_until(
        lambda: [c for c in calls(fast_server, instance) if c["status"] == "succeeded"],
        what="the call to succeed",
    )
    (call,) = done
    assert call["attempts"] == 2 and call["provider"] == "hooks"
    assert call["params"] == {"cpus": 4} and call["kind"] == "resize"
    assert call["result"] == {"status": 200, "answer": {"cpus": 4}}
    assert [s["bad"] for s in receiver.seen] == [None, None], "every request is signed"
    keys = {s["key"] for s in receiver.seen}
    assert keys == {call["idempotency_key"]} == {f"scale:{instance}:1"}
    assert receiver.seen[0]["body"]["params"] == {"cpus": 4}
    assert receiver.acted == [call["idempotency_key"]]

    # The agent sends the same batch again (its answer was lost): nothing new is asked.
    assert scale_event(fast_server, token).status_code == 200
    time.sleep(1.0)  # several poll intervals: a resend would have happened by now
    assert len(receiver.seen) == 2
    assert len(calls(fast_server, instance)) == 1

    # A request that cannot be sent as it is: refused, shown, never sent.
    assert scale_event(fast_server, token, seq=2, cpu="lots").status_code == 200
    bad = next(c for c in calls(fast_server, instance) if c["idempotency_key"].endswith(":2"))
    assert bad["status"] == "refused" and bad["params"] == {"cpu": "lots"}
    assert bad["last_error"] == "a resize takes cpus and/or memory_mib, not cpu"
    assert len(receiver.seen) == 2
    actions = audit_actions(fast_server)
    for wanted in ("provider.declare", "provider.requested", "provider.failing"):
        assert wanted in actions
    assert actions.count("provider.succeeded") == 1


def test_a_receiver_that_is_down_is_failing_and_a_restarted_server_finishes_the_call(
    tmp_path: Path,
) -> None:
    port = free_port()
    down = Receiver(port=port)
    env = {**FAST, "MIEN_SERVER_PROVIDER_RETRY_BASE": "0.5", "MIEN_SERVER_PROVIDER_RETRY_CAP": "2"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        instance, token = fleet(server, persona("scaler", "high"), down.url)
        assert scale_event(server, token, cpu="+1").status_code == 200
        failing = wait_until(
            lambda: [
                c
                for c in calls(server, instance)
                if c["status"] == "failing" and c["attempts"] >= 2
            ],
            what="the call to be failing",
        )[0]
        assert failing["next_attempt_at"] is not None
        assert "ConnectError" in failing["last_error"]
        assert failing["params"] == {"cpus": "+1"}
        assert server.stop() == 0
        down.start()  # the receiver comes back while the server is away
        server.start()
        done = wait_until(
            lambda: [c for c in calls(server, instance) if c["status"] == "succeeded"],
            what="the restarted server to finish the call",
        )[0]
        assert done["attempts"] > failing["attempts"]
        assert done["next_attempt_at"] is None
        assert [s["key"] for s in down.seen] == [done["idempotency_key"]]
    finally:
        down.stop()
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def test_a_persona_without_resource_scaling_trust_is_refused_and_shown(
    fast_server: ServerProcess, receiver: Receiver
) -> None:
    instance, token = fleet(fast_server, persona("scaler", "low"), receiver.url)
    assert scale_event(fast_server, token).status_code == 200
    (call,) = calls(fast_server, instance)
    assert call["status"] == "refused"
    assert call["last_error"] == (
        "persona 'scaler' needs resource_scaling trust medium, the persona grants low"
    )
    time.sleep(0.5)
    assert receiver.seen == []
    assert "provider.refused" in audit_actions(fast_server)
    shown = mien(fast_server, "instance", "show", instance)
    assert shown.returncode == 0, shown.stderr
    assert "provider calls" in shown.stdout and "refused" in shown.stdout
    assert "needs resource_scaling trust medium" in shown.stdout
    data = json.loads(mien(fast_server, "instance", "show", instance, "-o", "json").stdout)
    assert data["provider_calls"][0]["status"] == "refused"


def test_an_instance_no_provider_serves_is_refused_not_dropped(
    fast_server: ServerProcess, receiver: Receiver
) -> None:
    instance, token = fleet(fast_server, persona("scaler", "medium"), receiver.url)
    with fast_server.client() as admin:
        admin.set_tags(instance, {"role": "db"})
    assert scale_event(fast_server, token).status_code == 200
    (call,) = calls(fast_server, instance)
    assert (call["status"], call["provider"]) == ("refused", "(none)")
    assert call["last_error"] == "no provider named '(none)' is declared"


def test_a_persona_needing_another_size_asks_the_provider_once(
    fast_server: ServerProcess, receiver: Receiver
) -> None:
    doc = persona("big", "medium", resource_requirements={"cpu": 2, "memory": "2GiB"})
    instance, _token = fleet(fast_server, doc, receiver.url)
    wait_until(lambda: receiver.acted, what="the resize to reach the receiver")
    first = receiver.seen[0]
    assert first["body"]["params"] == {"cpus": 2, "memory_mib": 2048}
    assert first["body"]["reason"] == "persona 'big' v1 needs cpus=2,memory_mib=2048"
    time.sleep(1.0)  # several reconcile rounds
    assert len(receiver.seen) == 1
    (call,) = calls(fast_server, instance)
    assert call["status"] == "succeeded"


def test_declarations_are_checked_and_the_secret_is_never_returned(
    fast_server: ServerProcess,
) -> None:
    bad = api(
        fast_server,
        "PUT",
        "/providers/hooks",
        json={"driver": "webhook", "config": {"url": "ftp://x"}, "secret": SECRET},
    )
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["path"] == "config.url"
    no_secret = api(
        fast_server,
        "PUT",
        "/providers/hooks",
        json={"driver": "webhook", "config": {"url": "http://127.0.0.1:9/x"}},
    )
    assert no_secret.status_code == 422 and "secret" in no_secret.json()["detail"]
    unknown = api(fast_server, "PUT", "/providers/hooks", json={"driver": "cloud"})
    assert unknown.status_code == 422
    assert api(fast_server, "GET", "/providers").json()["items"] == []

    good = api(
        fast_server,
        "PUT",
        "/providers/hooks",
        json={"driver": "webhook", "config": {"url": "http://127.0.0.1:9/x"}, "secret": SECRET},
    )
    assert good.status_code == 200, good.text
    # An update without the secret keeps it.
    again = api(
        fast_server,
        "PUT",
        "/providers/hooks",
        json={"driver": "webhook", "config": {"url": "http://127.0.0.1:9/y"}},
    )
    assert again.status_code == 200 and again.json()["version"] == 2
    for path in ("/providers", "/providers/hooks", "/audit"):
        text = api(fast_server, "GET", path).text
        assert SECRET not in text, path
    assert api(fast_server, "GET", "/providers/hooks").json()["has_secret"] is True
    assert api(fast_server, "DELETE", "/providers/hooks").status_code == 204
    assert api(fast_server, "GET", "/providers/hooks").status_code == 404
    missing = api(fast_server, "GET", "/instances/vm-nope/provider-calls")
    assert missing.status_code == 404


def test_the_cli_pushes_lists_and_shows_providers(
    fast_server: ServerProcess, tmp_path: Path
) -> None:
    doc = tmp_path / "hooks.yaml"
    doc.write_text(
        "name: hooks\ndriver: webhook\nselector: {role: web}\n"
        "config: {url: 'http://127.0.0.1:9/resize', timeout: 3}\n"
    )
    key = tmp_path / "hooks.key"
    key.write_text(SECRET + "\n")
    pushed = mien(fast_server, "provider", "push", str(doc), "--secret-file", str(key))
    assert pushed.returncode == 0, pushed.stderr
    assert "provider hooks v1 (webhook)" in pushed.stderr
    listed = mien(fast_server, "provider", "list")
    assert "hooks" in listed.stdout and "role=web" in listed.stdout
    shown = mien(fast_server, "provider", "show", "hooks")
    assert "config.url" in shown.stdout and "set" in shown.stdout
    assert SECRET not in shown.stdout + listed.stdout

    doc.write_text("name: hooks\ndriver: [webhook\n")
    broken = mien(fast_server, "provider", "push", str(doc))
    assert broken.returncode == 2 and f"{doc}:3" in broken.stderr, broken.stderr
    doc.write_text("name: hooks\ndriver: webhook\nconfig: {url: 'gopher://x'}\n")
    refused = mien(fast_server, "provider", "push", str(doc))
    assert refused.returncode != 0 and "config.url" in refused.stderr, refused.stderr
    assert "Traceback" not in broken.stderr + refused.stderr
    removed = mien(fast_server, "provider", "remove", "hooks")
    assert removed.returncode == 0 and "provider hooks removed" in removed.stderr
    assert "no providers" in mien(fast_server, "provider", "list").stderr


def test_a_size_the_agent_reports_is_not_asked_for_again(
    fast_server: ServerProcess, receiver: Receiver
) -> None:
    instance, token = fleet(fast_server, persona("big", "medium"), receiver.url)

    def report(cpus: float, mib: float, seq: int) -> None:
        samples = [
            {"seq": seq, "ts": time.time(), "name": "cpu_count", "value": cpus},
            {"seq": seq + 1, "ts": time.time(), "name": "memory_total_mib", "value": mib},
        ]
        sent = httpx.post(
            f"{fast_server.url}/api/v1/agent/telemetry",
            json={"samples": samples},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert sent.status_code == 200, sent.text

    report(2, 2048, 1)
    doc = persona("big", "medium", resource_requirements={"cpu": 2, "memory": "2GiB"})
    assert api(fast_server, "PUT", "/personas/big", json=doc).status_code == 200
    time.sleep(1.5)  # several reconcile rounds: the instance already has that size
    assert calls(fast_server, instance) == [] and receiver.seen == []
    report(1, 2048, 3)  # the machine shrank
    wait_until(lambda: receiver.acted, what="the resize to reach the receiver")
    assert receiver.seen[0]["body"]["params"] == {"cpus": 2, "memory_mib": 2048}


def test_the_fleet_policy_caps_a_call_the_persona_would_allow(
    fast_server: ServerProcess, receiver: Receiver
) -> None:
    instance, token = fleet(fast_server, persona("scaler", "high"), receiver.url)
    policy = {"trust": [{"selector": {"role": "web"}, "max": {"resource_scaling": "low"}}]}
    pushed = api(fast_server, "PUT", "/policy", json=policy)
    assert pushed.status_code in (200, 201), pushed.text
    assert scale_event(fast_server, token).status_code == 200
    (call,) = calls(fast_server, instance)
    assert call["status"] == "refused"
    assert call["last_error"].startswith("the fleet policy (trust[0]")
    assert call["last_error"].endswith("caps resource_scaling at low, the call needs medium")
    time.sleep(0.5)
    assert receiver.seen == []
