"""Every fenced ``sh`` block of README.md, run as written.

The blocks run in order, each with ``bash -e -o pipefail``, in a scratch directory that has
the repository's ``examples/`` and ``mien`` on ``PATH``. What a reader would run on a real
machine or server is pointed at throw-away places, and only by exchanging these locations
(the table below): the machine root ``/srv/vm1`` is a temp directory, and the server the
fleet blocks talk to is a real ``mien server`` this test starts on loopback with its data in
a temp directory. A block opts out only with a visible line in it,
``# not run in tests: <why>``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

sys.path.insert(0, str(REPO / "tests" / "integration" / "server"))
from server_harness import ServerProcess

README = REPO / "README.md"
OPT_OUT = "# not run in tests:"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.M | re.S)


def sh_blocks() -> list[tuple[int, str]]:
    """(line number, text) of every ``sh`` block, in order."""
    text = README.read_text()
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) == "sh"
    ]


def opted_out(block: str) -> str | None:
    for line in block.splitlines():
        if line.strip().startswith(OPT_OUT):
            return line.strip()[len(OPT_OUT) :].strip()
    return None


def test_blocks_opt_out_only_visibly_and_with_a_reason() -> None:
    blocks = sh_blocks()
    assert len(blocks) >= 6
    for line, block in blocks:
        reason = opted_out(block)
        assert reason is None or len(reason) > 10, f"README.md:{line}: say why it is not run"
        assert "not run" not in block.replace(OPT_OUT, ""), f"README.md:{line}: use the marker"
    runnable = [b for b in blocks if opted_out(b[1]) is None]
    assert len(runnable) >= 3


@pytest.mark.xdist_group("readme")
def test_readme_blocks_run_as_written(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server-data").start()
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(REPO / "examples")
    places = {
        "/srv/vm1": str(tmp_path / "vm1"),
        "/var/lib/mien-server": str(server.data_dir),
        "https://mien.internal:8470": server.url,
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MIEN_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    groups: list[int] = []
    ran = 0
    try:
        for line, block in sh_blocks():
            if opted_out(block) is not None:
                continue
            script = block
            for place, here in places.items():
                script = script.replace(place, here)
            log = tmp_path / f"block-{line}.log"
            with log.open("wb") as out:
                # Output to a file, not a pipe: a block may leave a process running in the
                # background (the agent), which would hold a pipe open.
                proc = subprocess.Popen(
                    ["bash", "-e", "-o", "pipefail", "-x", "-c", script],
                    cwd=work,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                groups.append(proc.pid)
                status = proc.wait(timeout=600)
            assert status == 0, f"README.md:{line}: the block failed ({status}):\n{log.read_text()}"
            ran += 1
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
        assert server.stop() == 0, server.log()
    assert ran >= 3
    assert "Traceback" not in server.log(), server.log()
