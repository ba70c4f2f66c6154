"""One server per data directory: a second ``mien server`` on a data directory another one
serves (SQLite) refuses to start, with a message naming the directory and the other
process, instead of serving a stale copy of the fleet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from server_harness import ServerProcess, free_port


def _second_server(data: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "mien.cli.main", "server", "--port", str(free_port())]
    proc = subprocess.Popen(
        [*args, "--data", str(data), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"a second server on {data} started and kept serving:\n{err}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_second_server_on_the_same_data_directory_refuses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data).start()
    try:
        second = _second_server(data)
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        assert f"{data}" in second.stderr and "already served" in second.stderr
        assert f"pid {first.proc.pid if first.proc else ''}" in second.stderr
        assert "serving" not in second.stderr
        with first.client() as api:  # the first one is untouched
            assert api.health().status == "ok"
    finally:
        assert first.stop() == 0, first.log()
    # The lock goes with the process that held it, even one killed outright.
    again = ServerProcess(data).start()
    again.kill()
    third = ServerProcess(data).start()
    try:
        assert os.path.exists(data / "server.lock")
    finally:
        assert third.stop() == 0, third.log()
