"""Running a persona's ``pre_activation_script`` and ``post_activation_script``.

A script with a ``#!`` line runs as its own interpreter says; anything else runs with
``/bin/sh``. It gets ``MIEN_ROOT``, ``MIEN_PERSONA`` and ``MIEN_PREVIOUS_PERSONA`` (empty on
first activation) on top of the agent's environment, runs in its own process group with the
root as working directory, and is killed (the whole group) when its timeout passes or when
mien dies, even by ``kill -9``: a hook never outlives the apply it belongs to. The script is
run from memory (a memfd), so nothing is left on disk either. Output is captured (capped)
for the error message and the audit log.

Used by :mod:`mien.agent.transaction`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
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
    # The script lives in memory, not in a file that a killed mien would leave behind.
    fd = os.memfd_create("mien-hook", 0)
    try:
        os.write(fd, (text if text.endswith("\n") else text + "\n").encode())
        os.fchmod(fd, 0o700)
        script = f"/proc/self/fd/{fd}"
        argv = [script] if text.startswith("#!") else ["/bin/sh", script]
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    with _tied_to_this_process(proc.pid):
        try:
            out, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            timed_out = True
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
    text_out = out[-OUTPUT_CAP:].decode(errors="replace")
    return ScriptResult(proc.returncode, text_out, timed_out)


@contextlib.contextmanager
def _tied_to_this_process(group: int) -> Iterator[None]:
    """Kill process group ``group`` if this process dies before leaving the block.

    A watcher in its own session waits on a pipe only this process can write to: EOF
    without the word ``done`` means mien died (even by ``kill -9``), and the watcher kills
    the whole group, so no hook, nor anything it started, outlives the apply it belongs to.
    """
    watcher = subprocess.Popen(
        ["/bin/sh", "-c", 'read word && [ "$word" = done ] || kill -9 -"$0"', str(group)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        assert watcher.stdin is not None
        with contextlib.suppress(OSError):
            watcher.stdin.write(b"done\n")
            watcher.stdin.close()
        watcher.wait()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
