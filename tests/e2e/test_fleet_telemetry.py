"""Telemetry end to end: a real ``mien server`` and a real ``mien agent run`` whose persona
grants ``metrics`` every second. ``mien instance metrics`` shows cpu_percent within
seconds; the server stopped, the agent keeps its samples on disk; the server restarted,
they arrive — none lost (the queue's sequence numbers have no gap), none doubled (the
roll-ups count each sample once) — and ``/metrics`` has the fleet gauge of the persona.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.support import make_machine, mien_command, run_mien

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "server"))
from server_harness import ServerProcess

from mien.client import Client
from mien.server.store.db import Database
from mien.server.store.tables_telemetry import metric_rollups, metric_samples

PERSONA = """\
name: watched
environment_variables: {MIEN_MODE: watched}
learning_domains: [metrics]
telemetry: {interval: 1s}
"""


def until(check: Callable[[], Any], timeout: float = 40.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def stored(server: ServerProcess, instance: str) -> tuple[list[tuple[int, float]], int]:
    """The instance's raw samples (seq, ts), and how many samples its 1-minute roll-ups
    count."""

    async def read() -> tuple[list[tuple[int, float]], int]:
        db = Database(f"sqlite+aiosqlite:///{server.data_dir / 'mien.db'}")
        try:
            async with db.read() as s:
                t, r = metric_samples, metric_rollups
                rows = await s.execute(
                    select(t.c.seq, t.c.ts).where(t.c.instance_id == instance).order_by(t.c.seq)
                )
                counted = await s.execute(
                    select(func.sum(r.c.count)).where(r.c.instance_id == instance, r.c.step == 60)
                )
                return [(int(a), float(b)) for a, b in rows], int(counted.scalar_one() or 0)
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_metrics_reach_the_server_and_survive_its_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server").start()
    agent: subprocess.Popen[bytes] | None = None
    try:
        env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
        admin = Client(server.url, server.admin_token)
        (tmp_path / "watched.yaml").write_text(PERSONA)
        admin.create_persona(tmp_path / "watched.yaml")
        root = make_machine(tmp_path / "vm")
        secret = admin.create_token("enroll-vm", kind="enroll", uses=1).token
        enrolled = run_mien(
            "agent", "enroll", "--server", server.url, "--token", secret, "--root", root,
            "--user", "alice", "--instance-id", "vm-1",
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr
        log = (tmp_path / "agent.log").open("ab")
        agent = subprocess.Popen(
            [*mien_command(), "agent", "run", "--root", str(root), "--wait", "5",
             "--send-every", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        admin.wait_activation(admin.activate("vm-1", "watched").id, timeout=30)

        def shown() -> str | None:
            done = run_mien(
                "instance", "metrics", "vm-1", "--name", "cpu_percent", "--since", "5m", env=env
            )
            return done.stdout if done.returncode == 0 and "cpu_percent" in done.stdout else None

        started = time.monotonic()
        text = until(shown, 30, "cpu_percent in `mien instance metrics`")
        assert time.monotonic() - started < 20
        line = next(x for x in text.splitlines() if "cpu_percent" in x)
        assert "min " in line and "max " in line and "last " in line
        assert any(ch in line for ch in "▁▂▃▄▅▆▇█")
        as_json = run_mien("instance", "metrics", "vm-1", "--output", "json", env=env)
        answer = json.loads(as_json.stdout)
        names = {s["name"] for s in answer["series"]}
        assert {"cpu_percent", "memory_percent"} <= names, names

        # The server goes away for a while; the agent keeps sampling into its queue.
        assert server.stop() == 0, server.log()
        down_at = time.time()
        time.sleep(6)
        up_at = time.time()
        server.start()
        admin.close()
        admin = Client(server.url, server.admin_token)

        def arrived() -> bool:
            rows, _ = stored(server, "vm-1")
            return any(ts > up_at for _, ts in rows)

        until(arrived, 40, "samples after the restart")
        rows, counted = stored(server, "vm-1")
        during = [ts for _, ts in rows if down_at + 1 < ts < up_at - 1]
        assert len(during) >= 3, (down_at, up_at, rows[-15:])  # buffered, then delivered
        seqs = [seq for seq, _ in rows]
        assert seqs == list(range(1, len(seqs) + 1))  # every sample queued arrived
        assert counted == len(rows)  # each sample counted once in the roll-ups
        events = run_mien("instance", "events", "vm-1", "--output", "json", env=env)
        assert "adapt.persona.loaded" in {e["kind"] for e in json.loads(events.stdout)}

        def gauge() -> str | None:
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            for line in text.splitlines():
                if line.startswith('mien_fleet_metric{metric="cpu_percent",persona="watched"}'):
                    return line
            return None

        until(gauge, 20, "the fleet gauge of persona watched")
        admin.close()
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        server.stop()
