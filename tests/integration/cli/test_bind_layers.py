"""``mien bind add --mode add`` and ``mien instance effective`` as processes against a real
server: a persona layered on top of the chosen one rolls out to the instances it selects,
every layer is listed with the binding that brought it, and a rule name defined twice is
shown on the instance naming both sources."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from cli_harness import Cli
from server_harness import SimAgent, wait_until

from mien.client import Client

BASE = """\
name: lay-web
restricted_commands: [reboot]
adaptation_rules:
  - {name: cpu-high, when: metrics.cpu_percent > 90.0, then: [{action: notify, message: hot}]}
"""
ADDED = """\
name: lay-watch
environment_variables: {EXPORTER: "on"}
restricted_commands: [halt]
adaptation_rules:
  - {name: disk-full, when: metrics.cpu_percent > 95.0, then: [{action: notify, message: disk}]}
"""
CLASH = """\
name: lay-clash
adaptation_rules:
  - {name: cpu-high, when: metrics.cpu_percent > 10.0, then: [{action: notify, message: x}]}
"""


def test_bind_add_mode_add_layers_and_explains(
    cli: Cli, admin: Client, tmp_path: Path, enroll: Callable[..., SimAgent]
) -> None:
    for name, text in (("web", BASE), ("watch", ADDED), ("clash", CLASH)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        assert cli("persona", "push", path).returncode == 0
    admin.create_binding("lay-web", {"app": "lay"}, "lay-web")
    eu = enroll("lay-eu", {"app": "lay", "region": "eu"})
    enroll("lay-us", {"app": "lay", "region": "us"})
    wait_until(lambda: admin.active_persona("lay-us").in_sync, what="lay-us applied")

    added = cli("bind", "add", "lay-watch", "-s", "app=lay", "-s", "region=eu", "-p",
                "lay-watch", "--mode", "add", "--wait", "--timeout", "60s")  # fmt: skip
    assert added.returncode == 0, added.out
    assert (
        "created binding lay-watch: app=lay region=eu +> lay-watch (priority 0, adds on top)"
        in added.stderr
    )
    assert "binding lay-watch: 1 of 1 applied" in added.stderr
    doc = eu.applied.document  # type: ignore[union-attr]
    assert [r["name"] for r in doc["adaptation_rules"]] == ["cpu-high", "disk-full"]
    assert doc["restricted_commands"] == ["reboot", "halt"]

    assert re.search(
        r"lay-watch\s+│ app=lay region=eu\s+│ lay-watch\s+│ add", cli("bind", "list").stdout
    )
    assert "mode add" in cli("bind", "show", "lay-watch").stdout

    listed = cli("instance", "list", "--tag", "app=lay").stdout
    assert "lay-web v1 (binding lay-web + lay-watch)" in listed, listed
    assert "lay-web v1 (binding lay-web)" in listed
    assert (
        "binding lay-web; personas added by lay-watch" in cli("instance", "show", "lay-eu").stdout
    )
    text = cli("instance", "effective", "lay-eu").stdout
    assert "lay-web v1: selected by binding 'lay-web'; personas added by lay-watch" in text
    assert re.search(r"1\s+│ lay-web v1\s+│ persona\s+│ binding lay-web", text), text
    assert re.search(
        r"2\s+│ persona lay-watch v1, added by binding lay-watch\s+│ addition\s+│ "
        r"binding lay-watch \(adds\)",
        text,
    ), text
    eff = json.loads(cli("instance", "effective", "lay-eu", "-o", "json").stdout)
    assert [layer["binding"] for layer in eff["explain"]["layers"]] == ["lay-web", "lay-watch"]
    assert eff["desired"]["added"] == ["lay-watch"]
    us = cli("instance", "effective", "lay-us").stdout
    assert "added" not in us and "lay-watch" in us  # listed, not matched

    clash = cli("bind", "add", "lay-clash", "-s", "region=eu", "-p", "lay-clash", "--mode", "add")
    assert clash.returncode == 0, clash.out
    wait_until(lambda: admin.get_instance("lay-eu").desired.error, what="compose error")
    shown = cli("instance", "show", "lay-eu")
    assert "NOT in sync: the server cannot compose the desired persona" in shown.stdout
    assert "persona lay-clash v1, added by binding lay-clash" in shown.stdout
    assert "already defined by persona lay-web v1" in shown.stdout
    assert admin.active_persona("lay-us").in_sync

    bad = cli("bind", "add", "lay-x", "-s", "app=lay", "-p", "lay-web", "--mode", "merge")
    assert bad.returncode == 2 and "--mode" in bad.stderr
