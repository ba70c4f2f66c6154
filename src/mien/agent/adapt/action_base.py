"""What every action executor shares: the context it runs in (:class:`Ctx`), what it
returns (:class:`Done`), how it fails (:class:`ActionFailed`), its protocol
(:class:`Executor`), and the helpers for parameters and programs on the machine. Used by
:mod:`mien.agent.adapt.executors` and the executors in their own modules (overlays,
firewall, cgroups), and by the loop."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mien.agent.adapt.ledger import Ledger
    from mien.agent.engine import Engine

OUTPUT_CAP = 4096  # bytes of a failing program's output kept in the event
RUN_TIMEOUT = 120.0  # seconds a `run` command may take before it is killed (status 124)


class ActionFailed(Exception):
    """The action did not happen; the machine is as it was. ``retry``: worth trying again."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class Done:
    """What an action did: ``status`` applied (in effect, ``undo`` says how to revert),
    requested (asked of someone else) or done (nothing to revert)."""

    status: str
    message: str
    undo: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ctx:
    """What an executor may use."""

    root: Path
    persona: str
    rule: str
    change_id: int
    ledger: Ledger
    engine: Callable[[], Engine]
    data: Mapping[str, Any] = field(default_factory=dict)
    has_server: bool = False
    log: Callable[[str], None] = print


class Executor(Protocol):
    reversible: bool

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done: ...

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None: ...


def param(
    params: Mapping[str, Any], *names: str, default: Any = None, required: bool = True
) -> Any:
    """The first of ``names`` given in ``params``; a missing required one fails for good."""
    for name in names:
        if params.get(name) not in (None, ""):
            return params[name]
    if required and default is None:
        raise ActionFailed(f"missing parameter {names[0]!r}", retry=False)
    return default


def on_machine(root: Path, argv: list[str]) -> list[str]:
    """``argv`` to run a program of the machine: directly on ``/``, through ``chroot``
    for another root (its programs and services are its own)."""
    if root == Path("/"):
        return argv
    return ["chroot", str(root), *argv]


def run_program(argv: list[str], timeout: float = 120.0) -> tuple[int, str]:
    """Run ``argv``; its status and combined output (the first :data:`OUTPUT_CAP` bytes)."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]}: timed out after {timeout:.0f}s"
    except OSError as exc:
        return 127, f"{argv[0]}: {exc.strerror}"
    return done.returncode, done.stdout[:OUTPUT_CAP].decode(errors="replace")


def have(program: str) -> bool:
    return (
        shutil.which(program, path=os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
        is not None
    )
