"""Telemetry batches of the agent: oldest first, capped in compressed bytes, covering
exactly the queue ids they carry (what is deleted after the server's acknowledgement)."""

from __future__ import annotations

import gzip
import json
import random

from mien.agent.adapt.upload import build_batch


def samples(n: int) -> list[tuple[int, float, str, float]]:
    rng = random.Random(7)
    return [(i + 1, 1000.0 + i, f"metric_{i % 50}", rng.random()) for i in range(n)]


def test_a_small_queue_goes_whole() -> None:
    events = [(3, 5.0, "adapt.rule.firing", {"rule": "busy"})]
    batch = build_batch(samples(10), events, dropped_samples=4)
    doc = json.loads(gzip.decompress(batch.body))
    assert [s["seq"] for s in doc["samples"]] == list(range(1, 11))
    assert doc["events"] == [
        {"seq": 3, "ts": 5.0, "kind": "adapt.rule.firing", "detail": {"rule": "busy"}}
    ]
    assert (batch.last_sample, batch.last_event) == (10, 3)
    assert doc["dropped_samples"] == 4 and doc["dropped_events"] == 0


def test_a_batch_over_the_byte_cap_takes_the_oldest_part() -> None:
    queue = samples(5000)
    batch = build_batch(queue, [], max_bytes=20_000)
    assert len(batch.body) <= 20_000
    doc = json.loads(gzip.decompress(batch.body))
    seqs = [s["seq"] for s in doc["samples"]]
    assert seqs == list(range(1, len(seqs) + 1))  # a prefix: nothing skipped
    assert 0 < len(seqs) < 5000
    assert batch.last_sample == seqs[-1] and batch.samples == len(seqs)


def test_one_item_too_big_still_goes_alone() -> None:
    huge = [(1, 1.0, "adapt.fetch", {"blob": "x" * 50_000})]
    batch = build_batch([], huge, max_bytes=100)
    assert batch.events == 1 and batch.last_event == 1
