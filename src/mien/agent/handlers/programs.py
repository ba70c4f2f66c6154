"""Running a program inside the machine root (``chroot`` when the root is not ``/``), as
root or as the persona user, with a small predictable environment.

Used by :class:`mien.agent.handlers.base.Context` (inspection programs while a plan is
computed), by handlers' operations and third-party handlers, and by the CLI (``Launches``).
It imports nothing of the handler contract but its error, so the context can use it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mien.agent.handlers.errors import HandlerError

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Launches:
    """Programs run so far in this process. A plan that ran one depended on more than
    files, so its answer cannot be stamped for the no-op fast path (mien.agent.noop)."""

    count = 0


# Variables a child process may need from the agent's environment (proxies, locale).
_PASSED_THROUGH = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


class _User(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def home(self) -> str: ...


class _HasUser(Protocol):  # a Context, without importing the contract
    @property
    def user(self) -> _User: ...


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who a program runs as (JSON-friendly, so operations can keep it in their data)."""

    name: str
    uid: int
    gid: int
    home: str

    def as_data(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "home": self.home}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RunAs:
        return cls(str(data["name"]), int(data["uid"]), int(data["gid"]), str(data["home"]))

    @classmethod
    def of(cls, ctx: _HasUser) -> RunAs:
        return cls(ctx.user.name, ctx.user.uid, ctx.user.gid, ctx.user.home)


def child_env(
    ctx_env: Mapping[str, str], user: RunAs | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A small, predictable environment: standard PATH, the user's HOME, proxies, extras."""
    env = {"PATH": STANDARD_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    for name in _PASSED_THROUGH:
        if name in ctx_env:
            env[name] = ctx_env[name]
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    else:
        env["HOME"] = "/root"
    env.update(extra or {})
    return env


def run_in_root(
    root: Path,
    argv: Sequence[str],
    *,
    user: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (paths as seen inside the root) and return it if it succeeded.

    On ``/`` the program runs directly (as ``user`` when given); under another root it runs
    through ``chroot --userspec``, so it sees the root's files, users and configuration.
    Failure raises :class:`HandlerError` naming the command and the end of its output.
    """
    Launches.count += 1
    label = what or " ".join(argv)
    run_as_other = user is not None and user.uid != os.geteuid()
    kwargs: dict[str, Any] = {}
    if root == Path("/"):
        command = list(argv)
        if run_as_other:
            assert user is not None
            if os.geteuid() != 0:
                raise HandlerError(f"{label}: running as {user.name} needs root privileges")
            kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []}
    else:
        if os.geteuid() != 0:
            raise HandlerError(f"{label}: running a program inside {root} needs root (chroot)")
        spec = [f"--userspec={user.uid}:{user.gid}"] if user is not None else []
        command = ["chroot", *spec, str(root), *argv]
    cwd = None
    if user is not None:
        home = Path(user.home) if root == Path("/") else root / user.home.lstrip("/")
        cwd = str(home) if home.is_dir() else None
    try:
        proc = subprocess.run(
            command,
            env=dict(env) if env is not None else child_env({}, user),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd if root == Path("/") else None,
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        raise HandlerError(f"{label}: still running after {timeout:.0f}s, stopped") from None
    except OSError as exc:
        raise HandlerError(f"{label}: cannot run: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
        detail = "; ".join(tail) if tail else "no output"
        raise HandlerError(f"{label}: exited with status {proc.returncode}: {detail}")
    return proc
