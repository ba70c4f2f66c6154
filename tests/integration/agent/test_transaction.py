"""The agent's transaction, end to end through the real ``mien`` command on temp roots.

What a user relies on: an apply is all or nothing (also when the process is killed at any
step), hook scripts gate it, rollback restores any applied state byte for byte, a re-apply
changes nothing, and the user's edits survive persona switches.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.support import make_machine, run_mien, snapshot, tree_diff

ONE = """\
name: one
environment_variables: {APP_ENV: one, SHARED: "1"}
os_settings: {theme: dark, editor: vim}
behavioral_settings: {logging_level: info, auto_update_frequency: daily}
application_configuration:
  app:
    path: /home/{user}/.config/app/settings.json
    values: {theme: dark, font: {size: 12}}
  motd:
    path: /etc/motd
    content: "Welcome to persona one\\n"
restricted_commands: [shutdown]
"""

TWO = """\
name: two
environment_variables: {APP_ENV: two}
os_settings: {theme: light}
behavioral_settings: {logging_level: debug, security_scan_frequency: weekly}
application_configuration:
  app:
    path: /home/{user}/.config/app/settings.json
    values: {theme: light}
  notes:
    path: /etc/two/notes.ini
    values: {main: {enabled: true}}
command_overrides: {deploy: /bin/true}
locked: [os_settings.theme]
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    root = make_machine(tmp_path / "root")
    (root / "etc" / "motd").write_text("The original message of the day\n")
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "one.yaml").write_text(ONE)
    (personas / "two.yaml").write_text(TWO)
    return root, personas


