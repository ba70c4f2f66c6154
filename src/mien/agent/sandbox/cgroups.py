"""cgroup v1 groups for the ``local`` driver: one group per lease under ``mien/`` in the
cpu, cpuacct, memory and pids hierarchies, with the lease's limits written in and its
usage read back (CPU seconds, peak memory, whether the kernel's OOM killer struck).

The memory limit covers swap too where the kernel accounts it, so a process past it is
killed rather than swapped; ``memory.oom_control`` counts the kills.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from mien.agent.sandbox.base import Limits, SandboxError

ROOT = Path(os.environ.get("MIEN_CGROUP_ROOT", "/sys/fs/cgroup"))
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
_PERIOD_US = 100_000


def missing() -> str | None:
    """What cgroup v1 support is missing here, or None."""
    for name in CONTROLLERS:
        if not (ROOT / name / "tasks").is_file():
            return f"cgroup v1 {name} controller not mounted at {ROOT / name}"
    return None


def paths(lease_id: str) -> dict[str, Path]:
    return {name: ROOT / name / "mien" / f"lease-{lease_id}" for name in CONTROLLERS}


def create(lease_id: str, limits: Limits) -> dict[str, str]:
    """Make the lease's groups and write its limits; returns their paths."""
    made = paths(lease_id)
    for path in made.values():
        path.mkdir(parents=True, exist_ok=True)
    try:
        if limits.cpu_cores is not None:
            _write(made["cpu"] / "cpu.cfs_period_us", str(_PERIOD_US))
            quota = max(1000, int(limits.cpu_cores * _PERIOD_US))
            _write(made["cpu"] / "cpu.cfs_quota_us", str(quota))
        if limits.memory_bytes is not None:
            _write(made["memory"] / "memory.limit_in_bytes", str(limits.memory_bytes))
            memsw = made["memory"] / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, str(limits.memory_bytes))
            _write(made["memory"] / "memory.swappiness", "0", optional=True)
        _write(made["pids"] / "pids.max", str(limits.pids))
    except BaseException:
        destroy(lease_id)
        raise
    return {k: str(v) for k, v in made.items()}


def _write(path: Path, value: str, *, optional: bool = False) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        if not optional:
            raise SandboxError(f"cgroup {path}: cannot set {value}: {exc.strerror}") from None


def join(lease_id: str, pid: int) -> None:
    """Put ``pid`` (and the children it will have) in the lease's groups."""
    for path in paths(lease_id).values():
        (path / "cgroup.procs").write_text(str(pid))


def pids(lease_id: str) -> list[int]:
    try:
        text = (paths(lease_id)["pids"] / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cpu_seconds(lease_id: str) -> float:
    try:
        return int((paths(lease_id)["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return 0.0


def peak_memory(lease_id: str) -> int:
    try:
        return int((paths(lease_id)["memory"] / "memory.max_usage_in_bytes").read_text())
    except (OSError, ValueError):
        return 0


def oom_kills(lease_id: str) -> int:
    """How many processes the OOM killer killed in the lease (``oom_kill`` counter)."""
    try:
        text = (paths(lease_id)["memory"] / "memory.oom_control").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def kill_all(lease_id: str) -> None:
    """SIGKILL everything in the lease's groups until they are empty (a few seconds)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = pids(lease_id)
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def destroy(lease_id: str) -> None:
    kill_all(lease_id)
    for path in paths(lease_id).values():
        for _ in range(50):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
