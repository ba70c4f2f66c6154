"""What mien sets in its own environment for itself (``PYDANTIC_DISABLE_PLUGINS``, to
start faster) stays out of the programs it starts: ``mien exec`` children and hook scripts.
A value the caller set themselves is passed on untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import make_machine, mien_command

VAR = "PYDANTIC_DISABLE_PLUGINS"


def _run(args: list[str], own: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != VAR}
    if own is not None:
        env[VAR] = own
    return subprocess.run(
        [*mien_command(), *args], check=False, env=env, capture_output=True, text=True, timeout=120
    )


def _value(env_dump: str) -> str | None:
    for line in env_dump.splitlines():
        if line.startswith(VAR + "="):
            return line.split("=", 1)[1]
    return None


@pytest.mark.parametrize("own", [None, "mine"])
def test_exec_child_does_not_inherit_mien_own_variable(tmp_path: Path, own: str | None) -> None:
    root = make_machine(tmp_path / "root")
    done = _run(["exec", "--root", str(root), "--", "/usr/bin/env"], own)
    assert done.returncode == 0, done.stderr
    assert _value(done.stdout) == own


@pytest.mark.parametrize("own", [None, "mine"])
def test_hook_scripts_do_not_inherit_mien_own_variable(tmp_path: Path, own: str | None) -> None:
    root = make_machine(tmp_path / "root")
    persona = tmp_path / "hooked.yaml"
    persona.write_text(
        "name: hooked\nenvironment_variables: {X: '1'}\n"
        "pre_activation_script: 'env > \"$MIEN_ROOT/pre.env\"'\n"
        "post_activation_script: 'env > \"$MIEN_ROOT/post.env\"'\n"
    )
    done = _run(["apply", str(persona), "--root", str(root), "--user", "alice", "--yes"], own)
    assert done.returncode == 0, done.stderr
    assert _value((root / "pre.env").read_text()) == own
    assert _value((root / "post.env").read_text()) == own
