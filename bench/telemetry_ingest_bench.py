"""How fast one ``mien server`` on SQLite (or PostgreSQL) stores fleet telemetry, and reads a day of it back.

Starts a real server process, enrolls ``--agents`` instances, then has each send gzip
batches as ``mien agent run`` does (``--metrics`` metrics per tick, ``--ticks`` ticks per
batch: 20 × 10 is 150 s of a 15 s interval, or 10 s of a 1 s one) from ``--concurrency``
connections for ``--seconds``. Prints the samples per second the server stored
(acknowledged, so committed), the CPU seconds the server process used, and the latency
of one query for a day of one instance at 1-minute steps (``--day`` seeds it).

Target (issue 11): 10,000 agents × 20 metrics every 15 s ≈ 13,000 samples/s on SQLite on
one core; the day query under 50 ms. The load generator shares the machine with the server.

Run: .venv/bin/python bench/telemetry_ingest_bench.py [--agents 50] [--seconds 10] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "server"))


def batch(seq: int, now: float, metrics: int, ticks: int) -> tuple[bytes, int]:
    samples = []
    for tick in range(ticks):
        ts = now - (ticks - tick)
        for m in range(metrics):
            seq += 1
            samples.append({"seq": seq, "ts": ts, "name": f"metric_{m}", "value": tick + m * 0.5})
    return gzip.compress(json.dumps({"samples": samples}).encode(), 6), seq


async def agent_load(
    url: str, tokens: list[str], args: argparse.Namespace, stop_at: float
) -> tuple[int, int]:
    """Send batches round-robin over the agents until ``stop_at``: (samples, requests)."""
    seqs = dict.fromkeys(tokens, 0)
    stored = requests = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for token in tokens:
        queue.put_nowait(token)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal stored, requests
        while time.monotonic() < stop_at:
            token = await queue.get()
            body, seqs[token] = batch(seqs[token], time.time(), args.metrics, args.ticks)
            answer = await client.post(
                "/api/v1/agent/telemetry",
                content=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                },
            )
            answer.raise_for_status()
            stored += int(answer.json()["samples"])
            requests += 1
            queue.put_nowait(token)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
    return stored, requests


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--day", type=int, default=5760, help="ticks of the day query's seed")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="a throwaway PostgreSQL cluster (durable settings) instead of SQLite",
    )
    args = parser.parse_args()
    provider = None
    if args.postgres:
        sys.path.insert(0, str(REPO / "tests"))
        from pg import PostgresProvider

        provider = PostgresProvider.start(durable=True)
    try:
        run(args, provider.new_database() if provider else None)
    finally:
        if provider is not None:
            provider.stop()


def run(args: argparse.Namespace, db_url: str | None) -> None:
    from server_harness import ServerProcess

    from mien.client import AgentClient

    backend = "PostgreSQL" if db_url else "SQLite"
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", db_url).start()
        try:
            assert server.proc is not None
            with server.client() as admin:
                secret = admin.create_token("bench", kind="enroll", uses=args.agents).token
                tokens = []
                with AgentClient(server.url) as api:
                    for i in range(args.agents):
                        tokens.append(api.enroll(secret, instance_id=f"bench-{i}").token)
                cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
                stored, requests = asyncio.run(
                    agent_load(server.url, tokens, args, time.monotonic() + args.seconds)
                )
                wall = time.monotonic() - wall0
                cpu = cpu_seconds(server.proc.pid) - cpu0
                print(
                    f"ingest ({backend}, {args.agents} agents, {args.metrics} metrics x "
                    f"{args.ticks} ticks per batch, {args.concurrency} connections):"
                )
                print(f"  {stored / wall:,.0f} samples/s stored ({stored:,} in {wall:.1f} s, "
                      f"{requests / wall:,.1f} batches/s)")  # fmt: skip
                print(f"  server CPU {cpu:.1f} s: {stored / max(cpu, 1e-9):,.0f} samples per "
                      "CPU second (target 13,000/s on one core)")  # fmt: skip

                # A day of one instance: one metric every 15 s, then the 1-minute query.
                day_token = tokens[0]
                start = time.time() - 86400
                seq = 10**9
                with httpx.Client(base_url=server.url, timeout=60) as http:
                    for first in range(0, args.day, 1000):
                        samples = []
                        for tick in range(first, min(first + 1000, args.day)):
                            seq += 1
                            ts = start + tick * (86400 / args.day)
                            samples.append({"seq": seq, "ts": ts, "name": "day", "value": tick})
                        http.post(
                            "/api/v1/agent/telemetry",
                            content=gzip.compress(json.dumps({"samples": samples}).encode()),
                            headers={
                                "Authorization": f"Bearer {day_token}",
                                "Content-Type": "application/json",
                                "Content-Encoding": "gzip",
                            },
                        ).raise_for_status()
                    times = []
                    for _ in range(20):
                        t0 = time.perf_counter()
                        answer = admin.instance_metrics("bench-0", name="day", since=86400, step=60)
                        times.append((time.perf_counter() - t0) * 1000)
                    points = len(answer.series[0].points) if answer.series else 0
                print(
                    f"query: a day of one metric at 1-minute steps ({points} points, "
                    f"{answer.source}): median {statistics.median(times):.1f} ms, "
                    f"max {max(times):.1f} ms (target < 50 ms)"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
