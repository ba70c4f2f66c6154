"""A fake machine root and a driver that applies one handler through the real engine.

Each :meth:`Machine.apply` and :meth:`Machine.plan` runs :class:`mien.agent.engine.Engine`
on the root, restricted to the handler under test (``Engine(handlers=[handler])``), with
the persona document built in the test. The engine keeps its own state under the root
(managed records, pristine images, history), captures drift, writes files through its
journal and performs operations — so these tests see exactly what the agent does and
cannot drift from it. What a test reads back (the handler's files, operations and notes)
comes from the engine's :class:`~mien.agent.plan.Plan`. End-to-end runs through the real
``mien`` command are in the ``*_e2e`` tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mien.agent.engine import Engine
from mien.agent.handlers.base import (
    Captured,
    Context,
    Handler,
    HandlerPlan,
    ManagedRecord,
)
from mien.agent.handlers.users import lookup_user
from mien.agent.plan import Plan
from mien.agent.state import State
from tests.support import make_machine


@dataclass
class Machine:
    """A machine root, driven one handler at a time by the real engine."""

    root: Path
    user: str = "alice"
    env: dict[str, str] = field(default_factory=dict)
    # What the engine captured from the user's edits in the last apply.
    captured: list[Captured] = field(default_factory=list)

    def path(self, machine_path: str) -> Path:
        return self.root / machine_path.lstrip("/")

    def engine(self, handler: Handler) -> Engine:
        return Engine(self.root, user=self.user, env=self.env, handlers=[handler])

    @property
    def managed(self) -> dict[str, ManagedRecord]:
        """The engine's managed records (empty before the first apply)."""
        if not State.exists(self.root):
            return {}
        with State(self.root) as state:
            return state.managed()

    def manage(self, record: ManagedRecord) -> None:
        """Add a managed record to the engine's state, as an earlier apply would have."""
        with State(self.root) as state, state.transaction():
            state.replace_managed({**state.managed(), record.path: record})

    def ctx(self, name: str = "p") -> Context:
        """A context as the engine gives ``perform``/``revert`` (reads not cached)."""
        ctx = Context(
            self.root, lookup_user(self.root, self.user), name, self.managed, env=self.env
        )
        ctx.stop_caching()
        return ctx

    def plan(self, handler: Handler, data: Mapping[str, Any], name: str = "p") -> HandlerPlan:
        engine = self.engine(handler)
        return handler_plan(engine.plan_source(engine.source_from_data(document(data, name), name)))

    def apply(self, handler: Handler, data: Mapping[str, Any], name: str = "p") -> HandlerPlan:
        result = self.engine(handler).apply_data(document(data, name), name)
        self.captured = [c for drift in result.plan.drift for c in drift.captured]
        return handler_plan(result.plan)


def document(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {"name": name, **data}


def handler_plan(plan: Plan) -> HandlerPlan:
    """The handler's decision as the engine planned it: every file it declared (changed or
    not), its operations, and the notes (with the engine's own, e.g. skipped
    customizations)."""
    return HandlerPlan(
        files=[spec for _, spec in plan.managed_specs.values()],
        operations=list(plan.operations),
        notes=list(plan.notes),
    )


@pytest.fixture
def driver(tmp_path: Path) -> Machine:
    """A fresh machine root (users alice and bob) on which mien has applied nothing."""
    return Machine(make_machine(tmp_path / "root"))


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                libs.append(part)
                break
    return libs


def install_shell(root: Path) -> None:
    """Copy the host's dash (and its libraries) into ``root`` as /bin/sh, so stand-in
    programs written as shell scripts run inside the root through chroot."""
    dash = shutil.which("dash") or "/bin/dash"
    for source in [dash, *_libraries(dash)]:
        target = root / source.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    sh = root / "bin" / "sh"
    sh.parent.mkdir(parents=True, exist_ok=True)
    if not sh.exists():
        shutil.copy2(dash, sh)


def install_program(root: Path, machine_path: str, script: str) -> Path:
    host = root / machine_path.lstrip("/")
    host.parent.mkdir(parents=True, exist_ok=True)
    host.write_text(script)
    host.chmod(0o755)
    return host


needs_chroot = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("chroot") is None or shutil.which("ldd") is None,
    reason="needs root and chroot to run programs inside a temporary root",
)
