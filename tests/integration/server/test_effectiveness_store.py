"""The reads behind effectiveness on a real (migrated) SQLite database: the persona's
events only, bounded with the newest kept, and the samples of a window — raw, or the
1-minute roll-ups where the raw samples are gone or too many."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import delete

from mien.protocol.telemetry import TelemetryBatch
from mien.server.store import effectiveness as q
from mien.server.store import migrate
from mien.server.store import telemetry as telemetry_q
from mien.server.store.db import Database
from mien.server.store.tables_telemetry import metric_samples

T0 = 1_800_000_000.0  # on a minute boundary


def run(path: Path, batch: dict[str, Any], check: Any) -> Any:
    async def go() -> Any:
        db = Database(f"sqlite+aiosqlite:///{path / 'mien.db'}")
        try:
            await migrate.upgrade(db)
            async with db.write() as s:
                await telemetry_q.ingest(s, "vm-1", TelemetryBatch.model_validate(batch), T0)
            return await check(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


def event(seq: int, persona: str, kind: str = "adapt.rule.firing") -> dict[str, Any]:
    return {"seq": seq, "ts": T0 + seq, "kind": kind, "detail": {"persona": persona, "n": seq}}


def test_only_the_personas_events_and_the_newest_when_bounded(tmp_path: Path) -> None:
    events = [event(1, "web"), event(2, "web_x"), event(3, "webx"), event(4, "web")]
    events += [event(5, "web", "adapt.source.fetched"), event(6, "web", "adapt.action.applied")]
    events.append(event(7, "we%"))

    async def check(db: Database) -> Any:
        async with db.read() as s:
            every = await q.persona_events(s, "web", T0, T0 + 100)
            bounded = await q.persona_events(s, "web", T0, T0 + 100, limit=2)
            wild = await q.persona_events(s, "we%", T0, T0 + 100)
            narrow = await q.persona_events(s, "web", T0 + 2, T0 + 5)
        return every, bounded, wild, narrow

    every, bounded, wild, narrow = run(tmp_path, {"events": events}, check)
    assert [e.detail["n"] for e in every[0]] == [1, 4, 6] and every[1] is False
    assert [e.detail["n"] for e in bounded[0]] == [4, 6] and bounded[1] is True
    assert [e.detail["n"] for e in wild[0]] == [7]
    assert [e.detail["n"] for e in narrow[0]] == [4]


@pytest.mark.parametrize("side", ["before", "after"])
def test_window_values_raw_then_rollups(
    tmp_path: Path, side: Literal["before", "after"], monkeypatch: pytest.MonkeyPatch
) -> None:
    # cpu 10 s apart over three minutes: minute 0 holds 0..5, minute 1 6..11, minute 2 12..17.
    samples = [
        {"seq": i + 1, "ts": T0 + i * 10, "name": "cpu_percent", "value": float(i)}
        for i in range(18)
    ]
    samples.append({"seq": 100, "ts": T0 + 60, "name": "memory_percent", "value": 99.0})
    at = T0 + 60

    async def check(db: Database) -> Any:
        window = (T0, at) if side == "before" else (at, at + 60)
        async with db.read() as s:
            raw = await q.window_values(s, "vm-1", "cpu_percent", *window, side=side)
            monkeypatch.setattr(q, "MAX_WINDOW_SAMPLES", 3)
            many = await q.window_values(s, "vm-1", "cpu_percent", *window, side=side)
            monkeypatch.setattr(q, "MAX_WINDOW_SAMPLES", 5000)
        async with db.write() as s:
            await s.execute(delete(metric_samples))
        async with db.read() as s:
            pruned = await q.window_values(s, "vm-1", "cpu_percent", *window, side=side)
        return raw, many, pruned

    raw, many, pruned = run(tmp_path, {"samples": samples}, check)
    if side == "before":  # [T0, T0 + 60): the sample at the action's time is after it
        assert raw == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        assert many == pruned == [2.5]  # the average of minute 0
    else:  # (T0 + 60, T0 + 120]
        assert raw == [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
        assert many == pruned == [8.5]  # minute 1, whole inside the window
