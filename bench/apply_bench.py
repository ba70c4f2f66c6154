"""How fast the agent applies, re-applies and switches personas.

A persona of 20 configuration files (json, yaml, toml, ini, env, text), 10 environment
variables, a schedule and 2 command shims, applied to a throw-away root: first apply,
no-op re-apply and a switch to a variant, each in-process (the daemon's case) and as a
whole ``mien apply`` process (the CLI's case). Prints medians; targets: no-op re-apply
under 5 ms in-process (answered from the engine's memory of its last no-op while
nothing it rested on changed; the full plan is printed beside it), and as a whole process (answered by the recorded no-op, see
``mien.agent.noop``) at most 150 ms with a peak resident memory of at most 40 MiB (median
of 20 runs). The full plan as a process, with the record removed, is printed beside it.

Run: .venv/bin/python bench/apply_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
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

# Reads a JSON argv per line, runs it, answers [exit status, wall ms, peak RSS MiB].
LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    start = time.perf_counter()
    child = subprocess.Popen(json.loads(line), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps([code, elapsed, usage.ru_maxrss / 1024]), flush=True)
"""

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

        def planned() -> None:
            engine.memo.forget()
            engine.apply("bench-a")

        noop_planned = [timed(planned) for _ in range(args.runs)]
        switches = []
        for i in range(max(3, args.runs // 3)):
            switches.append(timed(lambda i=i: engine.apply("bench-b" if i % 2 == 0 else "bench-a")))
        files = sum(1 for _ in root.rglob("*") if _.is_file())

        mien = [str(Path(sys.executable).with_name("mien")), "apply"]
        common = ["--root", str(root), "--personas", str(personas), "--yes"]

        record = root / "var/lib/mien/fastpath/noop.json"

        # ru_maxrss of a child counts the memory of the process it was forked from, so the
        # processes are started by a small launcher, not by this one (which holds the engine).
        launcher = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert launcher.stdin is not None and launcher.stdout is not None

        def proc(name: str) -> tuple[float, float]:
            """One whole ``mien apply`` process: (wall ms, peak resident MiB)."""
            launcher.stdin.write(json.dumps([*mien, name, *common]) + "\n")
            launcher.stdin.flush()
            code, elapsed, peak = json.loads(launcher.stdout.readline())
            assert code == 0, f"mien apply {name} exited {code}"
            return elapsed, peak

        proc("bench-a")
        proc("bench-a")  # finds nothing to change and records that
        fast = [proc("bench-a") for _ in range(20)]
        full = []
        for _ in range(max(5, args.runs // 3)):
            record.unlink(missing_ok=True)
            full.append(proc("bench-a"))
        proc_switch = [proc("bench-b" if i % 2 == 0 else "bench-a")[0] for i in range(6)]
        launcher.stdin.close()
        launcher.wait()

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
        print(
            f"  in-process no-op, full plan     {statistics.median(noop_planned):8.2f} ms median "
            "(nothing remembered)"
        )
        print(f"  in-process switch               {statistics.median(switches):8.1f} ms median")
        fast_ms = statistics.median(t for t, _ in fast)
        fast_mib = statistics.median(m for _, m in fast)
        print(
            f"  process `mien apply` no-op      {fast_ms:8.1f} ms median, "
            f"{fast_mib:.1f} MiB peak  target <= 150 ms, <= 40 MiB"
        )
        print(
            f"  process no-op, full plan        {statistics.median(t for t, _ in full):8.1f} ms "
            f"median, {statistics.median(m for _, m in full):.1f} MiB peak (no record)"
        )
        print(f"  process `mien apply` switch     {statistics.median(proc_switch):8.1f} ms median")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
