"""``kill -9`` of mien at the awkward moments: while a hook script runs (the script and
whatever it started must die with mien, and leave no file behind) and right after the
commit (recovery finishes the switch, including removing the old persona's directories)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support import make_machine, mien_command, run_mien

HOOKED = """\
name: hooked
environment_variables: {X: '1'}
post_activation_script: |
  sleep 300 &
  echo $! > "$MIEN_ROOT/child.pid"
  echo $$ > "$MIEN_ROOT/hook.pid"
  wait
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (reaped by whoever inherited it).
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_hook_script_dies_with_mien_and_leaves_no_file(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    persona = tmp_path / "hooked.yaml"
    persona.write_text(HOOKED)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    args = ["apply", str(persona), "--root", str(root), "--user", "alice", "--yes"]
    proc = subprocess.Popen(
        [*mien_command(), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (root / "hook.pid").exists() or not (root / "child.pid").exists():
            assert proc.poll() is None, "mien ended before its hook ran"
            assert time.monotonic() < deadline, "the hook never started"
            time.sleep(0.05)
        time.sleep(0.1)  # both pid files are written in full
        pids = [int((root / n).read_text()) for n in ("hook.pid", "child.pid")]
        assert all(_alive(p) for p in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in pids if _alive(p)] == [], "the hook outlived mien"
        assert list(scratch.iterdir()) == []
    finally:
        for pid in pids:  # only what this test's hook started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    status = run_mien("status", "--root", root, "--user", "alice", "--output", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["active"] is None


def test_kill_after_commit_leaves_no_directory_of_the_old_persona(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "one.yaml").write_text(
        'name: one\napplication_configuration:\n  motd: {path: /etc/motd, content: "one\\n"}\n'
    )
    (personas / "two.yaml").write_text(
        "name: two\napplication_configuration:\n"
        "  notes: {path: /etc/two/deep/notes.ini, values: {main: {enabled: true}}}\n"
    )

    def apply(name: str, **env: str) -> int:
        common = ["--root", root, "--personas", personas, "--user", "alice", "--yes"]
        return run_mien("apply", name, *common, env=env).returncode

    assert apply("one") == 0
    assert apply("two") == 0
    assert (root / "etc/two/deep/notes.ini").exists()
    assert apply("one", MIEN_CRASH_AT="committed") == -9
    status = run_mien("status", "--root", root, "--output", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["active"] == "one"
    assert not (root / "etc/two").exists()
