"""The adaptation actions on a real machine root: settings overlaid through the engine's
transaction and reverted, commands through the command router (a restricted one refused),
service restarts, cgroup limits, scale requests without a server, and the retry backoff."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mien.agent.adapt import cgroups, overlays
from mien.agent.adapt.action_base import ActionFailed, Ctx
from mien.agent.adapt.changes import BACKOFF_BASE, backoff
from mien.agent.adapt.executors import RestartService, Run, Scale
from mien.agent.adapt.ledger import APPLIED, Ledger
from mien.agent.engine import Engine
from mien.agent.state import State
from tests.support import needs_root

ENV_FILE = "etc/environment.d/50-mien.conf"

PERSONA = """\
name: calm
environment_variables: {MIEN_MODE: calm}
restricted_commands: [shutdown]
"""


@pytest.fixture
def applied(machine: Path, tmp_path: Path) -> Path:
    persona = tmp_path / "calm.yaml"
    persona.write_text(PERSONA)
    Engine(machine, user="alice").apply(persona)
    return machine


@pytest.fixture
def ledger(applied: Path) -> Iterator[Ledger]:
    with State(applied) as state:
        yield Ledger(state)


def ctx(root: Path, ledger: Ledger, rule: str = "busy", change: int = 0) -> Ctx:
    made: list[Engine] = []

    def engine() -> Engine:
        if not made:
            made.append(Engine(root, user="alice"))
        return made[0]

    return Ctx(root, "calm", rule, change, ledger, engine, log=lambda _: None)


def env_text(root: Path) -> str:
    found = [
        p
        for p in (root / "etc").rglob("*")
        if p.is_file() and "MIEN_MODE" in p.read_text(errors="replace")
    ]
    return "".join(p.read_text() for p in found)


def test_set_setting_is_an_automated_apply_and_reverts_to_the_base(
    applied: Path, ledger: Ledger
) -> None:
    assert 'MIEN_MODE="calm"' in env_text(applied)
    change = ledger.add_change("calm", "busy", "set_setting", {}, time.time())
    done = overlays.SetSetting().apply(
        ctx(applied, ledger, change=change),
        {"key": "environment_variables.MIEN_MODE", "value": "busy"},
    )
    ledger.update_change(change, status=APPLIED, undo=done.undo)
    assert 'MIEN_MODE="busy"' in env_text(applied)
    history = Engine(applied).history()[0]
    assert history[0].kind == "automated" and history[0].persona == "calm"
    overlays.SetSetting().revert(ctx(applied, ledger, change=change), done.undo)
    assert 'MIEN_MODE="calm"' in env_text(applied)
    assert ledger.get(overlays.BASE_KEY) is None


def test_an_invalid_setting_changes_nothing_and_is_not_retried(
    applied: Path, ledger: Ledger
) -> None:
    before = env_text(applied)
    with pytest.raises(ActionFailed) as err:
        overlays.SetSetting().apply(
            ctx(applied, ledger), {"key": "os_settings.theme", "value": {"not": "a theme"}}
        )
    assert not err.value.retry and "theme" in str(err.value)
    assert env_text(applied) == before


def test_run_goes_through_the_router_and_a_restricted_command_is_refused(
    applied: Path, ledger: Ledger
) -> None:
    with pytest.raises(ActionFailed) as err:
        Run().apply(ctx(applied, ledger), {"command": "shutdown -h now"})
    assert not err.value.retry
    assert "'shutdown' is restricted by persona 'calm'" in str(err.value)
    with State(applied) as state:
        refused = [r for r in state.audit_records() if r.event == "command.refused"]
    assert refused and refused[0].actor == "rule:busy"
    done = Run().apply(ctx(applied, ledger), {"command": ["sh", "-c", "echo hi"]})
    assert done.undo["output"] == "hi\n"
    with pytest.raises(ActionFailed) as failing:
        Run().apply(ctx(applied, ledger), {"command": "sh -c 'exit 3'"})
    assert failing.value.retry and "exited 3" in str(failing.value)


def test_restart_service_says_clearly_when_the_machine_has_no_service_manager(
    applied: Path, ledger: Ledger
) -> None:
    with pytest.raises(ActionFailed) as err:
        RestartService().apply(ctx(applied, ledger), {"service": "nginx"})
    assert "neither systemctl (with systemd running) nor service" in str(err.value)
    assert not err.value.retry


@needs_root()
@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox for a chroot shell")
def test_restart_service_runs_the_machines_service_command_and_captures_its_output(
    applied: Path, ledger: Ledger
) -> None:
    for name in ("bin/sh", "usr/sbin/service"):
        (applied / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shutil.which("busybox") or "", applied / "bin/busybox")
    os.symlink("busybox", applied / "bin/sh")
    script = applied / "usr/sbin/service"
    script.write_text('#!/bin/sh\necho "restarting $1 ($2)"\n[ "$1" = broken ] && exit 1\nexit 0\n')
    script.chmod(0o755)
    done = RestartService().apply(ctx(applied, ledger), {"service": "nginx"})
    assert "restarting nginx (restart)" in done.undo["output"]
    with pytest.raises(ActionFailed) as err:
        RestartService().apply(ctx(applied, ledger), {"service": "broken"})
    assert "exited 1: restarting broken (restart)" in str(err.value)


def test_scale_without_a_server_is_requested_with_nobody_to_act(
    applied: Path, ledger: Ledger
) -> None:
    done = Scale().apply(ctx(applied, ledger), {"cpu": 4})
    assert done.status == "requested" and "nobody to act" in done.message


def test_backoff_doubles_and_is_never_a_tight_loop() -> None:
    delays = [backoff(n) for n in range(1, 7)]
    assert delays[0] >= BACKOFF_BASE * 0.8
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))
    assert backoff(40) <= 600 * 1.2


@needs_root()
@pytest.mark.skipif(cgroups.controller_dir("cpu") is None, reason="no cgroup v1 cpu controller")
def test_limit_moves_the_processes_into_a_cpu_and_memory_group_and_back(
    applied: Path, ledger: Ledger, tmp_path: Path
) -> None:
    sleeper = tmp_path / "sleeper"
    shutil.copy("/bin/sleep", sleeper)
    proc = subprocess.Popen([str(sleeper), "60"])
    try:
        before = cgroups.current_group(proc.pid, "cpu")
        rule = f"hog-{os.getpid()}"
        limit = cgroups.Limit()
        done = limit.apply(
            ctx(applied, ledger, rule=rule),
            {"exe": str(sleeper), "cpu": 25, "memory": "64MiB"},
        )
        group = cgroups.CGROUP / "cpu" / "mien" / rule
        assert cgroups.current_group(proc.pid, "cpu") == f"/mien/{rule}"
        assert (group / "cpu.cfs_quota_us").read_text().strip() == "25000"
        memory = cgroups.CGROUP / "memory" / "mien" / rule / "memory.limit_in_bytes"
        assert int(memory.read_text()) == 64 * 1024 * 1024
        limit.revert(ctx(applied, ledger, rule=rule), json.loads(json.dumps(done.undo)))
        assert cgroups.current_group(proc.pid, "cpu") == before
        assert not group.exists()
    finally:
        proc.kill()
        proc.wait()


def test_limit_without_the_controller_fails_with_a_message(
    applied: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cgroups, "CGROUP", tmp_path / "no-cgroups")
    with pytest.raises(ActionFailed) as err:
        cgroups.Limit().apply(ctx(applied, ledger), {"exe": "/bin/sleep", "cpu": 100})
    assert "cgroup v1 cpu controller not found" in str(err.value) and not err.value.retry
