"""The agent's telemetry queues in ``state.db``: metric samples bounded like events (oldest
dropped and counted), sent oldest first and deleted only once the server took them, the
drop counts carried by the next batch taken; sequence numbers never reused."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from mien.agent.adapt import upload
from mien.agent.adapt.ledger import Ledger
from mien.agent.adapt.upload import Uploader, record_samples
from mien.agent.state import State
from mien.client import RetryableError


class Server:
    """The edge of the world: takes bodies, or is away."""

    def __init__(self) -> None:
        self.away = False
        self.bodies: list[dict[str, Any]] = []

    def send(self, body: bytes) -> None:
        if self.away:
            raise RetryableError("POST /api/v1/agent/telemetry: connection refused")
        self.bodies.append(json.loads(gzip.decompress(body)))


def test_samples_wait_while_the_server_is_away_and_go_once_it_is_back(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload, "SAMPLE_LIMIT", 10)
    server = Server()
    sender = Uploader(machine, server.send)
    with State(machine) as state:
        book = Ledger(state)
        server.away = True
        for tick in range(7):  # 2 metrics a tick: 14 samples, 4 over the bound
            record_samples(state, {"cpu_percent": tick, "load_1m": float("nan")}, 100.0 + tick)
            record_samples(state, {"memory_percent": 50 + tick}, 100.0 + tick)
        book.event("rule.firing", persona="p", rule="busy")
        with pytest.raises(RetryableError):
            sender.send_once(state)
        assert sender.pending(state) == (10, 1)  # nothing lost by the failed send

        server.away = False
        batch = sender.send_once(state)
        assert batch is not None
        (sent,) = server.bodies
        assert sent["dropped_samples"] == 4
        assert [s["value"] for s in sent["samples"] if s["name"] == "cpu_percent"] == [
            2,
            3,
            4,
            5,
            6,
        ]
        assert [e["kind"] for e in sent["events"]] == ["adapt.rule.firing"]
        assert sender.pending(state) == (0, 0)
        assert sender.send_once(state) is None  # nothing waits, nothing sent
        assert state.get_meta(upload.SAMPLES_DROPPED_KEY) is None

        # The queue emptied; new rows still get new sequence numbers.
        record_samples(state, {"cpu_percent": 9.0}, 200.0)
        book.event("rule.resolved", persona="p", rule="busy")
        sender.send_once(state)
        last = server.bodies[-1]
        assert last["samples"][0]["seq"] > max(s["seq"] for s in sent["samples"])
        assert last["events"][0]["seq"] > sent["events"][0]["seq"]
        assert last["dropped_samples"] == 0


def test_events_queued_before_the_upgrade_keep_their_ids_and_ids_never_come_back(
    tmp_path: Path,
) -> None:
    """A state.db of the version before telemetry: its queued events survive the upgrade
    with their ids, and an emptied queue does not hand out those ids again (SQLite reuses
    the ids of a plain INTEGER PRIMARY KEY once the table is empty: the server would take
    the new events for ones it has and drop them)."""
    import sqlite3

    from mien.agent.state_schema import SCHEMA

    path = tmp_path / "var/lib/mien/state.db"
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path, isolation_level=None)
    for step in SCHEMA[:-1]:
        if callable(step):
            step(db)
        else:
            for statement in step.split(";"):
                if statement.strip():
                    db.execute(statement)
    db.execute("INSERT INTO adapt_outbox (id, ts, event, detail) VALUES (7, 1.0, 'adapt.x', '{}')")
    db.execute(f"PRAGMA user_version={len(SCHEMA) - 1}")
    db.close()
    with State(tmp_path) as state:
        book = Ledger(state)
        assert [item[0] for item in book.outbox()] == [7]
        book.acknowledge(7)
        book.event("rule.firing", persona="p", rule="r")
        assert [item[0] for item in book.outbox()] == [8]
