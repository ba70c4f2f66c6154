"""A machine root running a persona, and the adaptation loop on it with a controlled clock
and controlled samples (the metrics a test sets are what telemetry "measures": the edge of
the world; rules, executors, engine, state and audit are all real)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mien.agent.adapt import baselines
from mien.agent.adapt.loop import Adaptation
from mien.agent.engine import Engine
from mien.agent.state import State


@dataclass
class Reading:
    metrics: dict[str, Any]
    events: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class SetMetrics:
    """Telemetry that reports what the test put in ``metrics``."""

    def __init__(self, metrics: dict[str, Any]) -> None:
        self.metrics = metrics

    def sample(self, now: float) -> Reading:
        return Reading(dict(self.metrics))


class NoSources:
    def due(self, now: float) -> list[str]:
        return []

    def current(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {}


@dataclass
class Loop:
    root: Path
    adaptation: Adaptation
    metrics: dict[str, Any]
    now: float = 1_800_000_000.0
    lines: list[str] = field(default_factory=list)

    def tick(self, seconds: float = 1.0, **metrics: Any) -> None:
        self.metrics.update(metrics)
        self.now += seconds
        self.adaptation.tick(self.now)

    def run_for(self, seconds: int, **metrics: Any) -> None:
        for _ in range(seconds):
            self.tick(1.0, **metrics)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        from mien.agent.adapt.ledger import events

        with State(self.root) as state:
            found = events(state)
        out = [
            {"event": r.event.removeprefix("adapt."), "actor": r.actor, "persona": r.persona}
            | r.detail
            for r in found
        ]
        return [e for e in out if name is None or e["event"] == name]

    def audit_lines(self) -> list[dict[str, Any]]:
        path = self.root / "var/log/mien/audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def loop(machine: Path, tmp_path: Path) -> Iterator[Callable[..., Loop]]:
    made: list[Loop] = []

    def make(persona: str, *, real_sources: bool = False) -> Loop:
        """``real_sources``: the loop's own data sources (fetched over HTTP, no server)."""
        path = tmp_path / "persona.yaml"
        path.write_text(persona)
        engine = Engine(machine, user="alice", personas=[tmp_path])
        engine.apply(path)
        metrics: dict[str, Any] = {}
        holder: list[Loop] = []
        lines: list[str] = []
        adaptation = Adaptation(
            machine,
            lambda: engine,
            interval=1.0,
            log=lines.append,
            telemetry=lambda persona, root: SetMetrics(metrics),
            sources=None if real_sources else lambda persona, root: NoSources(),
            baselines=baselines,
            clock=lambda: holder[0].now,
        )
        result = Loop(machine, adaptation, metrics, lines=lines)
        holder.append(result)
        made.append(result)
        return result

    yield make
    for item in made:
        item.adaptation.close()