def apply(root: Path, personas: Path, name: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_mien(
        "apply", name, "--root", root, "--personas", personas, "--user", "alice", "--yes", env=env
    )


def test_apply_then_reapply_changes_nothing(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    first = apply(root, personas, "one")
    assert first.returncode == 0, first.stderr
    assert "applied persona one as history #1" in first.stderr
    before = snapshot(root)
    again = apply(root, personas, "one")
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stderr
    assert tree_diff(before, snapshot(root)) == []
    history = run_mien("history", "--root", root, "--output", "json")
    assert [e["id"] for e in json.loads(history.stdout)] == [1]


def test_crash_at_every_step_rolls_back_exactly(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    before = snapshot(root)
    crashed = 0

    def crash_at(point: str) -> bool:
        """Apply 'two', killed at ``point``; False when the apply never got there."""
        nonlocal crashed
        result = apply(root, personas, "two", env={"MIEN_CRASH_AT": point})
        if result.returncode == 0:  # no such step: undo the apply that went through
            assert run_mien("rollback", "--root", root, "--yes").returncode == 0
            assert tree_diff(before, snapshot(root)) == []
            return False
        assert result.returncode == -9, (point, result.stderr)
        crashed += 1
        status = run_mien("status", "--root", root)
        assert status.returncode == 0, status.stderr
        assert "rolled back an interrupted apply of persona 'two'" in status.stderr
        assert tree_diff(before, snapshot(root)) == [], point
        return True

    for step in range(1, 100):
        if not crash_at(f"journaled:{step}"):
            break
        # A step is a file write or an operation (or a directory); crash after it too.
        crash_at(f"written:{step}") or crash_at(f"performed:{step}")
    assert crashed >= 10
    final = apply(root, personas, "two")
    assert final.returncode == 0, final.stderr
    assert tree_diff(before, snapshot(root)) != []


@pytest.mark.parametrize("point", ["pre-script", "post-script", "before-commit"])
def test_crash_around_scripts_and_commit(setup: tuple[Path, Path], point: str) -> None:
    root, personas = setup
    text = (personas / "two.yaml").read_text()
    (personas / "two.yaml").write_text(
        text + "pre_activation_script: 'true'\npost_activation_script: 'true'\n"
    )
    assert apply(root, personas, "one").returncode == 0
    before = snapshot(root)
    result = apply(root, personas, "two", env={"MIEN_CRASH_AT": point})
    assert result.returncode == -9
    assert run_mien("status", "--root", root).returncode == 0
    assert tree_diff(before, snapshot(root)) == []


def test_crash_after_commit_keeps_the_new_state(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    result = apply(root, personas, "two", env={"MIEN_CRASH_AT": "committed"})
    assert result.returncode == -9
    status = run_mien("status", "--root", root, "--output", "json")
    assert json.loads(status.stdout)["active"] == "two"


def test_failing_pre_script_changes_nothing(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    (personas / "bad.yaml").write_text(
        "name: bad\nenvironment_variables: {X: '1'}\n"
        "pre_activation_script: |\n  #!/bin/sh\n  echo not today >&2\n  exit 4\n"
    )
    before = snapshot(root)
    result = apply(root, personas, "bad")
    assert result.returncode == 1
    assert "pre_activation_script: exited with status 4: not today" in result.stderr
    assert tree_diff(before, snapshot(root)) == []


def test_failing_post_script_undoes_every_change(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    before = snapshot(root)
    (personas / "bad.yaml").write_text(
        TWO.replace("name: two", "name: bad")
        + textwrap.dedent(
            """\
            post_activation_script: |
              #!/bin/sh
              test "$MIEN_PERSONA" = bad && test "$MIEN_PREVIOUS_PERSONA" = one || exit 9
              test -f "$MIEN_ROOT/etc/two/notes.ini" || exit 8
              echo "verification failed" >&2
              exit 7
            """
        )
    )
    result = apply(root, personas, "bad")
    assert result.returncode == 1, result.stderr
    assert "post_activation_script: exited with status 7: verification failed" in result.stderr
    assert tree_diff(before, snapshot(root)) == []
    status = json.loads(run_mien("status", "--root", root, "--output", "json").stdout)
    assert status["active"] == "one"


def test_script_timeout_is_enforced(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    (personas / "slow.yaml").write_text(
        "name: slow\nenvironment_variables: {X: '1'}\n"
        "pre_activation_script: {run: 'sleep 30', timeout: 1s}\n"
    )
    result = apply(root, personas, "slow")
    assert result.returncode == 1
    assert "pre_activation_script: timed out" in result.stderr


def test_rollback_restores_every_state_byte_for_byte(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    original = snapshot(root)
    assert apply(root, personas, "one").returncode == 0
    state_one = snapshot(root)
    assert apply(root, personas, "two").returncode == 0
    state_two = snapshot(root)
    assert tree_diff(state_one, state_two) != []
    for target, expected in ((1, state_one), (2, state_two), (0, original), (1, state_one)):
        result = run_mien("rollback", "--to", str(target), "--root", root, "--yes")
        assert result.returncode == 0, result.stderr
        assert tree_diff(expected, snapshot(root)) == [], f"rollback to {target}"
    history = json.loads(run_mien("history", "--root", root, "--output", "json").stdout)
    assert [e["kind"] for e in history][:4] == ["rollback"] * 4


def test_user_edit_survives_switches(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    settings = root / "home/alice/.config/app/settings.json"
    data = json.loads(settings.read_text())
    data["font"]["size"] = 16  # the user's own preference
    data["extra"] = "mine"  # a key no persona manages
    settings.write_text(json.dumps(data))
    assert apply(root, personas, "two").returncode == 0
    assert json.loads(settings.read_text())["extra"] == "mine"
    assert apply(root, personas, "one").returncode == 0
    final = json.loads(settings.read_text())
    assert final["font"]["size"] == 16
    assert final["extra"] == "mine"
    listed = json.loads(run_mien("customize", "list", "--root", root, "--output", "json").stdout)
    keys = {c["key"]: c for c in listed["customizations"]}
    assert keys["application_configuration.app.values.font.size"]["value"] == 16
    assert keys["application_configuration.app.values.font.size"]["source"] == "captured"


def test_customize_and_lock_refusal(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    ok = run_mien("customize", "set", "environment_variables.APP_ENV", "mine", "--root", root)
    assert ok.returncode == 0, ok.stderr
    assert "APP_ENV" in (root / "etc/environment.d/50-mien.conf").read_text()
    assert "mine" in (root / "etc/environment.d/50-mien.conf").read_text()
    assert apply(root, personas, "two").returncode == 0
    # The customization is kept across the switch.
    assert "mine" in (root / "etc/environment.d/50-mien.conf").read_text()
    refused = run_mien("customize", "set", "os_settings.theme", "dark", "--root", root)
    assert refused.returncode == 1
    assert "os_settings.theme is locked by persona 'two'" in refused.stderr
    invalid = run_mien(
        "customize", "set", "behavioral_settings.logging_level", "loud", "--root", root
    )
    assert invalid.returncode == 1
    assert "logging_level" in invalid.stderr
    audit = (root / "var/log/mien/audit.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in audit]
    assert "customization.refused" in events
    assert "customization.set" in events


def test_switch_removes_what_only_the_old_persona_managed(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    assert (root / "etc/motd").read_text() == "Welcome to persona one\n"
    assert apply(root, personas, "two").returncode == 0
    # motd was the user's file before mien: it is restored, not deleted.
    assert (root / "etc/motd").read_text() == "The original message of the day\n"
    assert (root / "etc/two/notes.ini").exists()
    assert apply(root, personas, "one").returncode == 0
    assert not (root / "etc/two").exists()


def test_plan_touches_nothing_and_shows_diffs(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    before = snapshot(root, include_state=False)
    plan = run_mien("plan", "two", "--root", root, "--personas", personas)
    assert plan.returncode == 0, plan.stderr
    assert "switching from one" in plan.stdout
    assert "+APP_ENV=two" in plan.stdout or "APP_ENV" in plan.stdout
    assert tree_diff(before, snapshot(root)) == []
    data = json.loads(
        run_mien("plan", "two", "--root", root, "--personas", personas, "--output", "json").stdout
    )
    assert {f["path"] for f in data["files"]} >= {"/etc/two/notes.ini", "/etc/motd"}


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("surrogate.json", '{"name": "surrogate",\n "environment_variables": {"A": "\\ud800"}}',
         "surrogate.json:2:33: environment_variables.A: \\ud800 is half of a UTF-16 surrogate pair"),
        ("huge.yaml", "name: huge\nos_settings:\n  swappiness: " + "9" * 5000 + "\n",
         "huge.yaml:3:15: os_settings.swappiness: an integer of 5,000 digits is out of range"),
    ],
)  # fmt: skip
def test_apply_refuses_values_nothing_can_hold(
    setup: tuple[Path, Path], name: str, text: str, line: str
) -> None:
    """A lone surrogate or an integer of thousands of digits is a problem line naming the
    file, line and field, and the machine is left as it was (a traceback before)."""
    root, personas = setup
    assert apply(root, personas, "one").returncode == 0
    before = snapshot(root, include_state=True)
    (personas / name).write_text(text)
    refused = apply(root, personas, str(personas / name))
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr
    assert line in refused.stderr
    assert tree_diff(before, snapshot(root, include_state=True)) == []
