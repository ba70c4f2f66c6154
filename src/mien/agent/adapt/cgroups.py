"""``limit``: cgroup v1 cpu and memory limits on the processes running an executable.

The group of a rule is ``/sys/fs/cgroup/{cpu,memory}/mien/<rule>/``; ``cpu`` (percent of
one core: ``50`` is half a core) becomes ``cpu.cfs_quota_us`` over a 100 ms period, ``memory`` (``512MiB``)
becomes ``memory.limit_in_bytes``. Processes are matched by the path of their executable
(``/proc/PID/exe``) and moved into the group; the group each came from is remembered, and
reverting moves them back and removes the group. Processes are the running kernel's, also
when the agent manages another ``--root``. Where the cgroup v1 controllers are missing the
action fails with that message, and is not retried. Used by
:mod:`mien.agent.adapt.executors`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mien.agent.adapt.action_base import ActionFailed, Ctx, Done, param

CGROUP = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def controller_dir(controller: str) -> Path | None:
    path = CGROUP / controller
    return path if (path / "tasks").exists() else None


def processes_of(executable: str) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/exe") == executable:
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(pids)


def current_group(pid: int, controller: str) -> str:
    """The v1 group of ``pid`` in ``controller`` (``/`` when unknown)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()[:65536]
    except OSError:
        return "/"
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _move(pid: int, group: Path) -> None:
    try:
        _write(group / "cgroup.procs", str(pid))
    except ProcessLookupError:
        pass  # gone meanwhile
    except OSError as exc:
        if exc.errno != 3:  # ESRCH
            raise


def _size(raw: Any) -> int:
    from mien.spec.values import Size

    if isinstance(raw, int):
        return raw
    try:
        return int(Size.parse(raw).bytes)
    except (ValueError, AttributeError) as exc:
        raise ActionFailed(f"memory {raw!r}: {exc}", retry=False) from None


class Limit:
    """Put the processes of ``executable`` under cpu/memory limits while the rule fires."""

    reversible = True

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        executable = str(param(params, "exe", "executable"))
        if not executable.startswith("/"):
            raise ActionFailed(f"executable {executable!r}: give an absolute path", retry=False)
        cpu = params.get("cpu")
        memory = params.get("memory")
        if cpu is None and memory is None:
            raise ActionFailed("give cpu (percent of one core) and/or memory (a size)", retry=False)
        wanted = {"cpu": cpu, "memory": memory}
        dirs: dict[str, Path] = {}
        for controller, value in wanted.items():
            if value is None:
                continue
            base = controller_dir(controller)
            if base is None:
                raise ActionFailed(
                    f"cgroup v1 {controller} controller not found under {CGROUP}; limit skipped",
                    retry=False,
                )
            dirs[controller] = base / "mien" / _NAME.sub("_", ctx.rule)
        pids = processes_of(executable)
        undo: dict[str, Any] = {"groups": {c: str(d) for c, d in dirs.items()}, "moved": {}}
        try:
            for controller, group in dirs.items():
                group.mkdir(parents=True, exist_ok=True)
                if controller == "cpu":
                    _write(group / "cpu.cfs_period_us", str(PERIOD_US))
                    _write(
                        group / "cpu.cfs_quota_us",
                        str(max(1000, int(float(str(cpu)) / 100 * PERIOD_US))),
                    )
                else:
                    _write(group / "memory.limit_in_bytes", str(_size(memory)))
                moved = undo["moved"].setdefault(controller, {})
                for pid in pids:
                    moved[str(pid)] = current_group(pid, controller)
                    _move(pid, group)
        except (OSError, ValueError) as exc:
            self.revert(ctx, undo)
            raise ActionFailed(f"limit {executable}: {exc}") from None
        return Done("applied", f"{len(pids)} process(es) of {executable} limited ({wanted})", undo)

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        for controller, raw in (undo.get("groups") or {}).items():
            group = Path(raw)
            base = controller_dir(controller)
            if base is None or not group.is_dir():
                continue
            back = (undo.get("moved") or {}).get(controller, {})
            # Everything in the group leaves it (also children started since), to where
            # it came from, else to the root group.
            try:
                members = (group / "cgroup.procs").read_text()[: 1 << 20].split()
            except OSError:
                members = []
            for pid in members:
                origin = base / str(back.get(pid, "/")).lstrip("/")
                _move(int(pid), origin if origin.is_dir() else base)
            try:
                group.rmdir()
            except OSError as exc:
                raise ActionFailed(f"cannot remove {group}: {exc}") from None
