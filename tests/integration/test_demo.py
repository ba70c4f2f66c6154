"""`make demo`, the README's first command, runs to its end: the language, a machine, the
fleet server and the dashboard, written under a temporary directory instead of
``demo-root/``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_to_its_end(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {**os.environ, "MIEN_DEMO_ROOT": str(root)}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        cwd=REPO,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "== Done" in done.stdout
    for page in ("/ui/ ", "/ui/personas", "/ui/bindings", "/ui/audit", "/ui/orchestrator"):
        assert f"GET {page}" in done.stdout and "demo step failed" not in done.stdout
    assert (root / "server").is_dir()
