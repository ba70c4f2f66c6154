"""What a running agent costs while it adapts and nothing happens.

Starts ``mien agent run --local`` on a throw-away root running a persona with 20 rules over
the machine's metrics (none of them fires), at a 15 s and at a 1 s interval, and measures
the process over ``--seconds`` (default 60, after a 5 s warm-up): CPU time as a percentage
of one core, and resident memory (the largest seen). Targets: < 1 % of a core at 15 s;
RSS <= 60 MiB.

Run: .venv/bin/python bench/agent_idle_bench.py [--seconds N]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import make_machine, mien_command  # noqa: E402

CPU_TARGET = 1.0  # % of one core, at 15 s
RSS_TARGET = 60.0  # MiB


def persona() -> str:
    rules = "\n".join(
        f"  - name: rule-{i}\n"
        f"    when: metrics.cpu_percent > {101 + i}.0\n"
        f"    for: 1m\n"
        f"    then: [{{action: notify, message: never {i}}}]"
        for i in range(20)
    )
    return (
        "name: idle\n"
        "learning_domains: [metrics]\n"
        "trust_levels: {file_system_modification: low}\n"
        f"adaptation_rules:\n{rules}\n"
    )


def have_collectors() -> bool:
    import importlib.util

    return importlib.util.find_spec("mien.agent.adapt.telemetry") is not None


def agent_command(root: Path, interval: float) -> list[str]:
    if have_collectors():
        return [
            *mien_command(),
            *("agent", "run", "--local", "--root", str(root), "--interval", str(interval)),
        ]
    # The same loop with the test suite's one-metric CPU collector.
    driver = REPO / "tests" / "e2e" / "adapt_driver.py"
    return [sys.executable, str(driver), str(root), "no-such-process", str(interval)]


def measure(root: Path, interval: float, seconds: float) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    proc = subprocess.Popen(
        agent_command(root, interval),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        watched = psutil.Process(proc.pid)
        time.sleep(5.0)
        if proc.poll() is not None:
            raise SystemExit(f"the agent exited with {proc.returncode}")
        start_cpu = sum(watched.cpu_times()[:2])
        start = time.monotonic()
        rss = 0.0
        while time.monotonic() - start < seconds:
            rss = max(rss, watched.memory_info().rss / 2**20)
            time.sleep(1.0)
        used = sum(watched.cpu_times()[:2]) - start_cpu
        return 100.0 * used / (time.monotonic() - start), rss
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_machine(Path(tmp) / "root")
        path = Path(tmp) / "idle.yaml"
        path.write_text(persona())
        done = subprocess.run(
            [*mien_command(), "apply", str(path), "--root", str(root), "--user", "alice", "--yes"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        print(f"agent idle with adaptation on, 20 rules, over {args.seconds:.0f}s:")
        if not have_collectors():
            print("  (mien.agent.adapt.telemetry is not installed: the loop runs with the test")
            print("   suite's one-metric CPU collector, tests/e2e/adapt_driver.py)")
        for interval in (15.0, 1.0):
            cpu, rss = measure(root, interval, args.seconds)
            target = f" (target < {CPU_TARGET:g} %)" if interval == 15.0 else ""
            print(
                f"  interval {interval:>4g}s: CPU {cpu:.3f} % of a core{target}, RSS {rss:.1f} MiB (target <= {RSS_TARGET:g} MiB)"
            )


if __name__ == "__main__":
    main()
