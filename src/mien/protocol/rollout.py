"""Where every instance of a rollout stands: applied, failed, applying or waiting.

One classification for everyone who follows a change: ``mien bind add --wait`` and ``mien
persona push --wait`` (:mod:`mien.cli.fleet.rollout`) and the dashboard's live rollout page
(:mod:`mien.server.ui.rollouts`). Only what the agents reported counts: an instance is applied
when its agent reported the desired content hash, failed when its agent reported a failure
(or the server cannot compose its persona), and waiting otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from mien.protocol.fleet import Instance


@dataclass
class Rollout:
    """Where every instance of a rollout stands."""

    total: int = 0
    applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    applying: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.applied) + len(self.failed) == self.total

    def line(self) -> str:
        parts = [f"{len(self.applied)} of {self.total} applied"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.applying:
            parts.append(f"{len(self.applying)} applying")
        if self.waiting:
            parts.append(f"{len(self.waiting)} waiting")
        if self.offline:
            parts.append(f"{len(self.offline)} of them offline")
        return ", ".join(parts)


def classify(
    instances: list[Instance],
    reported_before: dict[str, datetime | None] | None = None,
    current: Callable[[Instance], bool] | None = None,
) -> Rollout:
    """Sort instances by how far they are. ``reported_before`` maps an instance to the time
    of its agent's last report when watching began: a failure reported before then may be
    about an older desired state, so it counts only once the agent reports again.
    ``current`` says whether the server's answer already reflects the change (another
    replica may not have seen it yet); until it does, the instance is waiting."""
    before = reported_before or {}
    out = Rollout(total=len(instances))
    for inst in instances:
        applied = inst.applied
        if current is not None and not current(inst):
            out.waiting.append(inst.id)
        elif inst.desired.error:
            out.failed[inst.id] = f"the server cannot compose its persona: {inst.desired.error}"
        elif inst.in_sync:
            out.applied.append(inst.id)
        elif applied.state == "failed" and (inst.id not in before or applied.at != before[inst.id]):
            out.failed[inst.id] = applied.error or "the agent reported a failure"
        elif applied.state == "applying":
            out.applying.append(inst.id)
        else:
            out.waiting.append(inst.id)
        if not inst.in_sync and not inst.connected:
            out.offline.append(inst.id)
    return out
