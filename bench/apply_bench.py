"""How fast the agent applies, re-applies and switches personas.

A persona of 20 configuration files (json, yaml, toml, ini, env, text), 10 environment
variables, a schedule and 2 command shims, applied to a throw-away root: first apply,
no-op re-apply and a switch to a variant, each in-process (the daemon's case) and as a
whole ``mien apply`` process (the CLI's case). Prints medians; targets: no-op re-apply
under 5 ms in-process and under 300 ms as a process.

Run: .venv/bin/python bench/apply_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import make_machine  # noqa: E402

FORMATS = ["json", "yaml", "toml", "ini", "env", "text"]


def persona(name: str, flavour: str) -> str:
    lines = [
        f"name: {name}",
        "environment_variables:",
        *[f"  VAR_{i}: '{flavour}-{i}'" for i in range(10)],
        "behavioral_settings:",
        "  auto_update_frequency: daily",
        "  logging_level: info",
        "restricted_commands: [shutdown]",
        "command_overrides: {deploy: /bin/true}",
        "application_configuration:",
    ]
    for i in range(20):
        fmt = FORMATS[i % len(FORMATS)]
        ext = {"text": "txt"}.get(fmt, fmt)
        lines.append(f"  app{i}:")
        lines.append(f"    path: /etc/bench/app{i}.{ext}")
        lines.append(f"    format: {fmt}")
        if fmt == "text":
            lines.append(f"    content: 'app {i} {flavour}\\n'")
        elif fmt == "ini":
            lines.append(f"    values: {{main: {{mode: {flavour}, index: {i}}}}}")
        else:
            lines.append(f"    values: {{mode: {flavour}, index: {i}}}")
    return "\n".join(lines) + "\n"


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    from mien.agent.engine import Engine

    work = Path(tempfile.mkdtemp(prefix="mien-apply-bench-"))
    try:
        personas = work / "personas"
        personas.mkdir()
        (personas / "bench-a.yaml").write_text(persona("bench-a", "a"))
        (personas / "bench-b.yaml").write_text(persona("bench-b", "b"))
        root = make_machine(work / "root")
        engine = Engine(root, user="alice", personas=[personas], env={**os.environ})

        first = timed(lambda: engine.apply("bench-a"))
        result = engine.apply("bench-a")
        assert not result.applied, "re-apply changed something"
        noop = [timed(lambda: engine.apply("bench-a")) for _ in range(args.runs)]
        switches = []
        for i in range(max(3, args.runs // 3)):
            switches.append(timed(lambda i=i: engine.apply("bench-b" if i % 2 == 0 else "bench-a")))
        files = sum(1 for _ in root.rglob("*") if _.is_file())

        mien = [str(Path(sys.executable).with_name("mien")), "apply"]
        common = ["--root", str(root), "--personas", str(personas), "--yes"]

        def proc(name: str) -> float:
            start = time.perf_counter()
            subprocess.run([*mien, name, *common], check=True, capture_output=True)
            return (time.perf_counter() - start) * 1000

        proc("bench-a")
        proc_noop = [proc("bench-a") for _ in range(max(5, args.runs // 3))]
        proc_switch = [proc("bench-b" if i % 2 == 0 else "bench-a") for i in range(6)]

        load = os.getloadavg()[0]
        print(
            f"apply bench: 20 config files, 10 env vars, 1 schedule, 2 shims ({files} files in the root)"
        )
        print(f"load average {load:.2f} on {os.cpu_count()} CPUs")
        print(f"  in-process first apply          {first:8.1f} ms")
        print(
            f"  in-process no-op re-apply       {statistics.median(noop):8.2f} ms median "
            f"(p90 {sorted(noop)[int(len(noop) * 0.9)]:.2f})  target < 5 ms"
        )
        print(f"  in-process switch               {statistics.median(switches):8.1f} ms median")
        print(
            f"  process `mien apply` no-op      {statistics.median(proc_noop):8.1f} ms median  target < 300 ms"
        )
        print(f"  process `mien apply` switch     {statistics.median(proc_switch):8.1f} ms median")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
