"""What the engine answers with, and how it refuses: results of applies and status, and
the engine's exceptions. Used by :mod:`mien.agent.engine` and its callers (the CLI, the
agent's sync loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mien.agent.plan import Plan
from mien.agent.state import HistoryEntry


class EngineError(Exception):
    """The request cannot be carried out; the message says why and what to do."""


class Refused(EngineError):
    """A customization refused by a lock (or invalid)."""


class Cancelled(EngineError):
    """The user declined the plan."""


@dataclass
class ApplyResult:
    plan: Plan
    applied: bool
    history_id: int | None
    elapsed_ms: float
    recovered: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Status:
    root: Path
    user: str | None
    active: str | None
    hash: str | None
    history: HistoryEntry | None
    drift: list[str]
    notes: list[dict[str, str]]
    customizations: int
    saved_files: int
    managed: int
    recovered: list[str]
