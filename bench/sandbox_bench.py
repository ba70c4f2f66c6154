"""Time from a provision call to a ready sandbox, for each sandbox driver usable here.

The environment is cached first (the base root, the persona layer, the podman image:
built on the first provision, not timed); then each driver provisions a small persona
(one apt program, a configuration file, a flat setting, limits) N times and destroys it.
Prints the median and the slowest; targets: local < 1 s, podman < 3 s. Needs root.

Run: sudo .venv/bin/python bench/sandbox_bench.py [--runs N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mien.agent.sandbox import Driver, SandboxSpec  # noqa: E402
from mien.agent.sandbox.local import LocalDriver  # noqa: E402
from mien.agent.sandbox.podman import PodmanDriver  # noqa: E402
from mien.agent.sandbox.roots import cache_dir  # noqa: E402

PERSONA = {
    "name": "bench-tool",
    "required_applications": [{"name": "jq", "manager": "apt"}],
    "application_configuration": {
        "greeter": {"path": "/etc/greeter.json", "format": "json", "values": {"greeting": "hi"}},
        "database_connection_string": "postgresql://db.internal:5432/app",
    },
    "resource_requirements": {"cpu": 1, "memory": "256MiB", "storage": "256MiB"},
}
TARGETS = {"local": 1.0, "podman": 3.0}


def measure(driver: Driver, runs: int) -> list[float]:
    warm = driver.provision(SandboxSpec.from_persona(f"bench{uuid.uuid4().hex[:8]}", PERSONA))
    driver.destroy(warm)
    times = []
    for _ in range(runs):
        spec = SandboxSpec.from_persona(f"bench{uuid.uuid4().hex[:8]}", PERSONA)
        started = time.perf_counter()
        handle = driver.provision(spec)
        times.append(time.perf_counter() - started)
        driver.destroy(handle)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=cache_dir())
    args = parser.parse_args()
    runs_dir = Path(tempfile.mkdtemp(prefix="mien-sandbox-bench-", dir="/run"))
    runs_dir.chmod(0o711)
    drivers: list[Driver] = [
        LocalDriver(cache=args.cache, runs=runs_dir),
        PodmanDriver(cache=args.cache, runs=runs_dir),
    ]
    try:
        for driver in drivers:
            report(driver, args.runs)
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)


def report(driver: Driver, runs: int) -> None:
    missing = driver.available()
    if missing:
        print(f"{driver.name:7} skipped: {missing}")
        return
    try:
        times = measure(driver, runs)
    finally:
        if isinstance(driver, PodmanDriver):
            driver.stop_service()
    verdict = "ok" if max(times) < TARGETS[driver.name] else "OVER TARGET"
    print(
        f"{driver.name:7} provision → ready: median {statistics.median(times) * 1000:.0f} ms, "
        f"slowest {max(times) * 1000:.0f} ms over {len(times)} runs "
        f"(target < {TARGETS[driver.name]:.0f} s: {verdict})"
    )


if __name__ == "__main__":
    main()
