"""The adaptation loop as a process, for tests/e2e/test_adaptation.py: what
``mien agent run --local`` runs, with one difference — ``metrics.cpu_percent`` is the share
of the machine's CPU used by the processes whose command line holds MARKER (the test's busy
process), so the other programs on a shared test machine do not move the rule.

    python tests/e2e/adapt_driver.py ROOT MARKER [INTERVAL]

bench/agent_idle_bench.py runs it too where the agent's own collectors are not installed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mien.agent.adapt import baselines
from mien.agent.adapt.loop import Adaptation
from mien.agent.engine import Engine


@dataclass
class Reading:
    metrics: dict[str, Any]
    events: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class MarkedCpu:
    """CPU of the marked processes between two samples, as a share of the whole machine
    (a process first seen is measured since it started, so a restarted agent's first
    sample is not a zero)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.seen: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, at)
        self.cores = psutil.cpu_count() or 1

    def sample(self, now: float) -> Reading:
        used = wall = 0.0
        at = time.time()
        for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
            if self.marker not in (proc.info["cmdline"] or ())[-1:] or proc.pid == os.getpid():
                continue
            try:
                cpu = sum(proc.cpu_times()[:2])
            except psutil.Error:
                continue
            before, since = self.seen.get(proc.pid, (0.0, proc.info["create_time"]))
            self.seen[proc.pid] = (cpu, at)
            used += cpu - before
            wall = max(wall, at - since)
        share = 100.0 * used / wall / self.cores if wall > 0 else 0.0
        return Reading({"cpu_percent": round(share, 2)})


class NoSources:
    def due(self, now: float) -> list[str]:
        return []

    def current(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {}


def main() -> None:
    root, marker = Path(sys.argv[1]), sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    engine = Engine(root)
    loop = Adaptation(
        root,
        lambda: engine,
        interval=interval,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        telemetry=lambda persona, root: MarkedCpu(marker),
        sources=lambda persona, root: NoSources(),
        baselines=baselines,
    )
    signal.signal(signal.SIGTERM, lambda *_: loop.stopping.set())
    print(f"started {time.time()}", file=sys.stderr, flush=True)
    loop.run()


if __name__ == "__main__":
    main()
