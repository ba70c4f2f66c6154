"""Fleet telemetry against a real server on SQLite and PostgreSQL: a gzip batch stored once
however often it is sent, the roll-ups it lands in, series and paged events read back,
retention by age, who may send and read what, and bad batches refused with nothing stored.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_harness import ServerProcess, wait_until
from sqlalchemy import func, select

from mien.client import AgentClient, Client, ClientError
from mien.server.store.db import Database
from mien.server.store.tables_telemetry import metric_rollups, metric_samples, telemetry_events


def enroll(admin: Client, server: ServerProcess, name: str) -> tuple[str, str]:
    secret = admin.create_token(f"enroll-{name}", kind="enroll", uses=1).token
    with AgentClient(server.url) as api:
        done = api.enroll(secret, instance_id=name)
    return done.instance_id, done.token


def body(doc: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


def post(server: ServerProcess, token: str, content: bytes, gz: bool = True) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if gz:
        headers["Content-Encoding"] = "gzip"
    return httpx.post(
        f"{server.url}/api/v1/agent/telemetry", content=content, headers=headers, timeout=30
    )


def get(server: ServerProcess, token: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/v1{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def counts(server: ServerProcess) -> dict[str, int]:
    url = server.db_url or f"sqlite+aiosqlite:///{server.data_dir / 'mien.db'}"

    async def read() -> dict[str, int]:
        db = Database(url)
        try:
            async with db.read() as s:
                out = {}
                for key, table in (
                    ("raw", metric_samples),
                    ("rollups", metric_rollups),
                    ("events", telemetry_events),
                ):
                    out[key] = int(
                        (await s.execute(select(func.count()).select_from(table))).scalar_one()
                    )
                return out
        finally:
            await db.dispose()

    return asyncio.run(read())


@pytest.fixture
def quick_prune(tmp_path: Path, db_url: str | None) -> Iterator[ServerProcess]:
    env = {"MIEN_SERVER_TELEMETRY_PRUNE_INTERVAL": "0.3"}
    proc = ServerProcess(tmp_path / "data", db_url, env=env).start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def test_a_batch_is_stored_once_rolled_up_and_read_back(
    server: ServerProcess, admin: Client
) -> None:
    instance, token = enroll(admin, server, "vm-1")
    now = time.time()
    # Three whole minutes ago: the last sample (start + 125) is then always in the past,
    # even when the test starts in the first seconds of a minute.
    start = (now // 60) * 60 - 180
    samples = [
        {"seq": i + 1, "ts": start + i * 10, "name": "cpu_percent", "value": float(i)}
        for i in range(12)  # 10 s apart: minute one holds 0..5, minute two 6..11
    ]
    samples.append({"seq": 13, "ts": start + 1, "name": "memory_percent", "value": 40.0})
    events = [
        {"seq": i + 1, "ts": start + i, "kind": "adapt.rule.firing", "detail": {"rule": f"r{i}"}}
        for i in range(5)
    ]
    doc = {"instance": instance, "samples": samples, "events": events}
    first = post(server, token, body(doc))
    assert first.status_code == 200, first.text
    assert first.json() == {"samples": 13, "events": 5, "duplicates": 0}
    # The answer was lost, the agent sends again (and one new sample with it).
    doc["samples"] = [*samples, {"seq": 14, "ts": start + 125, "name": "cpu_percent", "value": 100}]
    again = post(server, token, body(doc))
    assert again.json() == {"samples": 1, "events": 0, "duplicates": 18}
    assert counts(server)["raw"] == 14

    raw = get(
        server, token, f"/instances/{instance}/metrics", name="cpu_percent", since="10m", step="0"
    )
    assert raw.status_code == 200, raw.text
    answer = raw.json()
    assert answer["source"] == "raw" and answer["step"] == 0
    (series,) = answer["series"]
    assert [p[1] for p in series["points"]] == [*map(float, range(12)), 100.0]
    assert (series["min"], series["max"], series["last"]) == (0.0, 100.0, 100.0)

    minute = get(
        server, admin_token(server), f"/instances/{instance}/metrics", since="10m", step="60"
    )
    answer = minute.json()
    assert answer["source"] == "1m" and answer["step"] == 60
    by_name = {s["name"]: s for s in answer["series"]}
    assert by_name["cpu_percent"]["points"] == [
        [start, 2.5, 0.0, 5.0],
        [start + 60, 8.5, 6.0, 11.0],
        [start + 120, 100.0, 100.0, 100.0],
    ]
    assert by_name["memory_percent"]["last"] == 40.0

    # Events: paged, oldest first, every one once.
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"instance": instance, "limit": 2}
        if after:
            params["after"] = after
        page = get(server, admin_token(server), "/events", **params).json()
        seen.extend(page["items"])
        after = page["next"]
        if after is None:
            break
    assert [e["detail"]["rule"] for e in seen] == [f"r{i}" for i in range(5)]
    assert {e["kind"] for e in seen} == {"adapt.rule.firing"}
    with server.client() as api:
        assert len(api.telemetry_events(instance=instance, kind="adapt.rule")) == 5
        assert api.telemetry_events(instance=instance, kind="adapt.action") == []


def admin_token(server: ServerProcess) -> str:
    return server.admin_token


def test_an_agent_sends_and_reads_only_its_own_instance(
    server: ServerProcess, admin: Client
) -> None:
    mine, token = enroll(admin, server, "vm-a")
    other, _ = enroll(admin, server, "vm-b")
    sample = {"seq": 1, "ts": time.time(), "name": "cpu_percent", "value": 1.0}
    refused = post(server, token, body({"instance": other, "samples": [sample]}))
    assert refused.status_code == 403 and "vm-a" in refused.json()["detail"]
    assert counts(server)["raw"] == 0
    assert get(server, token, f"/instances/{other}/metrics").status_code == 403
    assert get(server, token, f"/instances/{mine}/metrics").status_code == 200
    assert get(server, token, "/events").status_code == 403  # the fleet's events: viewers
    viewer = admin.create_token("watcher", role="viewer").token
    assert get(server, viewer, f"/instances/{other}/metrics").status_code == 200
    assert get(server, viewer, "/events").status_code == 200
    assert post(server, viewer, body({"samples": [sample]})).status_code == 403
    assert get(server, viewer, "/instances/nobody/metrics").status_code == 404


def test_bad_batches_are_refused_and_nothing_is_stored(
    server: ServerProcess, admin: Client
) -> None:
    _, token = enroll(admin, server, "vm-bad")
    good = {"seq": 1, "ts": time.time(), "name": "cpu_percent", "value": 1.0}
    assert post(server, token, b"not gzip at all").status_code == 400
    bomb = gzip.compress(b'{"samples": [' + b" " * (80 * 1024 * 1024) + b"]}")
    assert post(server, token, bomb).status_code == 413
    half_bad = {"samples": [good, {**good, "seq": 2, "value": "high"}]}
    answer = post(server, token, body(half_bad))
    assert answer.status_code == 422
    assert "samples.1.value" in answer.json()["detail"]
    too_many = {"samples": [{**good, "seq": i + 1} for i in range(5001)]}
    assert post(server, token, body(too_many)).status_code == 422
    assert (
        post(server, token, json.dumps({"samples": [good]}).encode(), gz=False).status_code == 200
    )
    assert counts(server)["raw"] == 1
    assert get(server, token, "/instances/vm-bad/metrics", since="soon").status_code == 422


def test_old_telemetry_is_pruned_by_its_retention(
    quick_prune: ServerProcess, db_url: str | None
) -> None:
    server = quick_prune
    with server.client() as admin:
        instance, token = enroll(admin, server, "vm-old")
    now = time.time()
    day = 86400.0
    ages = {"fresh": 60.0, "two_days": 2 * day, "ten_days": 10 * day, "old": 100 * day}
    samples = [
        {"seq": i + 1, "ts": now - age, "name": name, "value": 1.0}
        for i, (name, age) in enumerate(ages.items())
    ]
    events = [
        {"seq": 1, "ts": now - 60, "kind": "adapt.x", "detail": {}},
        {"seq": 2, "ts": now - 40 * day, "kind": "adapt.x", "detail": {}},
    ]
    assert post(server, token, body({"samples": samples, "events": events})).status_code == 200
    # raw: only the fresh one; 1m: fresh and two days; 1h: all but the 100-day one.
    wait_until(
        lambda: counts(server) == {"raw": 1, "rollups": 2 + 3, "events": 1},
        what=f"pruning (now {counts(server)})",
    )

    def names(since: str, step: str | None = None) -> set[str]:
        params = {"since": since} if step is None else {"since": since, "step": step}
        answer = get(server, token, f"/instances/{instance}/metrics", **params).json()
        return {s["name"] for s in answer["series"]}

    assert names("1h") == {"fresh"}
    assert names("3d") == {"fresh", "two_days"}  # from the 1-minute roll-ups
    assert names("30d") == {"fresh", "two_days", "ten_days"}  # from the 1-hour roll-ups


def test_the_client_reads_metrics_and_refuses_a_foreign_token(
    server: ServerProcess, admin: Client
) -> None:
    instance, token = enroll(admin, server, "vm-c")
    sample = {"seq": 1, "ts": time.time() - 5, "name": "cpu_percent", "value": 3.0}
    assert post(server, token, body({"samples": [sample]})).status_code == 200
    answer = admin.instance_metrics(instance, name="cpu_percent", since=600)
    assert answer.series[0].last == 3.0
    # Back after an outage that overflowed the agent's queues: the losses are an event.
    lost = {"samples": [{**sample, "seq": 2}], "dropped_samples": 40, "dropped_events": 2}
    assert post(server, token, body(lost)).json()["samples"] == 1
    (note,) = admin.telemetry_events(instance=instance, kind="telemetry.dropped")
    assert note.detail == {"samples": 40, "events": 2} and note.seq < 0
    with AgentClient(server.url, token) as agent, pytest.raises(ClientError):
        agent.telemetry(body({"instance": "vm-other", "samples": [sample]}))
