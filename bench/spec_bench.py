"""How long the persona language takes: validate + render, per persona, and ``mien validate``
as a whole process.

Prints figures, asserts nothing (speed targets live here, not in timed tests):

* the example set (``examples/personas``): the first persona (cold: the CEL environment and
  pydantic's validators are built) and then the median per persona over repeated rounds;
* 1,000 generated personas, each distinct (different names, settings and rule thresholds, so
  the CEL compile cache does not hide the cost): median and 95th percentile per persona;
* ``mien validate FILE`` as a separate process, ~10 runs: median and range.

Targets: well under 1 ms per typical persona after the first; under 300 ms for the process.
Run ``python bench/spec_bench.py --importtime`` to see where start-up time goes.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "personas"
PROCESS_FILE = EXAMPLES / "workstation.yaml"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def _validate_and_render(raw: bytes, source: str, find: Callable[..., Any]) -> str:
    from mien.spec.canonical import to_yaml
    from mien.spec.compose import resolve
    from mien.spec.document import parse_document

    doc = parse_document(raw, source)
    return to_yaml(resolve(doc, find).data)


def bench_examples(rounds: int) -> None:
    from mien.spec.catalog import Catalog

    files = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    raws = [(p.read_bytes(), str(p)) for p in files]
    catalog = Catalog([EXAMPLES])  # parents are parsed once and cached, as a server would

    start = time.perf_counter()
    _validate_and_render(*raws[0], catalog.find)
    first = time.perf_counter() - start

    per: list[float] = []
    by_file: dict[str, list[float]] = {source: [] for _, source in raws}
    for _ in range(rounds):
        for raw, source in raws:
            start = time.perf_counter()
            _validate_and_render(raw, source, catalog.find)
            elapsed = time.perf_counter() - start
            per.append(elapsed)
            by_file[source].append(elapsed)
    print(f"example set ({len(raws)} personas, {rounds} rounds)")
    print(f"  first persona (cold):          {_ms(first)}")
    print(f"  validate + render, median:     {_ms(statistics.median(per))} per persona")
    for source, times in by_file.items():
        lines = Path(source).read_text().count("\n")
        name = f"{Path(source).name} ({lines} lines)"
        print(f"    {name:<38} {_ms(statistics.median(times))}")


_THEMES = ["dark", "light", "Adwaita", "Nordic"]
_EDITORS = ["vscode", "vim", "nano", "emacs", "code --wait"]
_APT = ["git", "curl", "ripgrep", "jq", "htop", "tmux", "zsh", "nginx", "postgresql-client"]
_PIP = ["pandas", "numpy", "requests", "httpx", "polars", "duckdb"]
_FREQ = ["hourly", "daily", "weekly", "monthly", "every 6h", "every 30m", "15 2 * * 1-5"]


def generated(count: int, seed: int = 7) -> list[bytes]:
    """``count`` distinct, realistic personas as YAML text."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        apt = rng.sample(_APT, 4)
        pip = rng.sample(_PIP, 2)
        cpu = rng.randint(50, 95)
        latency = rng.randint(50, 400)
        text = f"""\
name: generated-{i}
description: Generated persona {i} for the benchmark
labels: {{team: team-{i % 17}, tier: "{i % 3}"}}
os_settings: {{theme: {rng.choice(_THEMES)}, editor: {rng.choice(_EDITORS)}, terminal_shell: /bin/bash}}
application_settings:
  ide_extensions: [ms-python.python, eamodio.gitlens]
behavioral_settings:
  auto_update_frequency: {rng.choice(_FREQ)}
  security_scan_frequency: weekly
  logging_level: {rng.choice(["debug", "info", "warning"])}
environment_variables:
  APP_ENV: env-{i}
  WORKERS: {rng.randint(1, 32)}
application_configuration:
  app:
    path: /etc/app-{i}/config.json
    values: {{port: {8000 + i % 1000}, debug: {str(rng.random() < 0.5).lower()}}}
required_applications:
  - {{name: {apt[0]}, manager: apt}}
  - {{name: {apt[1]}, manager: apt}}
  - {apt[2]}
  - {apt[3]} (latest version)
  - {{name: {pip[0]}, manager: pip, version: ">=1.{i % 9}"}}
  - pip:{pip[1]}
restricted_commands: [shutdown, reboot, mkfs*]
priority_metrics: {{performance: {rng.random():.2f}, security: {rng.random():.2f}, cost: 0.1}}
learning_domains: [metrics, system_logs]
trust_levels: {{resource_scaling: high, network_access: medium}}
adaptation_rules:
  - name: cpu
    when: metrics.cpu_percent > {cpu}.{i:04d} && priority.performance > priority.cost
    for: {rng.randint(1, 10)}m
    then: [{{action: scale, cpu: {rng.choice([4, 8, 16])}}}]
    cooldown: 15m
  - Condition: Network Latency > {latency}.{i:04d}ms
    Action: Activate CDN caching
automated_responses:
  activate-cdn-caching: [{{action: notify, message: "latency above {latency} ms"}}]
resource_requirements: {{cpu: {rng.choice([1, 2, 4, 8])}, memory: {rng.choice([2, 4, 8, 16])}GiB, storage: 20GiB}}
"""
        out.append(text.encode())
    return out


def bench_generated(count: int) -> None:
    docs = generated(count)

    def missing(name: str, child: Any) -> Any:
        raise LookupError(name)

    # Warm up on a document of the same shape that is not in the measured set.
    _validate_and_render(generated(1, seed=99)[0], "warm.yaml", missing)
    per: list[float] = []
    for i, raw in enumerate(docs):
        start = time.perf_counter()
        _validate_and_render(raw, f"generated-{i}.yaml", missing)
        per.append(time.perf_counter() - start)
    per.sort()
    print(f"{count} generated personas (distinct conditions: CEL compiled for each)")
    print(f"  validate + render, median:     {_ms(statistics.median(per))} per persona")
    print(f"  validate + render, p95:        {_ms(per[int(len(per) * 0.95)])}")
    print(f"  total:                         {sum(per):.3f} s")


def _mien() -> list[str]:
    script = Path(sys.executable).parent / "mien"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mien.cli.main"]


def bench_process(runs: int) -> None:
    command = [*_mien(), "validate", str(PROCESS_FILE)]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            print(done.stderr.decode(), file=sys.stderr)
            raise SystemExit(f"mien validate failed with status {done.returncode}")
    print(f"mien validate {PROCESS_FILE.relative_to(ROOT)} (whole process, {runs} runs)")
    print(f"  median:                        {_ms(statistics.median(times))}")
    print(f"  min / max:                     {_ms(min(times))} / {_ms(max(times))}")


def import_times(top: int = 15) -> None:
    """The modules that cost most to import when ``mien validate`` starts (cumulative)."""
    command = [sys.executable, "-X", "importtime", "-m", "mien.cli.main", "validate"]
    done = subprocess.run(
        [*command, str(PROCESS_FILE)], check=False, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    print(f"largest cumulative imports of `mien validate` (top {top}, µs)")
    for cumulative, depth, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative:>8}  {'  ' * (depth // 2)}{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50, help="rounds over the example set")
    parser.add_argument("--count", type=int, default=1000, help="generated personas")
    parser.add_argument("--runs", type=int, default=10, help="process runs")
    parser.add_argument("--importtime", action="store_true", help="show start-up imports")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    # Other work on the machine skews every figure: say how busy it was.
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    bench_examples(args.rounds)
    bench_generated(args.count)
    bench_process(args.runs)
    if args.importtime:
        import_times()


if __name__ == "__main__":
    main()
