"""The dashboard over plain HTTP against a real ``mien server``: every route needs a
session; sign-in, its cookie and sign-out; CSRF on every form; roles exactly as in the API
(a viewer can change nothing); markup in names and descriptions always escaped.

The browser walk (chromium) is tests/e2e/ui/test_dashboard.py.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from server_harness import ServerProcess
from ui_harness import (
    IMG,
    SANDBOX_HOST,
    SCRIPT,
    Leases,
    Tokens,
    assert_escaped,
    csrf_of,
    make_tokens,
    seed_hostile,
    seed_leases,
    sign_in,
)

from mien.client import AgentClient, Client
from tests.support import run_mien

READ_PAGES = [
    "/ui/",
    "/ui/?state=never",
    "/ui/?tag=zone%3Devil",
    "/ui/?persona=hostile",
    "/ui/instances/{iid}",
    "/ui/personas",
    "/ui/personas/hostile",
    "/ui/personas/hostile?from=1&to=2",
    "/ui/bindings",
    "/ui/bindings/hostile-binding",
    "/ui/rollouts/binding/hostile-binding",
    "/ui/rollouts/persona/hostile",
    "/ui/audit",
    "/ui/orchestrator",
    "/ui/leases",
    "/ui/leases?state=failed&persona=lab",
    f"/ui/instances/{SANDBOX_HOST}",
]

WRITES = [
    ("/ui/bindings", {"name": "b-new", "selector": "zone=evil", "persona": "hostile"}),
    (
        "/ui/bindings/hostile-binding",
        {"selector": "zone=evil", "persona": "hostile", "priority": "9"},
    ),
    ("/ui/bindings/hostile-binding/delete", {}),
]


class Fleet:
    def __init__(
        self, server: ServerProcess, tokens: Tokens, instance: str, leases: Leases
    ) -> None:
        self.server = server
        self.tokens = tokens
        self.instance = instance
        self.leases = leases

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=20)

    @contextmanager
    def session(self, token: str) -> Iterator[httpx.Client]:
        with self.http() as http:
            signed = sign_in(http, token)
            assert signed.status_code == 303, signed.text
            yield http

    def pages(self) -> list[str]:
        return [p.format(iid=self.instance) for p in READ_PAGES]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # The fake sandbox host offers capacity once: it must not be declared lost meanwhile.
    env = {"MIEN_SERVER_SANDBOX_HOST_TIMEOUT": "3600"}
    server = ServerProcess(tmp_path_factory.mktemp("ui") / "data", env=env).start()
    try:
        with server.client() as admin:
            tokens = make_tokens(admin, server.admin_token)
            instance = seed_hostile(admin)
            leases = seed_leases(server.url, admin, tokens)
        yield Fleet(server, tokens, instance, leases)
        leases.host.close()
    finally:
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def _bindings(fleet: Fleet) -> list[tuple[str, int, int]]:
    with fleet.server.client() as admin:
        return [(b.name, b.priority, b.version) for b in admin.list_bindings()]


def test_every_page_needs_a_session(fleet: Fleet) -> None:
    with fleet.http() as http:
        for path in fleet.pages():
            r = http.get(path, follow_redirects=False)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/ui/login?next=%2Fui%2F"), path
        before = _bindings(fleet)
        for path, data in WRITES:
            r = http.post(path, data={**data, "csrf": "x"}, follow_redirects=False)
            assert r.status_code == 403, path
        assert _bindings(fleet) == before
        events = http.get("/ui/rollouts/persona/hostile/events", follow_redirects=False)
        assert events.status_code == 303


def test_sign_in_cookie_and_sign_out(fleet: Fleet) -> None:
    with fleet.http() as http:
        r = sign_in(http, fleet.tokens.viewer, "/ui/personas")
        assert r.status_code == 303 and r.headers["location"] == "/ui/personas"
        cookie = r.headers["set-cookie"]
        assert "mien_session=" in cookie
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "path=/ui" in lowered
        assert "secure" not in lowered.replace("mien_session", "")  # plain HTTP here
        assert fleet.tokens.viewer not in cookie  # the token never goes into the cookie
        page = http.get("/ui/personas")
        assert page.status_code == 200 and "viewer-ui" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        old = dict(http.cookies)
        out = http.post("/ui/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303
    with fleet.http() as replay:  # the old cookie is dead on the server, not just deleted
        replay.cookies.update(old)
        assert replay.get("/ui/", follow_redirects=False).status_code == 303


def test_sign_in_refusals(fleet: Fleet) -> None:
    with fleet.http() as http:
        assert sign_in(http, "mien_a_not-a-token").status_code == 401
        form = http.get("/ui/login")
        # No nonce, or a nonce not matching the cookie: refused before the token is looked at.
        for csrf in ("", "forged"):
            r = http.post(
                "/ui/login",
                data={"csrf": csrf, "token": fleet.tokens.admin},
                follow_redirects=False,
            )
            assert r.status_code == 403 and "mien_session" not in r.headers.get("set-cookie", "")
        assert form.status_code == 200
        with fleet.server.client() as admin:
            enroll = admin.create_token("enroll-x", kind="enroll", uses=1).token
        refused = sign_in(http, enroll)
        assert refused.status_code == 403 and "enrollment token" in refused.text
        # Only a dashboard path is followed after sign-in.
        away = sign_in(http, fleet.tokens.viewer, "//evil.example/")
        assert away.headers["location"] == "/ui/"


def test_an_agent_token_cannot_sign_in(fleet: Fleet) -> None:
    with fleet.server.client() as admin:
        enroll = admin.create_token("enroll-agent", kind="enroll", uses=1).token
    with AgentClient(fleet.server.url) as anon:
        agent_token = anon.enroll(enroll).token
    with fleet.http() as http:
        r = sign_in(http, agent_token)
        assert r.status_code == 403 and "agent tokens are for agents" in r.text


def test_revoking_the_token_ends_the_session(fleet: Fleet) -> None:
    with fleet.server.client() as admin:
        made = admin.create_token("short-lived", role="viewer")
    with fleet.session(made.token) as http:
        assert http.get("/ui/").status_code == 200
        with fleet.server.client() as admin:
            admin.revoke_token(made.id)
        assert http.get("/ui/", follow_redirects=False).status_code == 303


def test_every_form_needs_its_csrf_token(fleet: Fleet) -> None:
    with fleet.session(fleet.tokens.operator) as http:
        page = http.get("/ui/bindings")
        assert page.status_code == 200
        before = _bindings(fleet)
        for path, data in [*WRITES, ("/ui/logout", {})]:
            for csrf in (None, "", "wrong"):
                body = dict(data) if csrf is None else {**data, "csrf": csrf}
                r = http.post(path, data=body, follow_redirects=False)
                assert r.status_code == 403, (path, csrf)
                assert "CSRF" in r.text
        assert _bindings(fleet) == before
        # Another session's token is not this session's.
        with fleet.session(fleet.tokens.operator) as other:
            theirs = csrf_of(other.get("/ui/bindings").text)
        r = http.post("/ui/bindings/hostile-binding/delete", data={"csrf": theirs})
        assert r.status_code == 403 and _bindings(fleet) == before
        # A body that is not a URL-encoded form carries no CSRF token, whatever it says.
        r = http.post("/ui/bindings/hostile-binding/delete", json={"csrf": csrf_of(page.text)})
        assert r.status_code == 403 and _bindings(fleet) == before


def test_a_viewer_sees_every_page_and_can_change_nothing(fleet: Fleet) -> None:
    with fleet.session(fleet.tokens.viewer) as http:
        for path in fleet.pages():
            r = http.get(path)
            assert r.status_code == 200, (path, r.text[:500])
            assert '<form method="post" action="/ui/bindings' not in r.text, path
        csrf = csrf_of(http.get("/ui/").text)
        before = _bindings(fleet)
        for path, data in WRITES:
            r = http.post(path, data={**data, "csrf": csrf}, follow_redirects=False)
            assert r.status_code == 403, path
            # The API's own refusal, word for word.
            assert "has role &#39;viewer&#39;; this needs &#39;operator&#39;" in r.text
        assert _bindings(fleet) == before
        verify = http.get("/ui/audit?verify=true")
        assert verify.status_code == 403 and "this needs &#39;admin&#39;" in verify.text
        assert "needs an admin token" in http.get("/ui/audit").text


def test_a_user_token_reads_personas_only(fleet: Fleet) -> None:
    with fleet.session(fleet.tokens.user) as http:
        assert http.get("/ui/personas").status_code == 200
        assert http.get("/ui/personas/hostile").status_code == 200
        instance = f"/ui/instances/{fleet.instance}"
        for path in ("/ui/", "/ui/bindings", "/ui/audit", instance, "/ui/orchestrator"):
            assert http.get(path).status_code == 403, path
        assert http.get("/ui/leases").status_code == 200  # a person's own leases


def test_markup_is_escaped_on_every_page(fleet: Fleet) -> None:
    with fleet.session(fleet.tokens.hostile_viewer) as http:
        for path in fleet.pages():
            r = http.get(path)
            assert r.status_code == 200, path
            assert_escaped(r.text)
        shown = http.get("/ui/personas").text
        assert "&lt;script&gt;window.__pwned=" in shown  # shown, as text
        # The instance never reports, so the stream stays open: read its first frame.
        with http.stream("GET", "/ui/rollouts/binding/hostile-binding/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            frame = next(line for line in events.iter_lines() if line.startswith("data:"))
        data = json.loads(frame.removeprefix("data:"))
        assert data["line"].startswith("0 of 1 applied, 1 waiting")
        assert not data["done"] and fleet.instance in data["rows"]
        assert_escaped(data["rows"] + data["chart"])


def test_an_operator_creates_edits_and_deletes_a_binding(fleet: Fleet) -> None:
    with fleet.session(fleet.tokens.operator) as http:
        csrf = csrf_of(http.get("/ui/bindings").text)
        made = http.post(
            "/ui/bindings",
            data={
                "csrf": csrf,
                "name": "ui-made",
                "selector": "zone=evil, tier=a|b",
                "persona": "hostile",
                "priority": "3",
                "description": "made in the dashboard",
            },
            follow_redirects=False,
        )
        assert (
            made.status_code == 303 and made.headers["location"] == "/ui/rollouts/binding/ui-made"
        )
        with fleet.server.client() as admin:
            b = admin.get_binding("ui-made")
            assert b.selector == {"zone": "evil", "tier": ["a", "b"]} and b.priority == 3
            assert any(r.actor == "ops-ui" for r in admin.audit(action="binding.create"))
        page = http.get("/ui/bindings/ui-made").text
        etag = b.etag
        changed = http.post(
            "/ui/bindings/ui-made",
            data={"csrf": csrf, "etag": etag, "selector": "zone=evil", "persona": "hostile",
                  "priority": "7"},
            follow_redirects=False,
        )  # fmt: skip
        assert changed.status_code == 303, changed.text
        stale = http.post(
            "/ui/bindings/ui-made",
            data={
                "csrf": csrf,
                "etag": etag,
                "selector": "",
                "persona": "hostile",
                "priority": "1",
            },
        )
        assert stale.status_code == 412 and "changed since you read it" in stale.text
        bad = http.post("/ui/bindings", data={"csrf": csrf, "name": "x", "selector": "nokey",
                                              "persona": "hostile"})  # fmt: skip
        assert bad.status_code == 422 and "is not KEY=VALUE" in bad.text
        missing = http.post("/ui/bindings", data={"csrf": csrf, "name": "y", "persona": "ghost"})
        assert missing.status_code == 422 and "does not exist" in missing.text
        with fleet.server.client() as admin:
            assert admin.get_binding("ui-made").priority == 7
        assert "ui-made" in page
        gone = http.post("/ui/bindings/ui-made/delete", data={"csrf": csrf}, follow_redirects=False)
        assert gone.status_code == 303
        with fleet.server.client() as admin:
            assert "ui-made" not in [b.name for b in admin.list_bindings()]


def test_editing_an_add_binding_keeps_its_mode(fleet: Fleet) -> None:
    with fleet.server.client() as admin:
        admin.create_binding("ui-add", {"zone": "evil"}, "hostile", mode="add")
    with fleet.session(fleet.tokens.operator) as http:
        page = http.get("/ui/bindings/ui-add").text
        assert "<dt>Mode</dt><dd>add</dd>" in page
        csrf = csrf_of(page)
        with fleet.server.client() as admin:
            etag = admin.get_binding("ui-add").etag
        # A form without the field (an older page) changes the priority, not the mode.
        kept = http.post(
            "/ui/bindings/ui-add",
            data={"csrf": csrf, "etag": etag, "selector": "zone=evil", "persona": "hostile",
                  "priority": "2"},
            follow_redirects=False,
        )  # fmt: skip
        assert kept.status_code == 303, kept.text
        with fleet.server.client() as admin:
            b = admin.get_binding("ui-add")
            assert (b.mode, b.priority) == ("add", 2)
        made = http.post(
            "/ui/bindings",
            data={"csrf": csrf, "name": "ui-add-2", "selector": "zone=evil",
                  "persona": "hostile", "mode": "add"},
            follow_redirects=False,
        )  # fmt: skip
        assert made.status_code == 303, made.text
        bad = http.post("/ui/bindings", data={"csrf": csrf, "name": "ui-add-3",
                                              "persona": "hostile", "mode": "merge"})  # fmt: skip
        assert bad.status_code == 422 and "mode" in bad.text
        with fleet.server.client() as admin:
            assert admin.get_binding("ui-add-2").mode == "add"
            admin.delete_binding("ui-add")
            admin.delete_binding("ui-add-2")


def test_admin_verifies_the_audit_chain(fleet: Fleet) -> None:
    with fleet.session(fleet.tokens.admin) as http:
        page = http.get("/ui/audit?verify=true")
        assert page.status_code == 200 and "The chain verifies" in page.text
        assert "binding.create" in http.get("/ui/audit?action=binding.").text


def test_bad_input_is_a_page_not_a_traceback(fleet: Fleet) -> None:
    with fleet.session(fleet.tokens.viewer) as http:
        assert http.get("/ui/instances/nope").status_code == 404
        assert http.get("/ui/personas/nope").status_code == 404
        assert http.get("/ui/?state=bogus").status_code == 422
        assert http.get("/ui/?tag=novalue").status_code == 422
        assert http.get("/ui/rollouts/other/x").status_code == 422
        assert http.get("/ui/personas/hostile?from=0").status_code == 422


def test_the_dashboard_is_not_in_the_api_document(fleet: Fleet) -> None:
    paths = httpx.get(f"{fleet.server.url}/api/v1/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
    css = httpx.get(f"{fleet.server.url}/ui/static/mien.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_the_cookie_is_secure_over_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ServerProcess(tmp_path / "data", tls=(cert, key)).start()
    try:
        with httpx.Client(
            base_url=server.url, verify=ssl.create_default_context(cafile=cert)
        ) as http:
            r = sign_in(http, server.admin_token)
            assert r.status_code == 303
            assert "secure" in r.headers["set-cookie"].lower()
    finally:
        assert server.stop() == 0


def test_client_reads_match(fleet: Fleet) -> None:
    """The fleet page shows what the API answers (one computation, two faces)."""
    with Client(fleet.server.url, fleet.tokens.viewer) as api:
        summary = api.fleet_summary()
    with fleet.session(fleet.tokens.viewer) as http:
        text = http.get("/ui/").text
    in_sync = summary.in_sync - summary.partly_in_effect
    assert f"{summary.instances} instance(s): {in_sync} in sync" in text
    assert f"{summary.partly_in_effect} applied but partly in effect" in text


def test_partly_in_effect_and_the_machine_status_on_the_pages(fleet: Fleet) -> None:
    """An instance whose persona is only partly in effect says so on the fleet and instance
    pages, never "in sync"; what its agent reports of the machine is shown, escaped."""
    with fleet.server.client() as admin:
        admin.create_persona({"name": "partial-ui", "environment_variables": {"A": "1"}})
        enroll = admin.create_token("enroll-partial", kind="enroll", uses=1).token
        with AgentClient(fleet.server.url) as anon:
            agent = anon.enroll(enroll, instance_id="ui-partial")
        admin.activate("ui-partial", "partial-ui")
    now = "2026-12-02T10:00:00Z"
    with AgentClient(fleet.server.url, agent.token) as api:
        desired = api.desired(None, wait=0)
        assert desired is not None
        api.report(
            "applied",
            activation_id=desired.activation_id,
            hash=desired.hash,
            persona="partial-ui",
            version=desired.version,
            settings=[
                {"setting": "environment_variables.A", "status": "applied", "reason": "in-effect"},
                {"setting": "os_settings.x", "status": "stored", "reason": "no-effect"},
                {"setting": "shell", "status": "failed", "reason": "error", "message": "boom"},
            ],
            status={
                "at": now,
                "persona": "partial-ui",
                "customizations": [{"key": "theme", "value": json.dumps(SCRIPT), "source": "user"}],
                "drift": [f"/home/{IMG}"],
                "rules": [{"rule": "cpu-hot", "phase": "firing", "since": now}],
                "actions": [
                    {"id": 3, "rule": "cpu-hot", "action": "notify", "status": "done", "at": now}
                ],
            },
        )
    summary = "partly in effect: 1 of 3 settings applied; 1 stored, not applied; 1 failed"
    with fleet.session(fleet.tokens.viewer) as http:
        listing = http.get("/ui/", params={"state": "partly-in-effect"}).text
        row = listing.split('data-instance="ui-partial"', 1)[1].split("</tr>", 1)[0]
        assert summary in row and "in sync" not in row
        assert 'data-instance="ui-partial"' not in http.get("/ui/?state=in-sync").text
        page = http.get("/ui/instances/ui-partial").text
    assert summary in page
    assert '<span class="warn">' + summary in page
    for shown in ('id="machine-rules"', "cpu-hot", "firing", 'id="actions"', "notify", "theme"):
        assert shown in page, shown
    assert_escaped(page)


def test_server_help_names_the_dashboard() -> None:
    shown = run_mien("server", "--help")
    assert shown.returncode == 0 and "/ui" in shown.stdout and "dashboard" in shown.stdout


def test_an_open_event_stream_does_not_hold_up_a_stop(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        with server.client() as admin:
            seed_hostile(admin)  # an instance that never reports: the rollout stays open
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert sign_in(http, server.admin_token).status_code == 303
            with http.stream("GET", "/ui/rollouts/binding/hostile-binding/events") as events:
                lines = events.iter_lines()
                next(line for line in lines if line.startswith("data:"))
                started = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                rest = list(lines)  # the server ends the stream as it shuts down
                assert "event: done" not in rest
        assert server.proc.wait(20) == 0  # type: ignore[union-attr]
        assert time.monotonic() - started < 10
    finally:
        server.kill()
    assert "dashboard http://127.0.0.1" in server.log()


# Every dashboard route, and the concrete URL the tests above use for it: a new route fails
# here until it is added, and so gets the session, CSRF and role checks.
ROUTES = {
    ("GET", "/ui/login"): "/ui/login",
    ("POST", "/ui/login"): "/ui/login",
    ("POST", "/ui/logout"): "/ui/logout",
    ("GET", "/ui/"): "/ui/",
    ("GET", "/ui/instances/{instance_id}"): "/ui/instances/{iid}",
    ("GET", "/ui/personas"): "/ui/personas",
    ("GET", "/ui/personas/{name}"): "/ui/personas/hostile",
    ("GET", "/ui/bindings"): "/ui/bindings",
    ("POST", "/ui/bindings"): "/ui/bindings",
    ("GET", "/ui/bindings/{name}"): "/ui/bindings/hostile-binding",
    ("POST", "/ui/bindings/{name}"): "/ui/bindings/hostile-binding",
    ("POST", "/ui/bindings/{name}/delete"): "/ui/bindings/hostile-binding/delete",
    ("GET", "/ui/rollouts/{kind}/{name}"): "/ui/rollouts/binding/hostile-binding",
    ("GET", "/ui/rollouts/{kind}/{name}/events"): "/ui/rollouts/binding/hostile-binding/events",
    ("GET", "/ui/audit"): "/ui/audit",
    ("GET", "/ui/orchestrator"): "/ui/orchestrator",
    ("GET", "/ui/leases"): "/ui/leases",
    ("POST", "/ui/leases/{lease_id}/release"): "/ui/leases/{lease}/release",
}


def test_every_dashboard_route_is_covered() -> None:
    from fastapi.routing import APIRoute

    from mien.server import ui

    served = {
        (method, ui.PREFIX + route.path)
        for router in ui.routers()
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
        if method != "HEAD"
    }
    assert served == set(ROUTES), "update ROUTES (and the tests) for new or removed routes"
    gets = {url for (method, _p), url in ROUTES.items() if method == "GET"} - {"/ui/login"}
    posts = {url for (method, _p), url in ROUTES.items() if method == "POST"}
    assert gets - {"/ui/rollouts/binding/hostile-binding/events"} <= set(READ_PAGES)
    # A lease's release is tested on its own (test_ui_leases.py): its refusals are the
    # release route's (holder or admin), not the operator role of WRITES.
    others = {"/ui/login", "/ui/logout", "/ui/leases/{lease}/release"}
    assert posts - others == {path for path, _data in WRITES}
