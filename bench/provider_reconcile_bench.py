"""How long the replica's periodic size check takes over a whole fleet.

Every ``provider_reconcile_interval`` (30 s) the server compares each instance's size with
its persona's ``resource_requirements`` and submits a resize where they differ. This
benchmark builds a SQLite database (the default) with ``--instances`` instances whose
agents reported ``cpu_count`` and ``memory_total_mib``, a webhook provider serving them
all and a persona asking for 2 vCPUs and 2 GiB, which ``--resize`` of them (a share) do not
have. It prints the wall and CPU time of the first pass (it submits those resizes) and of
the next ones (nothing new to submit). Target: a pass well under the interval; the
per-instance reads of the first version took about 50 s for 10,000 instances (30 s of
CPU), longer than the interval itself.

Run: .venv/bin/python bench/provider_reconcile_bench.py [--instances N] [--resize F]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mien.server.providers.sizes import reconcile  # noqa: E402
from mien.server.settings import Settings  # noqa: E402
from mien.server.state import ServerState  # noqa: E402
from mien.server.store import migrate  # noqa: E402
from mien.server.store import providers as providers_q  # noqa: E402
from mien.server.store.tables_telemetry import metric_latest  # noqa: E402

PERSONA = {"resource_requirements": {"cpu": 2, "memory": "2Gi"}}


async def seed(state: ServerState, n: int, resize: float) -> None:
    await migrate.upgrade(state.db)
    now = datetime.now(UTC)
    async with state.db.write() as s:
        await providers_q.put(
            s,
            name="hooks",
            driver="webhook",
            selector={"role": "web"},
            config={"url": "http://127.0.0.1:9/"},
            secret="s" * 32,
            description=None,
            actor="bench",
            now=now,
        )
        small = int(n * resize)
        rows = []
        for i in range(n):
            cpus, mib = (1, 1024) if i < small else (2, 2048)
            rows.append(
                {"instance_id": f"i-{i:05d}", "name": "cpu_count", "ts": 1e9, "value": cpus}
            )
            rows.append(
                {"instance_id": f"i-{i:05d}", "name": "memory_total_mib", "ts": 1e9, "value": mib}
            )
        for start in range(0, len(rows), 2000):
            await s.execute(metric_latest.insert(), rows[start : start + 2000])


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = ServerState(Settings(data_dir=Path(tmp)))
        await seed(state, args.instances, args.resize)
        items = [(f"i-{i:05d}", {"role": "web"}, "web", 1, PERSONA) for i in range(args.instances)]
        passes = []
        for run in range(args.runs):
            wall, cpu = time.perf_counter(), time.process_time()
            submitted = await reconcile(state.providers, items)
            passes.append((time.perf_counter() - wall, time.process_time() - cpu, submitted))
            label = "first pass" if run == 0 else f"pass {run + 1}"
            print(f"{label}: {passes[-1][0] * 1000:.0f} ms wall, {passes[-1][1] * 1000:.0f} ms CPU,"
                  f" {submitted} resizes submitted")  # fmt: skip
        rest = passes[1:] or passes
        print(
            f"reconcile over {args.instances:,} instances: first pass {passes[0][0]:.2f} s "
            f"({passes[0][2]:,} submitted), then median {statistics.median(p[0] for p in rest):.2f} s "
            f"wall, {statistics.median(p[1] for p in rest):.2f} s CPU "
            "(the interval is 30 s)"
        )
        await state.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--resize", type=float, default=0.1, help="share needing a resize")
    parser.add_argument("--runs", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
