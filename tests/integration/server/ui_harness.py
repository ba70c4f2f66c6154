"""Helpers for the dashboard's tests (HTTP in tests/integration/server/test_ui_http.py, the
browser in tests/e2e/ui/): signing in as a person would, reading a form's CSRF token, and
a fleet seeded with markup where names and descriptions are shown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import httpx

from mien.client import AgentClient, Client
from mien.client import broker as ops

SCRIPT = "<script>window.__pwned='script'</script>"
IMG = '"><img src=x onerror="window.__pwned=\'img\'">'
# Token names allow no spaces: the same attack without them.
TOKEN_NAME_IMG = "\"><img/src=x/onerror=window.__pwned='token'>"

# JSON strings are YAML strings: the payloads go in unchanged.
HOSTILE_PERSONA = (
    "name: hostile\n"
    f"description: {json.dumps(SCRIPT + ' and ' + IMG)}\n"
    f"environment_variables:\n  GREETING: {json.dumps(IMG)}\n"
)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(http: httpx.Client, token: str, next_page: str = "/ui/") -> httpx.Response:
    """GET the sign-in form (its nonce cookie), then POST the token with the nonce."""
    form = http.get("/ui/login", params={"next": next_page})
    assert form.status_code == 200, form.text
    return http.post(
        "/ui/login",
        data={"csrf": csrf_of(form.text), "token": token, "next": next_page},
        follow_redirects=False,
    )


@dataclass
class Tokens:
    admin: str
    operator: str
    viewer: str
    user: str
    hostile_viewer: str


def make_tokens(admin: Client, admin_secret: str) -> Tokens:
    return Tokens(
        admin=admin_secret,
        operator=admin.create_token("ops-ui", role="operator").token,
        viewer=admin.create_token("viewer-ui", role="viewer").token,
        user=admin.create_token("user-ui", role="user").token,
        hostile_viewer=admin.create_token(TOKEN_NAME_IMG, role="viewer").token,
    )


def seed_hostile(admin: Client) -> str:
    """A persona, a binding and an instance whose shown text carries markup; the instance
    id."""
    admin.create_persona(HOSTILE_PERSONA)
    admin.update_persona("hostile", HOSTILE_PERSONA.replace("GREETING", "WELCOME"))
    admin.create_binding(
        "hostile-binding", {"zone": "evil"}, "hostile", priority=5, description=SCRIPT + IMG
    )
    enroll = admin.create_token("enroll-hostile", kind="enroll", uses=1).token
    with AgentClient(admin.server) as anon:
        return anon.enroll(enroll, tags={"zone": "evil"}, hostname=SCRIPT + IMG).instance_id


LAB_PERSONA = {
    "name": "lab",
    "description": SCRIPT,
    "resource_requirements": {"cpu": 1, "memory": "256MiB"},
}
SANDBOX_HOST = "sbx-ui"
MiB = 1024**2


@dataclass
class Leases:
    """Leases seeded on one fake sandbox host (its agent token speaks the host protocol;
    nothing is built): the hostile viewer's failed with a reason full of markup, the user
    token's ready with usage, the operator's provisioning."""

    host: Client
    failed: str
    ready: str
    provisioning: str


def seed_leases(url: str, admin: Client, tokens: Tokens) -> Leases:
    admin.create_persona(LAB_PERSONA)
    enroll = admin.create_token("enroll-sbx", kind="enroll", uses=1).token
    with AgentClient(url) as anon:
        host = Client(url, anon.enroll(enroll, instance_id=SANDBOX_HOST).token)
    host.send(ops.offer(4, 8 * 1024 * MiB, 50 * 1024 * MiB, "test"))

    def ask(token: str) -> str:
        with Client(url, token) as person:
            lease = person.send(ops.request_lease("lab", ttl=3600))
        assert lease.state == "provisioning" and lease.host == SANDBOX_HOST, lease
        return lease.id

    failed = ask(tokens.hostile_viewer)
    host.send(ops.report_lease(failed, "failed", f"the build said {SCRIPT}{IMG}"))
    ready = ask(tokens.user)
    host.send(ops.report_lease(ready, "ready"))
    processes = [["python3", "-c", "print(1)"], ["sh", "-c", SCRIPT]]
    host.send(ops.report_usage(ready, 12.5, 300 * MiB, processes, oom_killed=True))
    return Leases(host, failed, ready, ask(tokens.operator))


def assert_escaped(html: str) -> None:
    """No payload appears as markup; each appears escaped where it is shown."""
    for payload in (SCRIPT, IMG, TOKEN_NAME_IMG, "<img", "<script>window"):
        assert payload not in html, f"unescaped {payload!r} in the page"
