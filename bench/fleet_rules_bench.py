"""Fleet-rule evaluation time over 10,000 instances.

A SQLite database (the default) with N instances (half tagged role=web), the newest
cpu_percent and memory_percent of each in the telemetry store's per-instance table and a
machine rule firing on a tenth of them; three fleet rules (an average, a percentile, a
firing fraction) over role=web. Prints the median wall time of one whole evaluation by the
leader (reading the values, aggregating, stepping every rule, writing their states in one
transaction), its CPU time (what the evaluation costs when the machine is busy with
other work), and of its parts: the database read, and the aggregation plus the CEL step.
Between evaluations a share of the instances (``--changed``, a third by default: agents
report every 15 s, the leader evaluates every 5 s) send new values through the ingest
path, so the leader has that many rows to read anew. Target: an evaluation under 100 ms
at 10,000 instances.

Run: .venv/bin/python bench/fleet_rules_bench.py [--instances N] [--runs R] [--changed F]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mien.server.orchestrator.aggregates import Selections, load, scope  # noqa: E402
from mien.server.orchestrator.documents import parse  # noqa: E402
from mien.server.orchestrator.newest import Newest  # noqa: E402
from mien.server.settings import Settings  # noqa: E402
from mien.server.state import ServerState  # noqa: E402
from mien.server.store import fleet_rules as rules_q  # noqa: E402
from mien.server.store import latest, migrate  # noqa: E402
from mien.server.store.tables import instances  # noqa: E402
from mien.server.store.tables_telemetry import instance_rule_phases, metric_latest  # noqa: E402

RULES = [
    b"name: web-hot\nselector: {role: web}\nwhen: avg.cpu_percent > 70.0 && count >= 10\n"
    b"for: 1m\nthen: [{bind: {persona: burst}}]\n",
    b"name: web-tail\nselector: {role: web}\nwhen: p95.memory_percent > 97.0\n"
    b"then: [{set_tags: {tail: hot}}]\n",
    b"name: web-memory\nselector: {role: web}\nwhen: firing_fraction.high_memory > 0.5\n"
    b"then: [{set_tags: {memory: hot}}]\n",
]


async def build(state: ServerState, n: int, now: float) -> None:
    await migrate.upgrade(state.db)
    rng = random.Random(7)
    at = datetime.fromtimestamp(now, UTC)
    async with state.db.write() as s:
        rows = [
            {
                "id": f"vm-{i:05d}",
                "hostname": None,
                "tags": {"role": "web" if i % 2 else "db"},
                "enrolled_at": at,
                "enrolled_by": "bench",
                "last_seen": at,
                "agent_version": None,
            }
            for i in range(n)
        ]
        for start in range(0, n, 1000):
            await s.execute(instances.insert(), rows[start : start + 1000])
        latest = [
            {
                "instance_id": r["id"],
                "name": m,
                "ts": now - rng.random() * 30,
                "value": rng.uniform(0, 100),
            }
            for r in rows
            for m in ("cpu_percent", "memory_percent")
        ]
        for start in range(0, len(latest), 1000):
            await s.execute(metric_latest.insert(), latest[start : start + 1000])
        phases = [
            {"instance_id": r["id"], "rule": "high_memory", "phase": "firing", "ts": now}
            for r in rows[::10]
        ]
        await s.execute(instance_rule_phases.insert(), phases)
        for raw in RULES:
            p = parse(raw)
            await rules_q.add_version(s, p.doc.name, p.data, p.text, "bench", at)
    await state.fleet.load_all(at)


async def report(state: ServerState, n: int, share: float, rng: random.Random) -> None:
    """A share of the instances send a new cpu_percent and memory_percent (ingest path)."""
    now = time.time()
    async with state.db.write() as s:
        for i in rng.sample(range(n), int(n * share)):
            triples = [(m, now, rng.uniform(0, 100)) for m in ("cpu_percent", "memory_percent")]
            await latest.record_values(s, f"vm-{i:05d}", triples)


async def main(n: int, runs: int, share: float) -> None:
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        state = ServerState(
            Settings(data_dir=Path(tmp), orchestrator_interval=0.001, orchestrator_lease_ttl=600)
        )
        await build(state, n, now)
        orch = state.orchestrator
        assert await orch.tick() is not None, "no lease"
        whole, cpu, reads, steps, rows = [], [], [], [], []
        mirror = Newest(resync=3600)  # the leader's copy, kept alike to time its read alone
        async with state.db.read() as s:
            await load(s, mirror, [orch._rule(r) for r in await rules_q.current(s)], now)
        rng = random.Random(11)
        for _ in range(runs):
            await report(state, n, share, rng)
            t0, c0 = time.perf_counter(), time.process_time()
            await orch.evaluate(time.time())
            whole.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            async with state.db.read() as s:
                rules = [orch._rule(r) for r in await rules_q.current(s)]
                t0 = time.perf_counter()
                inputs = await load(s, mirror, rules, time.time())
                reads.append(time.perf_counter() - t0)
                rows.append(mirror.read)
            t0 = time.perf_counter()
            select = Selections(state.fleet.members)
            for r in rules:
                sc = scope(r, select(r.doc.selector), inputs)
                r.rule.step(sc, None, time.time())
            steps.append(time.perf_counter() - t0)
        await state.db.dispose()

    def ms(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:.1f} ms (min {min(xs) * 1000:.1f})"

    print(f"fleet rules: {len(RULES)} rules over {n:,} instances ({n // 2:,} match), {runs} runs")
    print(f"  between evaluations {int(n * share):,} instances send new values")
    print(f"  whole evaluation:      {ms(whole)}   target < 100 ms")
    print(f"    its CPU time:        {ms(cpu)}   (all threads of this process)")
    print(f"  read newest values:    {ms(reads)}   ({statistics.median(rows):,.0f} rows changed)")
    print(f"  aggregate + CEL step:  {ms(steps)}")
    verdict = "meets" if statistics.median(whole) < 0.1 else "MISSES"
    print(f"  wall time {verdict} the target (medians; a loaded machine shows in wall time)")
    print("  load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--changed", type=float, default=1 / 3, help="share reporting between runs")
    args = ap.parse_args()
    if not 0 <= args.changed <= 1:
        ap.error(f"--changed: {args.changed} is not a share between 0 and 1")
    asyncio.run(main(args.instances, args.runs, args.changed))
