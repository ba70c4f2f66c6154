"""The dashboard in a real browser: Playwright driving Debian's chromium against a real
``mien server`` with two real agents on temp roots.

An operator signs in, walks every page, creates a binding and watches its rollout reach
"applied" live (server-sent events, no reload); a viewer cannot change anything; a form
without its CSRF token is refused; markup in names and descriptions never runs. Screenshots
of every page are kept under ``$MIEN_TEST_ARTIFACTS`` (or the test's temp directory; the
test prints where).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import EXAMPLES, install_zsh, make_machine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "server"))

from server_harness import ServerProcess
from ui_harness import (
    SANDBOX_HOST,
    SCRIPT,
    TOKEN_NAME_IMG,
    make_tokens,
    seed_hostile,
    seed_leases,
)

from tests.e2e.test_fleet import AgentProcess, enroll, until

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (scripts/system-deps installs it)"
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    base = os.environ.get("MIEN_TEST_ARTIFACTS")
    where = (Path(base) if base else tmp_path) / "screenshots" / request.node.name
    where.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {where}")
    return where


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium's sandbox refuses root
        launched = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield launched
        finally:
            launched.close()


class Person:
    """One browser context (its own cookies), watching for script that should not run."""

    def __init__(self, browser: Any, base: str, shots: Path, who: str) -> None:
        self.context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # The page's own script and styles must pass its Content-Security-Policy.
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        self.shots = shots
        self.who = who
        self.count = 0

    def sign_in(self, token: str) -> None:
        self.page.goto("/ui/")
        assert "/ui/login" in self.page.url
        self.page.fill("input[name=token]", token)
        self.page.click("form.login button")
        self.page.wait_for_url("**/ui/")

    def visit(self, path: str) -> Any:
        response = self.page.goto(path)
        self.check()
        return response

    def check(self) -> None:
        """Nothing injected ran: no dialog, no flag set by a payload, no script error."""
        assert self.page.evaluate("typeof window.__pwned") == "undefined", self.page.url
        assert not self.dialogs and not self.errors, (self.dialogs, self.errors)

    def shot(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(self.shots / f"{self.count:02d}-{self.who}-{name}.png"))


def test_dashboard_in_a_browser(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    # The fake sandbox host offers capacity once: it must not be declared lost meanwhile.
    env = {"MIEN_SERVER_SANDBOX_HOST_TIMEOUT": "3600"}
    server = ServerProcess(tmp_path / "server", env=env).start()
    agents: list[AgentProcess] = []
    try:
        with server.client() as admin:
            tokens = make_tokens(admin, server.admin_token)
            admin.create_persona(EXAMPLES / "persona_developer.yml")
            admin.create_persona(EXAMPLES / "test-runner.json")
            hostile_instance = seed_hostile(admin)
            leases = seed_leases(server.url, admin, tokens)
            roots = {n: install_zsh(make_machine(tmp_path / n)) for n in ("web", "db")}
            ids = {
                "web": enroll(server, admin, roots["web"], "role=web"),
                "db": enroll(server, admin, roots["db"], "role=db"),
            }
            enrolled = {iid: admin.get_instance(iid).last_seen for iid in ids.values()}
            agents = [AgentProcess(root, tmp_path / f"{n}.log") for n, root in roots.items()]
            # Running means polling: each instance is seen again after its enrollment.
            until(
                lambda: all(admin.get_instance(i).last_seen != enrolled[i] for i in enrolled),
                what="both agents to poll",
            )

        op = Person(browser, server.url, artifacts, "operator")
        op.sign_in(tokens.operator)
        # --- every page ---
        op.visit("/ui")  # without the slash too
        assert op.page.url.endswith("/ui/")
        for iid in ids.values():
            assert op.page.locator(f"tr[data-instance='{iid}']").count() == 1
        op.shot("fleet")
        op.visit("/ui/?tag=role%3Dweb")
        assert op.page.locator("#instances tbody tr").count() == 1
        op.visit(f"/ui/instances/{ids['web']}")
        assert op.page.locator("#telemetry").inner_text().startswith("no telemetry reported")
        op.shot("instance")
        op.visit("/ui/personas")
        op.shot("personas")
        op.visit("/ui/personas/hostile?from=1&to=2")
        assert op.page.locator("#diff tbody tr").count() >= 1
        op.shot("persona-diff")
        op.visit("/ui/bindings")
        op.shot("bindings")
        op.visit("/ui/audit")
        op.shot("audit")
        # The orchestrator page, from the navigation: it renders under the page's policy.
        op.page.click("header nav a[href='/ui/orchestrator']")
        op.page.wait_for_url("**/ui/orchestrator")
        op.check()
        assert op.page.locator("h1").inner_text() == "Orchestrator"
        assert op.page.locator("#provider-calls").count() == 1
        op.shot("orchestrator")
        # The leases page: an operator sees the hosts' ledger and only their own lease.
        op.page.click("header nav a[href='/ui/leases']")
        op.page.wait_for_url("**/ui/leases")
        op.check()
        assert op.page.locator("#capacity svg").count() == 3
        assert op.page.locator(f"#hosts tr[data-host='{SANDBOX_HOST}']").count() == 1
        assert op.page.locator("#leases tbody tr[data-lease]").count() == 1
        op.shot("leases")

        # --- an admin sees every lease, filters them and releases one ---
        boss = Person(browser, server.url, artifacts, "admin")
        boss.sign_in(tokens.admin)
        boss.visit("/ui/leases")
        assert boss.page.locator("#leases tbody tr[data-lease]").count() == 3
        boss.page.locator("form.filters select[name=state]").select_option("failed")
        boss.page.locator("form.filters button").click()
        boss.page.wait_for_url("**/ui/leases?state=failed*")
        rows = boss.page.locator("#leases tbody tr[data-lease]")
        assert rows.count() == 1 and rows.get_attribute("data-lease") == leases.failed
        assert SCRIPT in rows.inner_text()  # the reason, as text
        boss.shot("leases-failed")
        boss.visit("/ui/leases")
        row = boss.page.locator(f"tr[data-lease='{leases.provisioning}']")
        row.locator("form.danger button").click()
        boss.page.wait_for_url("**/ui/leases")
        assert (
            "released" in boss.page.locator(f"tr[data-lease='{leases.provisioning}']").inner_text()
        )
        boss.shot("lease-released")
        boss.visit(f"/ui/instances/{SANDBOX_HOST}")
        assert boss.page.locator("#host-leases tbody tr[data-lease]").count() == 3
        boss.shot("sandbox-host")

        # --- a binding, and its rollout followed live ---
        # The web agent is stopped while the binding is made, so the page must first show
        # the rollout waiting and then see it applied without a reload.
        assert agents[0].stop() == 0, agents[0].log()
        op.visit("/ui/bindings")
        form = op.page.locator("#new-binding")
        form.locator("input[name=name]").fill("web-developers")
        form.locator("input[name=selector]").fill("role=web")
        form.locator("select[name=persona]").select_option("developer")
        form.locator("input[name=priority]").fill("10")
        form.locator("button").click()
        op.page.wait_for_url("**/ui/rollouts/binding/web-developers")
        op.page.evaluate("window.__same_page = true")  # gone if the page reloaded
        first = op.page.locator("#rollout-line").inner_text()
        assert first.startswith("0 of 1 applied, 1 waiting"), first
        op.shot("rollout-waiting")
        agents[0] = AgentProcess(roots["web"], tmp_path / "web.log")
        op.page.wait_for_selector("#rollout[data-done=true]", timeout=60_000)
        line = op.page.locator("#rollout-line").inner_text()
        assert line.startswith("1 of 1 applied"), (first, line)
        assert op.page.evaluate("window.__same_page") is True  # updated in place, by SSE
        assert (
            op.page.locator(f"tr[data-instance='{ids['web']}']").get_attribute("data-status")
            == "applied"
        )
        op.shot("rollout-applied")
        with server.client() as admin:
            assert admin.active_persona(ids["web"]).in_sync
        # Change its priority through the edit form.
        op.visit("/ui/bindings/web-developers")
        op.page.locator("#edit-binding input[name=priority]").fill("20")
        op.page.locator("#edit-binding button").click()
        op.page.wait_for_url("**/ui/rollouts/binding/web-developers")
        with server.client() as admin:
            assert admin.get_binding("web-developers").priority == 20

        # --- a form without its CSRF token is refused ---
        op.visit("/ui/bindings")
        op.page.evaluate("document.querySelector('#new-binding input[name=csrf]').remove()")
        form = op.page.locator("#new-binding")
        form.locator("input[name=name]").fill("no-csrf")
        with op.page.expect_response("**/ui/bindings") as answer:
            form.locator("button").click()
        assert answer.value.status == 403
        assert "CSRF" in op.page.locator("#error-detail").inner_text()
        op.shot("csrf-refused")

        # --- a viewer can change nothing ---
        viewer = Person(browser, server.url, artifacts, "viewer")
        viewer.sign_in(tokens.viewer)
        viewer.visit("/ui/bindings")
        assert viewer.page.locator("#new-binding").count() == 0
        viewer.visit("/ui/bindings/web-developers")
        assert viewer.page.locator("#edit-binding").count() == 0
        assert viewer.page.locator("form.danger").count() == 0
        viewer.shot("binding-read-only")
        csrf = viewer.page.locator("form.signout input[name=csrf]").get_attribute("value")
        for path, data in (
            ("/ui/bindings", {"name": "v", "selector": "", "persona": "developer"}),
            ("/ui/bindings/web-developers", {"selector": "", "persona": "developer"}),
            ("/ui/bindings/web-developers/delete", {}),
        ):
            refused = viewer.context.request.post(path, form={**data, "csrf": csrf or ""})
            assert refused.status == 403, path
        with server.client() as admin:
            assert [b.name for b in admin.list_bindings()] == ["web-developers", "hostile-binding"]
        viewer.visit("/ui/audit?verify=true")
        assert "this needs 'admin'" in viewer.page.locator("#error-detail").inner_text()

        # --- markup never runs, on every page, shown as text ---
        hostile = Person(browser, server.url, artifacts, "hostile")
        hostile.sign_in(tokens.hostile_viewer)
        assert TOKEN_NAME_IMG in hostile.page.locator("header .who").inner_text()
        for path in (
            "/ui/",
            f"/ui/instances/{hostile_instance}",
            "/ui/personas",
            "/ui/personas/hostile",
            "/ui/personas/hostile?from=1&to=2",
            "/ui/bindings",
            "/ui/bindings/hostile-binding",
            "/ui/rollouts/binding/hostile-binding",
            "/ui/rollouts/persona/hostile",
            "/ui/audit",
            "/ui/leases",
            f"/ui/instances/{SANDBOX_HOST}",
        ):
            hostile.visit(path)
            hostile.page.wait_for_timeout(100)  # give an onerror handler its chance
            hostile.check()
        hostile.visit("/ui/personas")
        assert SCRIPT in hostile.page.locator("#personas").inner_text()
        assert hostile.page.locator("#personas img").count() == 0
        hostile.shot("markup-as-text")

        # --- sign out ---
        op.visit("/ui/")
        op.page.click("form.signout button")
        op.page.wait_for_url("**/ui/login")
        op.page.goto("/ui/bindings")
        assert "/ui/login" in op.page.url
        shots = sorted(p.name for p in artifacts.iterdir())
        assert len(shots) >= 10, shots
    finally:
        statuses = [a.stop() for a in agents]
        assert server.stop() == 0, server.log()
    assert statuses == [0] * len(agents), [a.log() for a in agents]
