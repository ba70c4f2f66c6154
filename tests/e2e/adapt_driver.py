"""The adaptation loop as a process, for tests/e2e/test_adaptation.py: what
``mien agent run --local`` runs, with one difference — ``metrics.cpu_percent`` is the share
of the machine's CPU used by the processes whose command line holds MARKER (the test's busy
process), so the other programs on a shared test machine do not move the rule.

    python tests/e2e/adapt_driver.py ROOT MARKER
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mien.agent.adapt.loop import Adaptation
from mien.agent.engine import Engine


@dataclass
class Reading:
    metrics: dict[str, Any]
    events: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class MarkedCpu:
    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.procs: dict[int, psutil.Process] = {}
        self.cores = psutil.cpu_count() or 1

    def sample(self, now: float) -> Reading:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if self.marker in " ".join(proc.info["cmdline"] or ()) and proc.pid not in self.procs:
                proc.cpu_percent(None)  # the first call starts the measurement
                self.procs[proc.pid] = proc
        total = 0.0
        for pid, proc in list(self.procs.items()):
            try:
                total += proc.cpu_percent(None)
            except psutil.Error:
                del self.procs[pid]
        return Reading({"cpu_percent": total / self.cores})


class NoSources:
    def due(self, now: float) -> list[str]:
        return []

    def current(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {}


def main() -> None:
    root, marker = Path(sys.argv[1]), sys.argv[2]
    engine = Engine(root)
    loop = Adaptation(
        root,
        lambda: engine,
        interval=1.0,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        telemetry=lambda persona, root: MarkedCpu(marker),
        sources=lambda persona, root: NoSources(),
    )
    signal.signal(signal.SIGTERM, lambda *_: loop.stopping.set())
    print(f"started {time.time()}", file=sys.stderr, flush=True)
    loop.run()


if __name__ == "__main__":
    main()
