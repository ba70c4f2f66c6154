"""A tiny sandbox driver for the broker's tests: a directory per lease on this host,
commands run there with subprocess (an int exit status, as the first interface had it),
interactive programs started there on the descriptors given (``spawn``, as the real
drivers do for ``mien app shell``). It isolates nothing: the glue's and the relay's own
logic runs in seconds with it; the real drivers are tested in tests/integration/agent/sandbox
and tests/e2e/test_app_personas.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TinyUsage:
    cpu_seconds: float
    peak_memory: int
    processes: list[list[str]] = field(default_factory=list)
    oom_killed: bool = False


@dataclass(frozen=True)
class TinyHandle:
    lease_id: str
    path: Path


class TinyDriver:
    """A directory per lease; commands run there with subprocess (stdio inherited, as a
    real driver's ``run`` does). A package named ``missing-*`` will not install."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def provision(self, spec: Any) -> TinyHandle:
        where = self.root / spec.lease_id
        where.mkdir(parents=True)
        for pkg in spec.document.get("required_applications", []):
            name = pkg["name"] if isinstance(pkg, dict) else pkg
            if name.startswith("missing-"):
                shutil.rmtree(where)
                raise RuntimeError(f"E: Unable to locate package {name}")
        (where / "persona.json").write_text(json.dumps(spec.document))
        return TinyHandle(spec.lease_id, where)

    def run(self, handle: TinyHandle, argv: list[str], *, tty: bool = False) -> int:
        return subprocess.run(argv, cwd=handle.path, check=False).returncode

    def spawn(
        self,
        handle: TinyHandle,
        argv: list[str],
        *,
        stdin: int,
        stdout: int,
        stderr: int,
        tty: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        import os

        cmd = ["setsid", "--ctty", "--wait", "--", *argv] if tty else list(argv)
        return subprocess.Popen(
            cmd, cwd=handle.path, stdin=stdin, stdout=stdout, stderr=stderr,
            env={**os.environ, **(env or {}), "PS1": "tiny$ "}, start_new_session=not tty,
        )  # fmt: skip

    def usage(self, handle: TinyHandle) -> TinyUsage:
        # A file "oom" in the lease stands for the kernel's OOM killer having struck.
        return TinyUsage(0.5, 1024 * 1024, oom_killed=(handle.path / "oom").exists())

    def destroy(self, handle: TinyHandle) -> None:
        shutil.rmtree(handle.path, ignore_errors=True)

    def list(self) -> list[TinyHandle]:
        if not self.root.is_dir():
            return []
        return [TinyHandle(p.name, p) for p in sorted(self.root.iterdir())]
