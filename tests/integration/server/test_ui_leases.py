"""The dashboard's leases page over plain HTTP against a real ``mien server`` with a fake
sandbox host (its agent token speaks the host protocol; nothing is built): each role sees
exactly the leases the broker API gives it, the hosts' ledger is an operator's, a lease is
released by its holder or an admin through a CSRF-checked form, filters narrow the table,
and a lease's reason is shown as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from server_harness import ServerProcess
from ui_harness import (
    SANDBOX_HOST,
    Leases,
    Tokens,
    assert_escaped,
    csrf_of,
    make_tokens,
    seed_leases,
    sign_in,
)

from mien.client import Client
from mien.client import broker as ops


class Site:
    def __init__(self, server: ServerProcess, tokens: Tokens, leases: Leases) -> None:
        self.server = server
        self.tokens = tokens
        self.leases = leases

    @contextmanager
    def session(self, token: str) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.server.url, timeout=20) as http:
            assert sign_in(http, token).status_code == 303
            yield http

    def api(self, token: str) -> dict[str, str]:
        """What ``GET /broker/leases?all=true&ended=true`` gives this token: id → state."""
        with Client(self.server.url, token) as person:
            found = person.send(ops.list_leases(everyone=True, ended=True)).items
        return {x.id: x.state for x in found}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {"MIEN_SERVER_SANDBOX_HOST_TIMEOUT": "3600"}
    server = ServerProcess(tmp_path_factory.mktemp("ui-leases") / "data", env=env).start()
    try:
        with server.client() as admin:
            tokens = make_tokens(admin, server.admin_token)
            leases = seed_leases(server.url, admin, tokens)
        yield Site(server, tokens, leases)
        leases.host.close()
    finally:
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def shown(html: str, table: str = "leases") -> dict[str, str]:
    """The leases a page's table shows: id → state."""
    body = html.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-lease="([^"]+)">.*?class="state-([a-z_]+)"', body, re.S)
    return dict(rows)


def test_each_role_sees_what_the_api_gives_it(site: Site) -> None:
    t = site.tokens
    mine = {t.user: site.leases.ready, t.operator: site.leases.provisioning}
    for token in (t.user, t.viewer, t.operator, t.admin, t.hostile_viewer):
        expected = site.api(token)
        with site.session(token) as http:
            page = http.get("/ui/leases")
        assert page.status_code == 200, page.text
        assert shown(page.text) == expected, token
        if token in mine:  # a person's own lease, nobody else's
            assert set(expected) == {mine[token]}
        # The ledger is an operator's (GET /broker/hosts), as in the API.
        assert ('<table id="hosts">' in page.text) == (token in (t.operator, t.admin))
        # A user may not open instance pages: no link to one.
        if expected:
            assert ('href="/ui/instances/' in page.text) == (token != t.user), token
    assert set(site.api(t.admin)) == {
        site.leases.failed,
        site.leases.ready,
        site.leases.provisioning,
    }
    assert site.api(t.viewer) == {}


def test_the_page_shows_state_reason_host_limits_usage_and_capacity(site: Site) -> None:
    # A host that does not say whether the OOM killer struck: shown as unknown, not "no".
    site.leases.host.send(ops.report_usage(site.leases.provisioning, 0.5, 1024, []))
    with site.session(site.tokens.admin) as http:
        page = http.get("/ui/leases").text
    quiet = page.split(f'<tr data-lease="{site.leases.provisioning}">', 1)[1].split("</tr>")[0]
    assert "<td>1 KiB</td>\n  <td>–</td>" in quiet
    row = page.split(f'<tr data-lease="{site.leases.ready}">', 1)[1].split("</tr>", 1)[0]
    assert "user-ui" in row and "state-ready" in row and SANDBOX_HOST in row
    assert "1.0 CPU, 256 MiB" in row and "12.5" in row and "300 MiB" in row
    assert '<span class="error">yes</span>' in row  # the OOM killer struck
    assert "<td>2<details>" in row and "print(1)" in row  # two processes launched
    failed = page.split(f'<tr data-lease="{site.leases.failed}">', 1)[1].split("</tr>", 1)[0]
    assert "the build said &lt;script&gt;" in failed
    capacity = page.split('<div class="charts" id="capacity">', 1)[1].split("</div>", 1)[0]
    assert capacity.count("<svg") == 3 and f"{SANDBOX_HOST} used" in capacity
    # 2 of 4 cores are held (the failed lease gave its core back).
    assert "<td>2.0 / 4.0</td>" in page


