"""The fleet's default persona changes only when asked: ``mien persona default NAME
[--unset]``, ``mien persona push FILE --default`` and ``PUT|DELETE
/api/v1/personas/{name}/default`` — never as a side effect of pushing a document that says
``default_persona: true`` (that field is for a machine's own catalogue, ``mien apply
--default``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_harness import Cli
from server_harness import SimAgent, wait_until

from mien.client import Client, NotFound
from tests.support import EXAMPLES


def _fleet_default(admin: Client) -> list[str]:
    return [p.name for p in admin.list_personas() if p.default_persona]


def test_push_never_changes_the_fleet_default(
    cli: Cli, admin: Client, enroll: Callable[..., SimAgent]
) -> None:
    agent = enroll("unbound-1")
    pushed = cli("persona", "push", EXAMPLES)
    assert pushed.returncode == 0, pushed.out
    assert _fleet_default(admin) == []
    # kiosk.yaml says default_persona: true; the push says how to make it the default.
    assert "mien persona default kiosk" in pushed.stderr
    assert admin.active_persona("unbound-1").desired.source == "none"
    assert agent.applied is None

    made = cli("persona", "default", "kiosk")
    assert made.returncode == 0, made.out
    assert "kiosk is now the fleet's default persona" in made.stderr
    assert _fleet_default(admin) == ["kiosk"]
    wait_until(lambda: agent.applied and agent.applied.persona == "kiosk", what="kiosk applied")
    assert admin.active_persona("unbound-1").desired.source == "default"
    # A push of the same document again still leaves the default where it is.
    assert cli("persona", "push", EXAMPLES / "kiosk.yaml").returncode == 0
    assert _fleet_default(admin) == ["kiosk"]

    unset = cli("persona", "default", "kiosk", "--unset", "-o", "json")
    assert unset.returncode == 0, unset.out
    assert '"persona": null' in unset.stdout and '"previous": "kiosk"' in unset.stdout
    assert _fleet_default(admin) == []
    assert admin.active_persona("unbound-1").desired.source == "none"
    assert agent.applied.persona == "kiosk"  # the agent keeps what it runs

    actions = [r.action for r in admin.audit(action="persona.default")]
    assert "persona.default.set" in actions and "persona.default.unset" in actions


def test_one_default_at_a_time_and_push_default(cli: Cli, admin: Client, tmp_path: Path) -> None:
    a = tmp_path / "first-default.yaml"
    a.write_text("name: first-default\n")
    b = tmp_path / "second-default.yaml"
    b.write_text("name: second-default\n")
    assert cli("persona", "push", a, "--default").returncode == 0
    assert _fleet_default(admin) == ["first-default"]
    moved = cli("persona", "push", b, "--default")
    assert moved.returncode == 0, moved.out
    assert (
        "second-default is now the fleet's default persona (it was first-default)" in moved.stderr
    )
    assert _fleet_default(admin) == ["second-default"]
    both = cli("persona", "push", a, b, "--default")
    assert both.returncode == 2 and "--default" in both.stderr
    assert _fleet_default(admin) == ["second-default"]
    assert cli("persona", "default", "second-default", "--unset").returncode == 0


def test_default_api_errors(cli: Cli, admin: Client) -> None:
    with pytest.raises(NotFound):
        admin.set_default_persona("no-such-persona")
    missing = cli("persona", "default", "no-such-persona")
    assert missing.returncode == 1 and "no-such-persona" in missing.stderr
    admin.create_persona({"name": "never-default"})
    cleared = admin.unset_default_persona("never-default")  # idempotent
    assert cleared.persona is None and cleared.previous is None
    admin.delete_persona("never-default")
    with pytest.raises(NotFound):
        admin.set_default_persona("never-default")
