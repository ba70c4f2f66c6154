"""A fake machine root and a small driver that applies one handler the way the engine does.

The driver keeps what the engine keeps between applies — managed records (path, handler,
hash of what was written, meta) and pristine images — and follows the handler contract:
``capture`` against the previous persona, then ``plan``; files written, then operations
performed and finished; files no longer planned restored to their pristine state. Tests
can thus apply, switch and release personas handler by handler, on real files, without
the rest of the agent. End-to-end runs through the real ``mien`` command are in the
``*_e2e`` tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mien.agent.handlers.base import (
    Captured,
    Context,
    FileState,
    Handler,
    HandlerPlan,
    ManagedRecord,
    lookup_user,
)
from mien.spec.models import Persona
from tests.support import make_machine


def persona(data: Mapping[str, Any]) -> Persona:
    return Persona.model_validate(dict(data))


@dataclass
class Machine:
    """A machine root plus the engine's memory of it, for one handler."""

    root: Path
    user: str = "alice"
    env: dict[str, str] = field(default_factory=dict)
    managed: dict[str, ManagedRecord] = field(default_factory=dict)
    pristine: dict[str, FileState] = field(default_factory=dict)
    last: Persona | None = None
    captured: list[Captured] = field(default_factory=list)

    def path(self, machine_path: str) -> Path:
        return self.root / machine_path.lstrip("/")

    def ctx(self, name: str = "p") -> Context:
        return Context(
            self.root, lookup_user(self.root, self.user), name, dict(self.managed), env=self.env
        )

    def plan(self, handler: Handler, data: Mapping[str, Any], name: str = "p") -> HandlerPlan:
        return handler.plan(self.ctx(name), persona(data))

    def apply(self, handler: Handler, data: Mapping[str, Any], name: str = "p") -> HandlerPlan:
        ctx = self.ctx(name)
        self.captured = handler.capture(ctx, self.last) if self.last is not None else []
        result = handler.plan(ctx, persona(data))
        planned = set()
        for spec in result.files:
            planned.add(spec.path)
            host = self.path(spec.path)
            if spec.path not in self.pristine:
                self.pristine[spec.path] = ctx.read(spec.path)
            desired = spec.desired if spec.desired is not None else self.pristine[spec.path]
            write(host, desired)
            if spec.desired is None:
                self.managed.pop(spec.path, None)
                self.pristine.pop(spec.path, None)
                continue
            digest = (
                None if desired.content is None else hashlib.sha256(desired.content).hexdigest()
            )
            self.managed[spec.path] = ManagedRecord(
                spec.path, handler.name, digest, dict(spec.meta), spec.setting, spec.capture_as
            )
        for path in [p for p, r in self.managed.items() if r.handler == handler.name]:
            if path not in planned:
                write(self.path(path), self.pristine.pop(path))
                del self.managed[path]
        for op in result.operations:
            handler.perform(ctx, op.data)
        for op in result.operations:
            handler.finish(ctx, op.data)
        self.last = persona(data)
        return result


def write(host: Path, state: FileState) -> None:
    if state.content is None:
        if host.exists():
            host.unlink()
        return
    host.parent.mkdir(parents=True, exist_ok=True)
    host.write_bytes(state.content)
    os.chmod(host, state.mode)
    if os.geteuid() == 0:
        os.chown(host, state.uid, state.gid)


@pytest.fixture
def driver(tmp_path: Path) -> Machine:
    """A fresh machine root (users alice and bob) with the driver's memory empty."""
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