def test_filters(site: Site) -> None:
    with site.session(site.tokens.admin) as http:
        assert set(shown(http.get("/ui/leases?state=failed").text)) == {site.leases.failed}
        assert set(shown(http.get("/ui/leases?holder=user-ui").text)) == {site.leases.ready}
        assert len(shown(http.get("/ui/leases?persona=lab").text)) == 3
        assert shown(http.get("/ui/leases?persona=other").text) == {}
        bad = http.get("/ui/leases?state=bogus")
        assert bad.status_code == 422 and "query.state: one of" in bad.text


def test_a_sandbox_hosts_instance_page_lists_its_leases(site: Site) -> None:
    with site.session(site.tokens.admin) as http:
        page = http.get(f"/ui/instances/{SANDBOX_HOST}").text
    assert set(shown(page, "host-leases")) == set(site.api(site.tokens.admin))
    assert 'id="sandbox-host"' in page and "CPU 2.0 / 4.0" in page
    assert_escaped(page)
    with site.session(site.tokens.viewer) as http:  # a viewer holds none, sees no ledger
        page = http.get(f"/ui/instances/{SANDBOX_HOST}").text
    assert "Sandbox host: leases" not in page


def test_markup_in_a_reason_and_a_holder_is_text(site: Site) -> None:
    with site.session(site.tokens.hostile_viewer) as http:
        for path in ("/ui/leases", f"/ui/leases?holder={site.tokens.hostile_viewer[:3]}"):
            page = http.get(path)
            assert page.status_code == 200
            assert_escaped(page.text)
        page = http.get("/ui/leases").text
    assert "&lt;script&gt;window.__pwned=" in page and "&lt;img/src=x" in page


def test_release_needs_csrf_and_the_holder_or_an_admin(site: Site) -> None:
    target = site.leases.provisioning  # the operator's
    path = f"/ui/leases/{target}/release"
    with httpx.Client(base_url=site.server.url) as anon:
        assert anon.post(path, data={"csrf": "x"}).status_code == 403
    with site.session(site.tokens.admin) as http:
        page = http.get("/ui/leases").text
        assert f'action="{path}"' in page
        for data in ({}, {"csrf": ""}, {"csrf": "wrong"}):
            refused = http.post(path, data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
    with site.session(site.tokens.user) as http:  # not the holder: the API's 403, audited
        page = http.get("/ui/leases").text
        assert f'action="{path}"' not in page  # no button for someone else's lease
        refused = http.post(path, data={"csrf": csrf_of(page)})
        assert refused.status_code == 403 and "belongs to &#39;ops-ui&#39;" in refused.text
    with site.session(site.tokens.viewer) as http:
        refused = http.post(path, data={"csrf": csrf_of(http.get("/ui/leases").text)})
        assert refused.status_code == 403
    assert site.api(site.tokens.admin)[target] == "provisioning"
    with site.server.client() as admin:
        denied = [r for r in admin.audit(action="lease.denied") if r.detail["wanted"] == "release"]
        assert {r.actor for r in denied} == {"user-ui", "viewer-ui"}
    with site.session(site.tokens.admin) as http:
        csrf = csrf_of(http.get("/ui/leases").text)
        done = http.post(path, data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/ui/leases"
        assert site.api(site.tokens.admin)[target] == "released"
        again = http.post(path, data={"csrf": csrf})
        assert again.status_code == 409 and "already ended" in again.text
        assert http.post("/ui/leases/not-a-uuid/release", data={"csrf": csrf}).status_code == 422
    with site.server.client() as admin:
        released = list(admin.audit(action="lease.released"))
    assert any(r.detail.get("lease_id") == target for r in released), released
