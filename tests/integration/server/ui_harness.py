"""Helpers for the dashboard's tests (HTTP in tests/integration/server/test_ui_http.py, the
browser in tests/e2e/ui/): signing in as a person would, reading a form's CSRF token, and
a fleet seeded with markup where names and descriptions are shown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from mien.client import AgentClient, Client

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
    return enroll_agent(admin, enroll, tags={"zone": "evil"}, hostname=SCRIPT + IMG).instance_id


def enroll_agent(admin: Client, enroll_token: str, **fields: Any) -> Any:
    """Enroll an instance on ``admin``'s server as an agent would (no TLS here)."""
    with AgentClient(admin.server) as api:
        return api.enroll(enroll_token, **fields)


def assert_escaped(html: str) -> None:
    """No payload appears as markup; each appears escaped where it is shown."""
    for payload in (SCRIPT, IMG, TOKEN_NAME_IMG, "<img", "<script>window"):
        assert payload not in html, f"unescaped {payload!r} in the page"
