"""What an apply would change: the plan the engine computes and ``mien plan`` prints.

A :class:`Plan` is pure data: file changes (with before and after states, so a unified
diff can be shown), operations, notes per setting, and the drift found in managed files.
Computing it touches nothing; performing it is :mod:`mien.agent.transaction`'s job.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from mien.agent.handlers.base import Captured, FileSpec, FileState, Note, Operation
from mien.protocol.outcomes import settle
from mien.spec.layers import Resolved

Action = Literal["create", "update", "delete", "restore", "mode"]


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file to write, restore or delete."""

    path: str
    handler: str
    action: Action
    before: FileState
    after: FileState
    spec: FileSpec | None  # None when the engine unmanages a file on its own

    @property
    def summary(self) -> str:
        return self.spec.summary if self.spec and self.spec.summary else ""

    def diff(self, context: int = 3) -> str:
        """A unified diff of the content (empty for binary or unchanged content)."""
        old, new = self.before.content or b"", self.after.content or b""
        if old == new:
            if self.before.mode != self.after.mode:
                return f"mode {self.before.mode:04o} → {self.after.mode:04o}\n"
            return ""
        try:
            a, b = old.decode(), new.decode()
        except UnicodeDecodeError:
            return f"binary content differs ({len(old)} → {len(new)} bytes)\n"
        lines = difflib.unified_diff(
            a.splitlines(keepends=True),
            b.splitlines(keepends=True),
            fromfile=f"a{self.path}" if self.before.exists else "/dev/null",
            tofile=f"b{self.path}" if self.after.exists else "/dev/null",
            n=context,
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass(frozen=True, slots=True)
class Drift:
    """A managed file the user changed since mien wrote it, and what becomes of it."""

    path: str
    captured: tuple[Captured, ...]  # per-key customizations
    saved: bool  # whole file saved (nothing mapped it to keys)
    content: bytes | None = None  # the file as the user left it (None: deleted)
    uid: int | None = None  # who owned it as the user left it
    kept: bool = False  # a whole text file: kept as the user's version of that path


@dataclass
class Plan:
    """Everything an apply would do, computed without touching the machine."""

    persona: str
    previous: str | None
    resolved: Resolved
    base_document: dict[str, Any]
    customizations: dict[str, Any]
    files: list[FileChange] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    managed_specs: dict[str, tuple[str, FileSpec]] = field(default_factory=dict)
    skipped_customizations: list[tuple[str, str]] = field(default_factory=list)
    handler_order: list[str] = field(default_factory=list)
    # Captured customization → [file, uid] it came from (kept in history for rollbacks).
    origins: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return self.resolved.hash

    @property
    def changes(self) -> int:
        return len(self.files) + len(self.operations)

    @property
    def empty(self) -> bool:
        return not self.files and not self.operations

    def outcomes(self) -> list[dict[str, str]]:
        """One outcome per setting (the worst of what handlers said), as plain data."""
        return [o.model_dump(mode="json") for o in settle(n.outcome() for n in self.notes)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.files:
            out[change.action] = out.get(change.action, 0) + 1
        if self.operations:
            out["operation"] = len(self.operations)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (``mien plan --output json``)."""
        return {
            "persona": self.persona,
            "previous": self.previous,
            "hash": self.hash,
            "files": [
                {
                    "path": c.path,
                    "action": c.action,
                    "handler": c.handler,
                    "summary": c.summary,
                    "diff": c.diff(),
                }
                for c in self.files
            ],
            "operations": [
                {"handler": op.handler, "key": op.key, "summary": op.summary}
                for op in self.operations
            ],
            "notes": self.outcomes(),
            "drift": [
                {
                    "path": d.path,
                    "captured": {c.key: c.value for c in d.captured},
                    "saved": d.saved,
                    "kept": d.kept,
                }
                for d in self.drift
            ],
            "skipped_customizations": [
                {"key": k, "reason": r} for k, r in self.skipped_customizations
            ],
        }
