"""How fast the broker decides lease requests under contention, and (once sandbox drivers
are present) how long a request takes to become ready.

Admission: ``--clients`` coroutines ask at once for leases of one persona against hosts
with room for ``--capacity`` of them, each request in its own transaction exactly as
``POST /api/v1/broker/leases`` runs it (record, decide, audit), on a real database (SQLite
in a temporary directory, or ``--db postgresql+asyncpg://…``). Prints decisions per second
and checks that exactly ``--capacity`` were admitted. Target: at least 1,000 decisions/s.

Time to ready: a real ``mien server``, a sandbox host (:class:`mien.agent.sandbox_host.
SandboxHost`) with each sandbox driver, request → ready (median; targets: local < 1 s,
podman < 3 s, with a cached environment). Needs root and the base root the sandbox tests
cache; a driver that cannot run here is skipped with the reason.

Run: .venv/bin/python bench/broker_bench.py [--requests N] [--clients N] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mien.server.broker.writer import RequestJob  # noqa: E402
from mien.server.settings import Settings  # noqa: E402
from mien.server.state import ServerState  # noqa: E402
from mien.server.store import leases as leases_q  # noqa: E402
from mien.spec.models import ResourceRequirements  # noqa: E402

GiB = 1024**3


async def admission(db_url: str | None, requests: int, clients: int, capacity: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.build(data_dir=Path(tmp), db_url=db_url, sandbox_host_timeout=3600)
        state = ServerState(settings)
        await state.start()
        try:
            hosts = 4
            async with state.transaction() as tx:
                for i in range(hosts):
                    share = capacity // hosts + (1 if i < capacity % hosts else 0)
                    await leases_q.offer(
                        tx.session,
                        f"sbx-{i}",
                        cpu=float(share),
                        memory=64 * GiB,
                        storage=100 * GiB,
                        driver="bench",
                        now=tx.now,
                    )
            req = ResourceRequirements.model_validate({"cpu": 1, "memory": "256MiB"})
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(requests):
                queue.put_nowait(n)
            outcomes: Counter[str] = Counter()

            async def client() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    job = RequestJob(
                        persona="bench",
                        version=1,
                        document={"name": "bench"},
                        requirements=req,
                        holder=f"user-{n % 50}",
                        priority=None,
                        ttl=600,
                    )
                    row = await state.admissions.submit_job(job)
                    outcomes[row.state] += 1

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            elapsed = time.perf_counter() - started
        finally:
            await state.stop()
    rate = requests / elapsed
    backend = "PostgreSQL" if db_url else "SQLite"
    print(f"admission ({backend}, {clients} concurrent clients, room for {capacity}):")
    print(f"  {requests} decisions in {elapsed:.2f}s = {rate:,.0f} decisions/s (target >= 1,000)")
    print(f"  outcomes: {dict(outcomes)}")
    assert outcomes["provisioning"] == capacity, "over- or under-committed!"


def time_to_ready(leases: int) -> None:
    """Request → ready through a real server and a sandbox host with each driver (cached
    base root / image), the median of ``leases`` requests. Needs root and the cached base
    root that the sandbox tests build; skips, saying why, otherwise."""
    import os
    import statistics
    import threading

    print(f"time to ready (request -> ready, median of {leases}, cached environment):")
    if leases < 1:
        print("  skipped: --leases 0")
        return
    try:
        from mien.agent.sandbox import SandboxError, drivers, roots
    except ImportError:
        print("  skipped: the sandbox drivers (mien.agent.sandbox) are not in this build")
        return
    if os.geteuid() != 0:
        print("  skipped: sandboxes need root")
        return
    cache = Path.home() / ".cache" / "mien-test-images"
    if not (cache / f"base-{roots.Recipe().key()}").is_dir():
        print(f"  skipped: no cached base root in {cache} (run the sandbox tests once)")
        return
    sys.path.insert(0, str(REPO / "tests" / "integration" / "server"))
    from server_harness import ServerProcess

    from mien.agent.sandbox_host import SandboxHost
    from mien.client import AgentClient, Client
    from mien.client import broker as ops

    runs = Path(tempfile.mkdtemp(prefix="mien-bench-", dir="/run"))
    runs.chmod(0o711)
    for name in drivers():
        try:
            driver = type(drivers()[name])(roots.Recipe(), cache=cache, runs=runs)  # type: ignore[call-arg]
            missing = driver.available()
        except (SandboxError, TypeError) as exc:
            missing = str(exc)
        if missing:
            print(f"  {name}: skipped: {missing}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            server = ServerProcess(Path(tmp) / "data").start()
            try:
                with server.client() as admin:
                    admin.create_persona({"name": "bench", "resource_requirements": {"cpu": 0.1}})
                    enroll = admin.create_token("e", kind="enroll").token
                    with AgentClient(server.url) as anon:
                        agent_token = anon.enroll(enroll, instance_id="bench-host").token
                    user = admin.create_token("bench-user", role="user").token
                host_client = Client(server.url, agent_token)
                glue = SandboxHost(
                    host_client,
                    driver,
                    driver_name=name,
                    offer=(8.0, 64 * GiB, 100 * GiB),
                    poll_interval=0.05,
                )
                thread = threading.Thread(target=glue.run, daemon=True)
                thread.start()
                times = []
                with Client(server.url, user) as me:
                    for _ in range(leases + 1):  # the first one warms the persona layer
                        started = time.perf_counter()
                        lease = me.send(ops.request_lease("bench"))
                        while lease.state not in ("ready", "failed", "insufficient_resources"):
                            time.sleep(0.02)
                            lease = me.send(ops.get_lease(lease.id))
                        if lease.state != "ready":
                            print(f"  {name}: lease {lease.state}: {lease.reason}")
                            break
                        times.append(time.perf_counter() - started)
                        me.send(ops.release_lease(lease.id))
                glue.stop()
                thread.join(60)
                host_client.close()
                if len(times) > 1:
                    target = {"local": 1.0, "podman": 3.0}.get(name)
                    print(
                        f"  {name}: {statistics.median(times[1:]):.2f}s "
                        f"(first, building the layer: {times[0]:.2f}s; target < {target}s)"
                    )
            finally:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--db", default=None, help="a postgresql+asyncpg:// URL (default: SQLite)")
    parser.add_argument("--leases", type=int, default=5, help="leases per driver for time to ready")
    args = parser.parse_args()
    asyncio.run(admission(args.db, args.requests, args.clients, args.capacity))
    time_to_ready(args.leases)


if __name__ == "__main__":
    main()
