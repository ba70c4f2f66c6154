"""The operator CLI as a process against a real server: personas (push, list, show,
versions, diff, delete), bindings with rollout progress, activations that apply or fail,
remote commands (output, exit status, refusal 126, overrides), instances."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli_harness import Cli
from server_harness import SimAgent, wait_until

from mien.client import Client

WEB_V1 = """\
name: {name}
description: web front end
environment_variables: {{ROLE: web}}
restricted_commands: [shutdown]
"""
WEB_V2 = WEB_V1.replace("[shutdown]", "[shutdown, reboot]")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- personas ------------------------------------------------------------------------------


def test_push_list_show_versions_diff(cli: Cli, tmp_path: Path) -> None:
    web = write(tmp_path / "p" / "shop.yaml", WEB_V1.format(name="shop"))

    created = cli("persona", "push", web)
    assert created.returncode == 0, created.out
    assert re.search(r"shop v1 created \(sha256:[0-9a-f]{12}, ETag \"v1-", created.stderr)

    again = cli("persona", "push", web)
    assert again.returncode == 0 and "shop v1 unchanged" in again.stderr

    web.write_text(WEB_V2.format(name="shop"))
    updated = cli("persona", "push", web, "-o", "json")
    assert updated.returncode == 0, updated.out
    [entry] = json.loads(updated.stdout)
    assert entry["action"] == "updated" and entry["version"] == 2
    assert entry["content_hash"].startswith("sha256:")

    listed = json.loads(cli("persona", "list", "-o", "json").stdout)
    shop = next(p for p in listed if p["name"] == "shop")
    assert shop["latest_version"] == 2 and shop["content_hash"] == entry["content_hash"]
    table = cli("persona", "list")
    assert re.search(r"shop\s+│ v2\s+│ sha256:", table.stdout), table.stdout

    shown = cli("persona", "show", "shop")
    assert shown.returncode == 0
    assert shown.stdout.startswith("name: shop\n") and "- reboot" in shown.stdout
    assert "shop v2" in shown.stderr and entry["content_hash"] in shown.stderr
    old = json.loads(cli("persona", "show", "shop", "--version", "1", "--format", "json").stdout)
    assert old["restricted_commands"] == ["shutdown"]

    versions = cli("persona", "versions", "shop", "-o", "json")
    assert [v["version"] for v in json.loads(versions.stdout)] == [1, 2]
    assert "v2 (latest)" in cli("persona", "versions", "shop").stdout

    diff = cli("persona", "diff", "shop", "--from", "1", "--to", "2")
    assert diff.returncode == 0
    assert "--- shop v1\n+++ shop v2\n" in diff.stdout and "+- reboot\n" in diff.stdout
    same = cli("persona", "diff", "shop", "--from", "2", "--to", "2")
    assert same.stdout == "" and "same content" in same.stderr
    missing = cli("persona", "diff", "shop", "--from", "1", "--to", "9")
    assert missing.returncode == 1 and "version 9 of persona 'shop' not found" in missing.stderr


def test_push_with_if_match(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "cond.yaml", WEB_V1.format(name="cond"))
    assert cli("persona", "push", path).returncode == 0
    etag = json.loads(cli("persona", "show", "cond", "-o", "json").stdout)["etag"]
    path.write_text(WEB_V2.format(name="cond"))
    ok = cli("persona", "push", path, "--if-match", etag)
    assert ok.returncode == 0 and "cond v2 new version" in ok.stderr
    path.write_text(WEB_V1.format(name="cond"))
    stale = cli("persona", "push", path, "--if-match", etag)
    assert stale.returncode == 1
    assert "changed since you read it: the latest is version 2" in stale.stderr
    two = cli("persona", "push", path, path.with_name("other.yaml"), "--if-match", etag)
    assert two.returncode == 2


def test_push_reports_the_servers_problems_per_file(cli: Cli, tmp_path: Path) -> None:
    good = write(tmp_path / "ok" / "fine.yaml", WEB_V1.format(name="fine"))
    bad = write(
        tmp_path / "ok" / "broken.yaml",
        "name: broken\nos_settings: {theme: 3}\nbehavioral_settings: {logging_level: loud}\n",
    )
    result = cli("persona", "push", bad, good)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"{bad}:2:22: os_settings.theme: must be a valid string" in lines
    assert any(
        line.startswith(f"{bad}:3:") and "behavioral_settings.logging_level" in line
        for line in lines
    )
    assert "fine v1 created" in result.stderr and "1 of 2 file(s) refused" in result.stderr
    # A directory stands for its persona files; nothing else.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("persona", "push", empty).returncode == 2
    assert "no such file" in cli("persona", "push", tmp_path / "nope.yaml").stderr


def test_push_orders_parents_before_children(cli: Cli, tmp_path: Path) -> None:
    child = write(tmp_path / "fam" / "a-child.yaml", "name: fam-child\nextends: fam-base\n")
    base = write(tmp_path / "fam" / "z-base.yaml", "name: fam-base\nos_settings: {theme: dark}\n")
    result = cli("persona", "push", child, base)
    assert result.returncode == 0, result.out
    assert result.stderr.index("fam-base v1 created") < result.stderr.index("fam-child v1")


def test_delete_in_use_is_explained(cli: Cli, admin: Client, tmp_path: Path) -> None:
    cli("persona", "push", write(tmp_path / "used.yaml", WEB_V1.format(name="used")))
    admin.create_binding("uses-used", {"tier": "x"}, "used")
    refused = cli("persona", "delete", "used")
    assert refused.returncode == 1
    assert "binding 'uses-used' selects it" in refused.stderr and "--force" in refused.stderr
    operator = admin.create_token("op-delete", role="operator").token
    not_admin = cli("persona", "delete", "used", "--force", token=operator)
    assert not_admin.returncode == 1 and "needs the admin role" in not_admin.stderr
    forced = cli("persona", "delete", "used", "--force")
    assert forced.returncode == 0 and "deleted persona 'used' (forced)" in forced.stderr
    assert cli("persona", "show", "used").returncode == 1
    gone = cli("persona", "delete", "never-was")
    assert gone.returncode == 1 and "persona 'never-was' not found" in gone.stderr


# --- bindings and rollouts -----------------------------------------------------------------


def test_bind_add_waits_for_the_rollout(
    cli: Cli, admin: Client, tmp_path: Path, enroll: Callable[..., SimAgent]
) -> None:
    cli("persona", "push", write(tmp_path / "shopweb.yaml", WEB_V1.format(name="shopweb")))
    agents = [enroll(f"shop-{n}", {"app": "shop", "n": str(n)}) for n in range(3)]
    enroll("shop-db", {"app": "shop-db"})
    override = write(tmp_path / "quiet.yaml", "behavioral_settings: {logging_level: warning}\n")

    result = cli(
        "bind", "add", "shop-web", "--selector", "app=shop", "--persona", "shopweb",
        "--override", override, "--priority", "5", "--wait", "--timeout", "60s",
    )  # fmt: skip
    assert result.returncode == 0, result.out
    assert "created binding shop-web: app=shop -> shopweb (priority 5, with override)" in (
        result.stderr
    )
    assert "binding shop-web: 3 of 3 applied" in result.stderr
    for agent in agents:
        doc: dict[str, Any] = agent.applied.document  # type: ignore[union-attr,assignment]
        assert doc["behavioral_settings"]["logging_level"] == "warning"

    listed = json.loads(cli("bind", "list", "-o", "json").stdout)
    mine = next(b for b in listed if b["name"] == "shop-web")
    assert mine["selector"] == {"app": "shop"} and mine["priority"] == 5
    assert "logging_level: warning" in cli("bind", "show", "shop-web").stdout

    exists = cli("bind", "add", "shop-web", "-s", "app=shop", "-p", "shopweb")
    assert exists.returncode == 1 and "--replace" in exists.stderr
    replaced = cli("bind", "add", "shop-web", "-s", "app=shop,shop-db", "-p", "shopweb",
                   "--replace", "--wait", "--timeout", "60s")  # fmt: skip
    assert replaced.returncode == 0, replaced.out
    assert "binding shop-web: 4 of 4 applied" in replaced.stderr

    # A new version of the persona rolls out to the same instances.
    path = write(tmp_path / "shopweb.yaml", WEB_V2.format(name="shopweb"))
    pushed = cli("persona", "push", path, "--wait", "--timeout", "60s")
    assert pushed.returncode == 0, pushed.out
    assert "rollout of shopweb: 4 of 4 applied" in pushed.stderr

    assert cli("bind", "rm", "shop-web").returncode == 0
    assert cli("bind", "rm", "shop-web").returncode == 1


def test_rollout_names_the_instances_that_failed(
    cli: Cli, tmp_path: Path, enroll: Callable[..., SimAgent]
) -> None:
    cli("persona", "push", write(tmp_path / "flaky.yaml", WEB_V1.format(name="flaky")))
    enroll("flaky-ok", {"app": "flaky"})
    enroll("flaky-bad", {"app": "flaky"}, fail_with=lambda doc: "disk full: /var is at 100%")
    result = cli("bind", "add", "flaky", "-s", "app=flaky", "-p", "flaky", "--wait",
                 "--timeout", "60s")  # fmt: skip
    assert result.returncode == 1
    assert "1 of 2 applied, 1 failed" in result.stderr
    assert "flaky-bad: failed: disk full: /var is at 100%" in result.stderr


def test_bind_usage_errors(cli: Cli) -> None:
    no_selector = cli("bind", "add", "x", "--persona", "p")
    assert no_selector.returncode == 2 and "--selector KEY=VALUE" in no_selector.stderr
    bad = cli("bind", "add", "x", "--persona", "p", "--selector", "role")
    assert bad.returncode == 2 and "--selector 'role': write KEY=VALUE" in bad.stderr
    twice = cli("bind", "add", "x", "-p", "p", "-s", "a=1", "-s", "a=2")
    assert twice.returncode == 2 and "given twice" in twice.stderr
    unknown = cli("bind", "add", "x", "-p", "no-such-persona", "-s", "a=1")
    assert unknown.returncode == 1 and "persona 'no-such-persona' does not exist" in unknown.stderr


def test_bind_override_problems_name_the_file(cli: Cli, tmp_path: Path) -> None:
    bad = write(tmp_path / "over.yaml", "behavioral_settings:\n  logging_level: loud\n")
    result = cli("bind", "add", "x", "-p", "p", "-s", "a=1", "--override", bad)
    assert result.returncode == 1
    assert f"{bad}:2:18: behavioral_settings.logging_level:" in result.stderr


# --- activations ---------------------------------------------------------------------------


def test_activate_waits_until_applied(
    cli: Cli, tmp_path: Path, enroll: Callable[..., SimAgent]
) -> None:
    cli("persona", "push", write(tmp_path / "act.yaml", WEB_V1.format(name="act")))
    enroll("act-1", {"app": "act"})
    result = cli("instance", "activate", "act-1", "act", "--timeout", "60s")
    assert result.returncode == 0, result.out
    assert "act-1: act v1: pending" in result.stderr
    assert re.search(r"act-1: act v1 applied \(sha256:[0-9a-f]{12}\)", result.stderr)

    shown = json.loads(cli("instance", "show", "act-1", "-o", "json").stdout)
    inst = shown["instance"]
    assert inst["in_sync"] and inst["desired"]["source"] == "activation"
    assert inst["applied"]["hash"] == inst["desired"]["hash"]
    assert shown["activations"][0]["status"] == "applied"
    assert shown["history"][-1]["persona"] == "act"
    table = cli("instance", "show", "act-1").stdout
    assert "desired (server)" in table and "applied (agent reported)" in table
    assert "In sync: the agent reported applying the desired content." in table
    # An activation id is shown whole wherever it is shown, so it can be pasted back.
    activation_id = shown["activations"][0]["id"]
    assert len(activation_id) == 36
    assert table.count(activation_id) == 3, table  # desired, applied, recent activations
    explained = cli("instance", "effective", "act-1").stdout
    assert f"activation {activation_id}: act v1" in explained, explained

    no_wait = cli("instance", "activate", "act-1", "act", "--no-wait")
    assert no_wait.returncode == 0
    assert re.fullmatch(r"[0-9a-f-]{36}\n", no_wait.stdout)

    cleared = cli("instance", "clear-activation", "act-1")
    assert cleared.returncode == 0 and "activation cleared; desired now -" in cleared.stderr


def test_activate_reports_the_agents_failure(
    cli: Cli, admin: Client, tmp_path: Path, enroll: Callable[..., SimAgent]
) -> None:
    cli("persona", "push", write(tmp_path / "good.yaml", WEB_V1.format(name="fine-app")))
    cli("persona", "push", write(tmp_path / "bad.yaml", WEB_V1.format(name="bad-app")))

    def refuse(doc: dict[str, Any]) -> str | None:
        return (
            "post_activation_script exited 3: nginx -t failed" if doc["name"] == "bad-app" else None
        )

    enroll("fail-1", {"app": "fail"}, fail_with=refuse)
    assert cli("instance", "activate", "fail-1", "fine-app").returncode == 0
    result = cli("instance", "activate", "fail-1", "bad-app", "--timeout", "60s")
    assert result.returncode == 1
    assert "fail-1: bad-app v1 failed; the agent reported:" in result.stderr
    assert "post_activation_script exited 3: nginx -t failed" in result.stderr
    # Desired and applied stay apart: the agent still runs the content it applied before.
    before = admin.get_persona("fine-app")
    active = admin.active_persona("fail-1")
    assert active.desired.persona == "bad-app" and not active.in_sync
    assert active.applied.state == "failed" and active.applied.hash != active.desired.hash
    assert active.activation is not None and active.activation.status == "failed"
    assert before.content_hash  # (the agent's applied hash is the effective fine-app's)
    listed = cli("instance", "list", "--tag", "app=fail")
    assert re.search(r"fail-1 .*bad-app v1 \(activated\) .*│ failed", listed.stdout), listed.stdout
    shown = cli("instance", "show", "fail-1").stdout
    assert "NOT in sync: the agent reported a failure" in shown
    assert "post_activation_script exited 3" in shown


def test_activate_errors(cli: Cli, admin: Client, tmp_path: Path) -> None:
    missing = cli("instance", "activate", "no-such-vm", "web")
    assert missing.returncode == 1 and "instance 'no-such-vm' not found" in missing.stderr
    viewer = admin.create_token("viewer-act", role="viewer").token
    cli("persona", "push", write(tmp_path / "v.yaml", WEB_V1.format(name="v-persona")))
    token = admin.create_token("e-offline", kind="enroll").token
    from mien.client import AgentClient

    with AgentClient(admin.server) as api:
        api.enroll(token, instance_id="offline-1")
    forbidden = cli("instance", "activate", "offline-1", "v-persona", token=viewer)
    assert forbidden.returncode == 1
    assert "role 'viewer'; this needs 'operator'" in forbidden.stderr
    slow = cli("instance", "activate", "offline-1", "v-persona", "--timeout", "1s")
    assert slow.returncode == 1 and "is still pending after 1s" in slow.stderr
    bad_timeout = cli("instance", "activate", "offline-1", "v-persona", "--timeout", "soon")
    assert bad_timeout.returncode == 2 and "--timeout 'soon'" in bad_timeout.stderr


# --- remote commands -----------------------------------------------------------------------

LOCKED = """\
name: locked
restricted_commands: [shutdown, "mkfs*"]
command_overrides:
  greet: |
    #!/bin/sh
    echo "hello from the override: $*"
