"""Running a persona's ``pre_activation_script`` and ``post_activation_script``.

A script with a ``#!`` line runs as its own interpreter says; anything else runs with
``/bin/sh``. It gets ``MIEN_ROOT``, ``MIEN_PERSONA`` and ``MIEN_PREVIOUS_PERSONA`` (empty on
first activation) on top of the agent's environment, runs in its own process group with the
root as working directory, and is killed (the whole group) when its timeout passes. Output
is captured (capped) for the error message and the audit log.

Used by :mod:`mien.agent.transaction`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mien.agent.own_env import for_children

OUTPUT_CAP = 16 * 1024


@dataclass(frozen=True, slots=True)
class ScriptResult:
    status: int  # exit status; -N when killed by signal N; None never
    output: str
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            head = "timed out"
        elif self.status < 0:
            head = f"killed by signal {-self.status}"
        else:
            head = f"exited with status {self.status}"
        tail = self.output.strip()
        return head + (f": {tail[-2000:]}" if tail else "")


def run_script(
    text: str,
    *,
    root: Path,
    persona: str,
    previous: str | None,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> ScriptResult:
    """Run one hook script to completion (or its timeout)."""
    environment = for_children(os.environ if env is None else env)
    environment.update(
        MIEN_ROOT=str(root), MIEN_PERSONA=persona, MIEN_PREVIOUS_PERSONA=previous or ""
    )
    with tempfile.NamedTemporaryFile("w", prefix="mien-hook-", suffix=".sh", delete=False) as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
        script = fh.name
    try:
        os.chmod(script, 0o700)
        argv = [script] if text.startswith("#!") else ["/bin/sh", script]
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            timed_out = True
        text_out = out[-OUTPUT_CAP:].decode(errors="replace")
        return ScriptResult(proc.returncode, text_out, timed_out)
    finally:
        os.unlink(script)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
