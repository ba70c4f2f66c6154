"""How the server holds a fleet: thousands of long-polling agents on one machine.

Starts real ``mien server`` processes, enrolls ``--agents`` instances through the API,
connects one long-poll per agent, and prints, for SQLite and then PostgreSQL with
``--replicas`` (``--db`` picks one):

* enrollment rate, and how fast all agents got parked (the reconnect storm);
* memory of each server process with every agent waiting;
* a single activation: from the API call to the agent's long-poll answering, p50/p99
  (``--activations`` samples, each on a random agent);
* a full rollout (a binding that selects every agent, then a new persona version): time
  until the last agent received it, and until the last report was stored (each agent
  reports ``applying`` then ``applied``, as ``mien agent run`` does).

It ends with one table of these figures for both databases, each with the CPU seconds
the phase cost the load generator, the mien servers and PostgreSQL, and the load average:
the load generator shares the machine with what it measures, and so may other work.

PostgreSQL is a throwaway cluster (or ``MIEN_TEST_PG_URL``) with PostgreSQL's durable
defaults (fsync, synchronous_commit, full_page_writes on), as a real server runs;
``--pg-fast`` turns those three off (unsafe, faster; the table says which was used).

Targets (issue 9), 10,000 agents on a 2-core machine, both databases: enrollment ≥ 500/s,
all parked after a restart ≤ 5 s, ≤ 250 MiB per server process, single activation p99
< 200 ms, rollout received ≤ 1.5 s and every report stored ≤ 5 s.

The simulated agents speak the protocol of ``docs/api.md`` over raw asyncio streams
(keep-alive HTTP/1.1), not through ``mien.client``: the load generator shares the machine
with the server and must cost much less than the thing it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
AGENT_VERSION = "bench"
HISTORY_REPORTED = 20  # entries the real agent sends with each report (mien.agent.sync)
sys.path.insert(0, str(ROOT / "tests"))


# --- a cheap agent -----------------------------------------------------------------------


class Agent:
    """One instance: a keep-alive connection, a long-poll loop, reports on the same socket."""

    def __init__(self, index: int, host: str, port: int, token: str) -> None:
        self.index = index
        self.host, self.port, self.token = host, port, token
        self.known: str | None = None
        self.applied: str | None = None
        self.persona: str | None = None
        self.version: int | None = None
        self.history: list[dict[str, Any]] = []
        self.received: dict[str, float] = {}  # state -> when it arrived
        self.reported: dict[str, float] = {}  # hash -> when its report was stored
        self.activation_seen: dict[str, float] = {}
        self.parked = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Length: {len(body)}\r\n"
            + ("Content-Type: application/json\r\n" if body else "")
            + "\r\n"
        )
        self._writer.write(head.encode() + body)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self._reader.readexactly(length) if length else b""
        return status, data

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _report(self, report: dict[str, Any]) -> None:
        status, _ = await self._request("POST", "/api/v1/agent/report", orjson.dumps(report))
        if status != 200:  # not stored: ask again (the answer comes at once)
            raise ConnectionError(f"report {report['state']}: HTTP {status}")

    async def _apply(self, desired: dict[str, Any]) -> None:
        """What ``mien agent run`` sends (``mien.agent.sync``): ``applying`` naming what
        still runs, then ``applied`` with the history summary; a state already applied
        only confirms its activation."""
        if desired["hash"] != self.applied:
            await self._report(
                {
                    "state": "applying",
                    "activation_id": desired["activation_id"],
                    "hash": self.applied,
                    "persona": self.persona,
                    "version": self.version,
                    "agent_version": AGENT_VERSION,
                }
            )
            self.history = [
                {
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "persona": desired["persona"],
                    "hash": desired["hash"],
                    "action": "apply",
                    "id": len(self.history) + 1,
                    "note": f"server:{desired['persona']}@v{desired['version']}",
                },
                *self.history,
            ][:HISTORY_REPORTED]
        elif not desired.get("activation_id"):
            return
        await self._report(
            {
                "state": "applied",
                "activation_id": desired["activation_id"],
                "hash": desired["hash"],
                "persona": desired["persona"],
                "version": desired["version"],
                "history": self.history,
                "agent_version": AGENT_VERSION,
            }
        )
        self.applied = desired["hash"]
        self.persona, self.version = desired["persona"], desired["version"]
        self.reported.setdefault(desired["hash"], time.perf_counter())

    async def run(self, wait: float, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            known = f"&known={self.known}" if self.known else ""
            try:
                self.parked = True
                status, data = await self._request(
                    "GET", f"/api/v1/agent/desired?wait={wait}{known}"
                )
                self.parked = False
                if status == 204:
                    continue
                if status != 200:
                    raise ConnectionError(f"HTTP {status}")
                now = time.perf_counter()
                desired = orjson.loads(data)
                self.received.setdefault(desired["state"], now)
                if desired.get("activation_id"):
                    self.activation_seen.setdefault(desired["activation_id"], now)
                if desired["document"] is not None:
                    await self._apply(desired)
                self.known = desired["state"]
                delay = 0.1
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                self.parked = False
                self._close()
                await asyncio.sleep(random.uniform(0, delay))  # jittered backoff
                delay = min(delay * 2, 5.0)
        self._close()


# --- servers -------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path, db: str | None) -> None:
        self.data = data
        self.port = free_port()
        args = [sys.executable, "-m", "mien.cli.main", "server", "--port", str(self.port),
                "--data", str(data), "--log-level", "warning"]  # fmt: skip
        if db:
            args += ["--db", db]
        data.mkdir(parents=True, exist_ok=True)
        self.log = (data / "server.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {data / 'server.log'}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        import psutil

        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    def cpu(self) -> float:
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> float:
        started = time.monotonic()
        self.proc.terminate()
        self.proc.wait(60)
        return time.monotonic() - started


def own_cpu() -> float:
    """CPU seconds of the load generator itself (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """CPU seconds spent by the load generator, the servers and the database per phase."""

    def __init__(self, servers: list[Server], database: Any) -> None:
        self.servers = servers
        self.database = database  # () -> CPU seconds of PostgreSQL, or None
        self.cpu: dict[str, tuple[float, float, float]] = {}
        self._mark = self._now()

    def _now(self) -> tuple[float, float, float]:
        db = self.database() if self.database else 0.0
        return own_cpu(), sum(s.cpu() for s in self.servers), db

    def start(self) -> None:
        self._mark = self._now()

    def phase(self, name: str) -> None:
        now = self._now()
        self.cpu[name] = (now[0] - self._mark[0], now[1] - self._mark[1], now[2] - self._mark[2])
        self._mark = now


async def call(api: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """An admin call that must succeed; retried while the server says "retry later"."""
    for attempt in range(10):
        r = await api.request(method, url, **kw)
        if r.status_code not in (429, 502, 503, 504):
            r.raise_for_status()
            return r
        await asyncio.sleep(0.05 * (attempt + 1))
    r.raise_for_status()
    return r


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_for(predicate: Any, timeout: float, poll: float = 0.01) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError
        await asyncio.sleep(poll)
    return time.perf_counter() - start


# --- the scenario ----------------------------------------------------------------------


async def scenario(
    servers: list[Server], admin_token: str, n: int, samples: int, wait: float, meter: Meter
) -> dict[str, str]:
    """Run every phase; the figures of the table, by row."""
    figures: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {admin_token}"}
    api = httpx.AsyncClient(base_url=servers[0].url, headers=headers, timeout=120)
    await api.post("/api/v1/personas", json={"name": "base", "environment_variables": {"V": "1"}})
    await api.post("/api/v1/personas", json={"name": "alt", "environment_variables": {"V": "alt"}})
    enroll = (
        await api.post("/api/v1/tokens", json={"kind": "enroll", "name": "bench", "uses": n})
    ).json()["token"]

    # Enrollment: 32 keep-alive connections, spread over the replicas, each enrolling in turn.
    meter.start()
    t0 = time.perf_counter()
    tokens: list[str] = [""] * n
    cursor = iter(range(n))

    async def enroller(k: int) -> None:
        server = servers[k % len(servers)]
        conn = Agent(-1, "127.0.0.1", server.port, enroll)
        for i in cursor:
            body = {"instance_id": f"bench-{i:05d}", "tags": {"fleet": "bench"}}
            status, data = await conn._request("POST", "/api/v1/enroll", orjson.dumps(body))
            if status != 201:
                raise SystemExit(f"enroll bench-{i:05d}: HTTP {status} {data[:200]!r}")
            tokens[i] = orjson.loads(data)["token"]
        conn._close()

    await asyncio.gather(*(enroller(k) for k in range(32)))
    took = time.perf_counter() - t0
    meter.phase("enrollment")
    figures["enrollment"] = f"{n / took:.0f}/s ({took:.1f} s)"
    print(f"enrolled {n} instances in {took:.1f}s ({n / took:.0f}/s)")

    stop = asyncio.Event()
    agents = [
        Agent(i, "127.0.0.1", servers[i % len(servers)].port, t) for i, t in enumerate(tokens)
    ]
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(a.run(wait, stop)) for a in agents]

    async def waiting() -> int:
        total = 0
        for s in servers:
            total += (await api.get(f"{s.url}/healthz")).json()["waiting_agents"]
        return total

    while await waiting() < n:
        await asyncio.sleep(0.05)
    took = time.perf_counter() - t0
    meter.phase("reconnect storm")
    figures["reconnect storm"] = f"{took:.1f} s ({n / took:.0f}/s)"
    print(f"{n} agents connected and parked in {took:.1f}s ({n / took:.0f} new long-polls/s)")
    rss = [s.rss_mib() for s in servers]
    figures["server RSS, all parked"] = " + ".join(f"{r:.0f}" for r in rss) + " MiB"
    print("server RSS with every agent parked: " + ", ".join(f"{r:.0f} MiB" for r in rss)
          + f" ({sum(rss) * 1024 / n:.1f} KiB per agent, everything included)")  # fmt: skip

    latencies: list[float] = []
    calls: list[tuple[float, float, float]] = []  # (when, API call, to the agent)
    origin = time.perf_counter()
    meter.start()
    for _ in range(samples):
        agent = random.choice(agents)
        await wait_for(lambda a=agent: a.parked, 10)
        start = time.perf_counter()
        r = await call(
            api, "POST", f"/api/v1/instances/bench-{agent.index:05d}/personas/alt/activate"
        )
        answered = time.perf_counter()
        aid = r.json()["id"]
        try:
            await wait_for(lambda a=agent, x=aid: x in a.activation_seen, 10, poll=0.001)
        except TimeoutError:
            raise SystemExit(
                f"agent {agent.index} never saw activation {aid} ({r.status_code}): "
                f"parked={agent.parked} known={agent.known} seen={list(agent.activation_seen)}"
            ) from None
        latencies.append(agent.activation_seen[aid] - start)
        calls.append((start - origin, answered - start, latencies[-1]))
        await call(api, "DELETE", f"/api/v1/instances/bench-{agent.index:05d}/activation")
    meter.phase("single activation")
    ms = [x * 1000 for x in latencies]
    if os.environ.get("MIEN_BENCH_VERBOSE"):
        for when, took_call, total in sorted(calls, key=lambda c: -c[2])[:5]:
            print(
                f"  slow sample at +{when:.2f}s: API call {took_call * 1000:.0f} ms, total {total * 1000:.0f} ms"
            )
    figures["single activation p99 (p50)"] = (
        f"{pct(ms, 0.99):.0f} ms ({statistics.median(ms):.0f} ms)"
    )
    print(f"single activation, API call to the agent's answer ({samples} samples): "
          f"p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")  # fmt: skip

    rollouts: list[tuple[float, float]] = []

    async def rollout(label: str, change: Any) -> None:
        await asyncio.sleep(1.0)  # let the previous wave settle
        meter.start()
        start = time.perf_counter()
        await change()
        r = await api.get("/api/v1/instances/bench-00000/active_persona")
        want = r.json()["desired"]["hash"]
        try:
            got = await wait_for(lambda: all(want in a.reported for a in agents), 120, poll=0.05)
        except TimeoutError:
            missing = [a for a in agents if want not in a.reported]
            got_it = sum(1 for a in missing if any(t >= start for t in a.received.values()))
            raise SystemExit(
                f"{label}: {len(missing)} agents never stored a report of {want[:19]} "
                f"({got_it} of them received a new state; e.g. agent {missing[0].index}: "
                f"parked={missing[0].parked} applied={missing[0].applied})"
            ) from None
        meter.phase(label)
        last_received = max(t for a in agents for s, t in a.received.items() if t >= start) - start
        rollouts.append((last_received, got))
        print(f"{label}: all {n} received it in {last_received:.2f}s, "
              f"all reports stored in {got:.2f}s (2 reports per agent)")  # fmt: skip

    await rollout(
        "rollout (binding)",
        lambda: call(
            api,
            "POST",
            "/api/v1/bindings",
            json={"name": "all", "selector": {"fleet": "bench"}, "persona": "base"},
        ),
    )
    await rollout(
        "rollout (new version)",
        lambda: call(
            api,
            "PUT",
            "/api/v1/personas/base",
            json={"name": "base", "environment_variables": {"V": "2"}},
        ),
    )
    # The slower of the two rollouts for each figure (not both from the same one).
    received = max(r[0] for r in rollouts)
    stored = max(r[1] for r in rollouts)
    figures["rollout: all received / all reports stored"] = f"{received:.1f} s / {stored:.1f} s"
    asked = time.perf_counter()
    summary = (await api.get("/api/v1/fleet/summary")).json()
    took = (time.perf_counter() - asked) * 1000
    print(f"fleet summary: {summary['in_sync']}/{summary['instances']} in sync "
          f"(answered in {took:.0f} ms)")  # fmt: skip
    if summary["in_sync"] != n:
        raise SystemExit(f"only {summary['in_sync']} of {n} instances in sync")
    stop.set()
    stopped = [await asyncio.to_thread(s.stop) for s in servers]
    print("graceful stop with every agent parked: " + ", ".join(f"{x:.2f}s" for x in stopped))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await api.aclose()
    return figures


# --- the table ---------------------------------------------------------------------------

ROWS = [
    ("enrollment", "≥ 500/s", "enrollment"),
    ("reconnect storm", "≤ 5 s", "reconnect storm"),
    ("server RSS, all parked", "≤ 250 MiB per process", None),
    ("single activation p99 (p50)", "< 200 ms", "single activation"),
    ("rollout: all received / all reports stored", "≤ 1.5 s / ≤ 5 s", "rollout"),
]


def cpu_cell(cpu: dict[str, tuple[float, float, float]], phase: str | None) -> str:
    if phase is None:
        return ""
    parts = [v for k, v in cpu.items() if k.startswith(phase)]
    if not parts:
        return ""
    gen, srv, db = (max(p[i] for p in parts) for i in range(3))
    text = f"gen {gen:.1f} s, server {srv:.1f} s"
    return text + (f", db {db:.1f} s" if db else "")


def table(n: int, runs: list[tuple[str, dict[str, str], dict[str, Any]]]) -> str:
    """The figures of every run side by side, each with the CPU seconds it cost."""
    head = "| figure | " + " | ".join(label for label, _f, _c in runs) + " | target (each) |"
    lines = [head, "|---" * (len(runs) + 2) + "|"]
    for row, target, phase in ROWS:
        cells = []
        for _label, figures, cpu in runs:
            value = figures.get(row, "—")
            spent = cpu_cell(cpu, phase)
            cells.append(f"{value} [{spent}]" if spent else value)
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {target} |")
    return "\n".join(lines)


def run_one(
    tmp: Path, args: argparse.Namespace, pg: bool, replicas: int
) -> tuple[str, dict[str, str], dict[str, Any]]:
    from pg import PostgresProvider

    provider = None
    db = None
    database_cpu = None
    if pg:
        provider = PostgresProvider.start(durable=not args.pg_fast)
        db = provider.new_database()
        database_cpu = provider.cpu_seconds
    servers: list[Server] = []
    try:
        servers = [Server(tmp / f"r{i}", db) for i in range(replicas)]
        token = (tmp / "r0" / "admin.token").read_text().strip()
        if pg:
            kind = f"PostgreSQL, {replicas} replica(s)"
            kind += ", fsync=off (--pg-fast)" if args.pg_fast else ", durable defaults"
        else:
            kind = "SQLite (synchronous=FULL)"
        print(f"== {args.agents} agents on {kind}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start")  # fmt: skip
        meter = Meter(servers, database_cpu)
        figures = asyncio.run(
            scenario(servers, token, args.agents, args.activations, args.wait, meter)
        )
        return kind, figures, meter.cpu
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()
            if os.environ.get("MIEN_BENCH_VERBOSE"):
                log = (s.data / "server.log").read_text(errors="replace")
                print(
                    f"--- {s.data.name} log (last lines) ---\n" + "\n".join(log.splitlines()[-15:])
                )
        if provider is not None:
            provider.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument(
        "--db",
        choices=("sqlite", "pg", "both"),
        default="both",
        help="which database(s): both runs SQLite, then PostgreSQL with --replicas",
    )
    parser.add_argument("--pg", action="store_true", help="same as --db pg")
    parser.add_argument("--replicas", type=int, default=2, help="server processes (PostgreSQL)")
    parser.add_argument(
        "--pg-fast",
        action="store_true",
        help="run the throwaway PostgreSQL with fsync, synchronous_commit and "
        "full_page_writes off (unsafe; the default is PostgreSQL's durable settings)",
    )
    parser.add_argument("--activations", type=int, default=200, help="single-activation samples")
    parser.add_argument("--wait", type=float, default=55.0, help="long-poll wait, seconds")
    args = parser.parse_args()
    if args.pg:
        args.db = "pg"
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.agents + 200:
        raise SystemExit(f"open-file limit {hard} is below {args.agents} agents")

    import tempfile

    plan = []
    if args.db in ("sqlite", "both"):
        plan.append((False, 1))
    if args.db in ("pg", "both"):
        plan.append((True, args.replicas))
    runs = []
    for pg, replicas in plan:
        with tempfile.TemporaryDirectory(prefix="mien-fleet-") as tmp:
            runs.append(run_one(Path(tmp), args, pg, replicas))
        if len(runs) < len(plan):  # the figures so far, should a later run not finish
            print(table(args.agents, runs))
    print(f"\n{args.agents} agents, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end; [CPU seconds the phase cost: gen = this "
          "load generator, server = every mien server process, db = PostgreSQL]")  # fmt: skip
    print(table(args.agents, runs))


if __name__ == "__main__":
    main()
