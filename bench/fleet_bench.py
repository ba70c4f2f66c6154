"""How the server holds a fleet: thousands of long-polling agents on one machine.

Starts real ``mien server`` processes (SQLite by default; ``--pg`` for PostgreSQL with
``--replicas N``, using a throwaway cluster or ``MIEN_TEST_PG_URL``), enrolls ``--agents``
instances through the API, connects one long-poll per agent, and prints:

* enrollment rate, and how fast all agents got parked (the reconnect storm);
* memory of the server process(es) with every agent waiting;
* a single activation: from the API call to the agent's long-poll answering, p50/p99
  (``--activations`` samples, each on a random agent);
* a full rollout (a binding that selects every agent, then a new persona version): time
  until the last agent received it, and until the last report was stored.

Targets (issue 4): 5,000 agents on SQLite, 10,000 on PostgreSQL with two replicas, on a
2-core machine; p99 single activation under 200 ms; full rollout to 5,000 under 10 s.

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
sys.path.insert(0, str(ROOT / "tests"))


# --- a cheap agent -----------------------------------------------------------------------


class Agent:
    """One instance: a keep-alive connection, a long-poll loop, reports on the same socket."""

    def __init__(self, index: int, host: str, port: int, token: str) -> None:
        self.index = index
        self.host, self.port, self.token = host, port, token
        self.known: str | None = None
        self.applied: str | None = None
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
                    report = {
                        "state": "applied",
                        "activation_id": desired["activation_id"],
                        "hash": desired["hash"],
                        "persona": desired["persona"],
                        "version": desired["version"],
                    }
                    status, _ = await self._request(
                        "POST", "/api/v1/agent/report", orjson.dumps(report)
                    )
                    if status != 200:  # not stored: ask again (the answer comes at once)
                        raise ConnectionError(f"report: HTTP {status}")
                    self.applied = desired["hash"]
                    self.reported.setdefault(desired["hash"], time.perf_counter())
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

    def stop(self) -> float:
        started = time.monotonic()
        self.proc.terminate()
        self.proc.wait(60)
        return time.monotonic() - started


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
    servers: list[Server], admin_token: str, n: int, samples: int, wait: float
) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    api = httpx.AsyncClient(base_url=servers[0].url, headers=headers, timeout=120)
    await api.post("/api/v1/personas", json={"name": "base", "environment_variables": {"V": "1"}})
    await api.post("/api/v1/personas", json={"name": "alt", "environment_variables": {"V": "alt"}})
    enroll = (
        await api.post("/api/v1/tokens", json={"kind": "enroll", "name": "bench", "uses": n})
    ).json()["token"]

    t0 = time.perf_counter()
    sem = asyncio.Semaphore(32)
    tokens: list[str] = [""] * n

    async def one(i: int) -> None:
        async with sem:
            r = await api.post("/api/v1/enroll", headers={"Authorization": f"Bearer {enroll}"},
                               json={"instance_id": f"bench-{i:05d}", "tags": {"fleet": "bench"}})  # fmt: skip
            r.raise_for_status()
            tokens[i] = r.json()["token"]

    await asyncio.gather(*(one(i) for i in range(n)))
    took = time.perf_counter() - t0
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
        await asyncio.sleep(0.2)
    took = time.perf_counter() - t0
    print(f"{n} agents connected and parked in {took:.1f}s ({n / took:.0f} new long-polls/s)")
    rss = [s.rss_mib() for s in servers]
    print("server RSS with every agent parked: " + ", ".join(f"{r:.0f} MiB" for r in rss)
          + f" ({sum(rss) * 1024 / n:.1f} KiB per agent, everything included)")  # fmt: skip

    latencies: list[float] = []
    calls: list[tuple[float, float, float]] = []  # (when, API call, to the agent)
    origin = time.perf_counter()
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
    ms = [x * 1000 for x in latencies]
    if os.environ.get("MIEN_BENCH_VERBOSE"):
        for when, took_call, total in sorted(calls, key=lambda c: -c[2])[:5]:
            print(
                f"  slow sample at +{when:.2f}s: API call {took_call * 1000:.0f} ms, total {total * 1000:.0f} ms"
            )
    print(f"single activation, API call to the agent's answer ({samples} samples): "
          f"p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")  # fmt: skip

    async def rollout(label: str, change: Any) -> None:
        await asyncio.sleep(1.0)  # let the previous wave settle
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
        last_received = max(t for a in agents for s, t in a.received.items() if t >= start) - start
        print(f"{label}: all {n} received it in {last_received:.2f}s, "
              f"all reports stored in {got:.2f}s")  # fmt: skip

    await rollout(
        "rollout (binding selecting every agent)",
        lambda: call(
            api,
            "POST",
            "/api/v1/bindings",
            json={"name": "all", "selector": {"fleet": "bench"}, "persona": "base"},
        ),
    )
    await rollout(
        "rollout (new version of the bound persona)",
        lambda: call(
            api,
            "PUT",
            "/api/v1/personas/base",
            json={"name": "base", "environment_variables": {"V": "2"}},
        ),
    )
    summary = (await api.get("/api/v1/fleet/summary")).json()
    print(f"fleet summary: {summary['in_sync']}/{summary['instances']} in sync")
    stop.set()
    t0 = time.perf_counter()
    stopped = [await asyncio.to_thread(s.stop) for s in servers]
    print("graceful stop with every agent parked: " + ", ".join(f"{x:.2f}s" for x in stopped))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await api.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--replicas", type=int, default=1, help="server processes (PostgreSQL)")
    parser.add_argument("--activations", type=int, default=200, help="single-activation samples")
    parser.add_argument("--wait", type=float, default=55.0, help="long-poll wait, seconds")
    args = parser.parse_args()
    if args.replicas > 1 and not args.pg:
        parser.error("several replicas need --pg")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.agents + 200:
        raise SystemExit(f"open-file limit {hard} is below {args.agents} agents")

    import tempfile

    from pg import PostgresProvider

    provider = None
    db = None
    with tempfile.TemporaryDirectory(prefix="mien-fleet-") as tmp:
        if args.pg:
            provider = PostgresProvider.start()
            db = provider.new_database()
        try:
            servers = [Server(Path(tmp) / f"r{i}", db) for i in range(args.replicas)]
            token = (Path(tmp) / "r0" / "admin.token").read_text().strip()
            kind = f"PostgreSQL, {args.replicas} replica(s)" if args.pg else "SQLite"
            print(f"== {args.agents} agents on {kind}, {os.cpu_count()} CPUs")
            asyncio.run(scenario(servers, token, args.agents, args.activations, args.wait))
        finally:
            for s in locals().get("servers", []):
                if s.proc.poll() is None:
                    s.proc.kill()
                if os.environ.get("MIEN_BENCH_VERBOSE"):
                    log = (s.data / "server.log").read_text(errors="replace")
                    print(
                        f"--- {s.data.name} log (last lines) ---\n"
                        + "\n".join(log.splitlines()[-15:])
                    )
            if provider is not None:
                provider.stop()


if __name__ == "__main__":
    main()