"""


def test_exec_through_the_routing_table(
    cli: Cli, admin: Client, tmp_path: Path, enroll: Callable[..., SimAgent]
) -> None:
    cli("persona", "push", write(tmp_path / "locked.yaml", LOCKED))
    enroll("exec-1", {"app": "exec"})
    assert cli("instance", "activate", "exec-1", "locked").returncode == 0

    ran = cli("instance", "exec", "exec-1", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (ran.returncode, ran.stdout, ran.stderr) == (3, "out\n", "err\n")

    refused = cli("instance", "exec", "exec-1", "--", "mkfs.ext4", "/dev/sda")
    assert refused.returncode == 126 and refused.stdout == ""
    assert "refused by persona 'locked' (restricted)" in refused.stderr

    greeted = cli("instance", "exec", "exec-1", "--", "greet", "you")
    assert greeted.returncode == 0 and greeted.stdout == "hello from the override: you\n"

    as_json = cli("instance", "exec", "exec-1", "-o", "json", "--", "echo", "hi")
    record = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and record["stdout"] == "hi\n" and record["exit_status"] == 0

    history = json.loads(cli("instance", "commands", "exec-1", "-o", "json").stdout)
    assert [c["command"] for c in history[:4]] == ["echo", "greet", "mkfs.ext4", "sh"]
    assert history[2]["refused"]

    path = cli("instance", "exec", "exec-1", "--", "/bin/ls")
    assert path.returncode == 2 and "bare command name" in path.stderr
    nothing = cli("instance", "exec", "exec-1")
    assert nothing.returncode == 2


def test_exec_on_an_absent_agent_times_out(cli: Cli, admin: Client) -> None:
    token = admin.create_token("e-absent", kind="enroll").token
    from mien.client import AgentClient

    with AgentClient(admin.server) as api:
        api.enroll(token, instance_id="absent-1")
    result = cli("instance", "exec", "absent-1", "--wait", "1s", "--", "uptime")
    assert result.returncode == 124
    assert "uptime was not picked up yet after 1s" in result.stderr
    assert "mien instance commands absent-1" in result.stderr


# --- instances -----------------------------------------------------------------------------


def test_instance_list_tag_effective_delete(
    cli: Cli, admin: Client, tmp_path: Path, enroll: Callable[..., SimAgent]
) -> None:
    cli("persona", "push", write(tmp_path / "inv.yaml", WEB_V1.format(name="inv")))
    admin.create_binding("inv", {"team": "inv"}, "inv")
    enroll("inv-1", {"team": "inv", "zone": "a"})
    enroll("inv-2", {"team": "other"})
    wait_until(lambda: admin.active_persona("inv-1").in_sync, what="inv-1 applied")

    listed = cli("instance", "list", "--tag", "team=inv")
    assert listed.returncode == 0
    assert re.search(
        r"inv-1\s+│ inv-1\s+│ team=inv,zone=a\s+│ inv v1 \(binding inv\)\s+│ inv v1\s+│ in sync",
        listed.stdout,
    ), listed.stdout
    assert "inv-2" not in listed.stdout
    by_persona = json.loads(cli("instance", "list", "--persona", "inv", "-o", "json").stdout)
    assert [i["id"] for i in by_persona] == ["inv-1"]

    # Tagging inv-2 into the team makes the binding select it.
    tagged = cli("instance", "tag", "inv-2", "team=inv", "canary=yes")
    assert tagged.returncode == 0 and "desired inv v1 (binding inv)" in tagged.stderr
    removed = cli("instance", "tag", "inv-2", "-k", "canary", "-o", "json")
    assert json.loads(removed.stdout)["tags"] == {"team": "inv"}
    bad = cli("instance", "tag", "inv-2", "team")
    assert bad.returncode == 2 and "write KEY=VALUE" in bad.stderr

    explained = cli("instance", "effective", "inv-1", "-o", "json")
    eff = json.loads(explained.stdout)
    used = [b["name"] for b in eff["explain"]["bindings"] if b["used"]]
    assert used == ["inv"] and eff["desired"]["source"] == "binding"
    text = cli("instance", "effective", "inv-1", "--key", "environment_variables").stdout
    assert "inv v1: selected by binding 'inv'" in text
    assert re.search(r"environment_variables.ROLE\s+│ inv v1\s+│ \"web\"", text), text
    doc = cli("instance", "effective", "inv-1", "--document").stdout
    assert doc.startswith("name: inv\n")

    assert cli("instance", "delete", "inv-2").returncode == 0
    gone = cli("instance", "show", "inv-2")
    assert gone.returncode == 1 and "instance 'inv-2' not found" in gone.stderr
