"""Sending the adaptation loop's telemetry to the server: metric samples and events.

The loop writes each tick's metrics to ``metric_outbox`` (:func:`record_samples`) and every
event to ``adapt_outbox`` (:meth:`mien.agent.adapt.ledger.Ledger.event`), both in
``state.db`` and both bounded (the oldest are dropped and counted). :class:`Uploader`,
in its own thread of ``mien agent run``, sends what waits as one gzip-compressed JSON batch
at most every ``every`` seconds, capped in items and bytes, and deletes a batch's rows only
after the server acknowledged it: delivery is at least once, and the server keeps each
(instance, sequence) once. While the server is away the queues keep filling up to their
bounds; the dropped counts go with the next batch the server takes.
"""

from __future__ import annotations

import gzip
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mien.agent.adapt.ledger import DROPPED_KEY, Ledger
from mien.agent.state import State

SAMPLE_LIMIT = 50_000
"""Most metric samples kept while the server is away (an hour of 14 metrics each second)."""
SAMPLES_DROPPED_KEY = "metric_outbox_dropped"
MAX_BATCH_SAMPLES = 5000
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 512 * 1024
"""Compressed bytes of one batch; far under the server's default body limit (4 MiB)."""
DEFAULT_EVERY = 10.0


def record_samples(state: State, metrics: dict[str, float], now: float) -> None:
    """Queue one tick's metrics (finite values only), dropping the oldest beyond
    :data:`SAMPLE_LIMIT`."""
    rows = [
        (now, str(name), float(value))
        for name, value in metrics.items()
        if isinstance(value, int | float) and math.isfinite(value)
    ]
    if not rows:
        return
    with state.transaction():
        state.db.executemany("INSERT INTO metric_outbox (ts, name, value) VALUES (?, ?, ?)", rows)
        newest = state.db.execute("SELECT MAX(id) FROM metric_outbox").fetchone()[0]
        oldest = state.db.execute("SELECT MIN(id) FROM metric_outbox").fetchone()[0]
        # Ids are consecutive (AUTOINCREMENT, deletes only from the old end): no COUNT scan.
        extra = int(newest) - int(oldest) + 1 - SAMPLE_LIMIT
        if extra > 0:
            state.db.execute("DELETE FROM metric_outbox WHERE id < ?", (int(oldest) + extra,))
            dropped = int(state.get_meta(SAMPLES_DROPPED_KEY) or 0) + extra
            state.set_meta(SAMPLES_DROPPED_KEY, str(dropped))


@dataclass(frozen=True)
class Batch:
    """One request body and what it covers."""

    body: bytes  # gzip-compressed JSON
    samples: int
    events: int
    last_sample: int  # highest queue id included (0: none)
    last_event: int
    dropped_samples: int
    dropped_events: int


def build_batch(
    samples: list[tuple[int, float, str, float]],
    events: list[tuple[int, float, str, dict[str, Any]]],
    *,
    dropped_samples: int = 0,
    dropped_events: int = 0,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Batch:
    """The longest prefix of ``samples`` and of ``events`` (oldest first) whose compressed
    body fits ``max_bytes``: halved until it fits, down to one item."""
    n_samples, n_events = len(samples), len(events)
    while True:
        doc = {
            "samples": [
                {"seq": i, "ts": t, "name": n, "value": v} for i, t, n, v in samples[:n_samples]
            ],
            "events": [
                {"seq": i, "ts": t, "kind": k, "detail": d} for i, t, k, d in events[:n_events]
            ],
            "dropped_samples": dropped_samples,
            "dropped_events": dropped_events,
        }
        raw = json.dumps(doc, separators=(",", ":"), default=str).encode()
        body = gzip.compress(raw, compresslevel=6)
        if len(body) <= max_bytes or n_samples + n_events <= 1:
            break
        n_samples, n_events = n_samples // 2, n_events // 2
    return Batch(
        body=body,
        samples=n_samples,
        events=n_events,
        last_sample=samples[n_samples - 1][0] if n_samples else 0,
        last_event=events[n_events - 1][0] if n_events else 0,
        dropped_samples=dropped_samples,
        dropped_events=dropped_events,
    )


class Uploader:
    """Sends one machine's queued telemetry; :meth:`send_once` for one batch, :meth:`run`
    in a thread until ``stopping`` is set."""

    def __init__(
        self,
        root: Path,
        send: Callable[[bytes], Any],
        *,
        every: float = DEFAULT_EVERY,
        log: Callable[[str], None] = print,
    ) -> None:
        self.root = root
        self.send = send  # posts a compressed body; raises ClientError when not taken
        self.every = every
        self.log = log
        self.stopping = threading.Event()
        self.failing = False

    def pending(self, state: State) -> tuple[int, int]:
        samples = state.db.execute("SELECT COUNT(*) FROM metric_outbox").fetchone()[0]
        events = state.db.execute("SELECT COUNT(*) FROM adapt_outbox").fetchone()[0]
        return int(samples), int(events)

    def send_once(self, state: State) -> Batch | None:
        """Send the oldest waiting batch; delete it once acknowledged. ``None``: nothing
        waits. Raises what ``send`` raises (the rows stay queued)."""
        rows = state.db.execute(
            "SELECT id, ts, name, value FROM metric_outbox ORDER BY id LIMIT ?",
            (MAX_BATCH_SAMPLES,),
        ).fetchall()
        samples = [(int(i), float(t), str(n), float(v)) for i, t, n, v in rows]
        events = Ledger(state).outbox(MAX_BATCH_EVENTS)
        dropped_samples = int(state.get_meta(SAMPLES_DROPPED_KEY) or 0)
        dropped_events = int(state.get_meta(DROPPED_KEY) or 0)
        if not samples and not events and not dropped_samples and not dropped_events:
            return None
        batch = build_batch(
            samples, events, dropped_samples=dropped_samples, dropped_events=dropped_events
        )
        self.send(batch.body)
        with state.transaction():
            state.db.execute("DELETE FROM metric_outbox WHERE id <= ?", (batch.last_sample,))
            state.db.execute("DELETE FROM adapt_outbox WHERE id <= ?", (batch.last_event,))
            # Drops counted while the batch was in flight stay for the next one.
            for key, sent in (
                (SAMPLES_DROPPED_KEY, dropped_samples),
                (DROPPED_KEY, dropped_events),
            ):
                left = int(state.get_meta(key) or 0) - sent
                state.set_meta(key, str(left) if left > 0 else None)
        return batch

    def run(self) -> None:
        from mien.client import ClientError

        with State(self.root) as state:
            while not self.stopping.wait(self.every):
                try:
                    batch = self.send_once(state)
                except ClientError as exc:
                    if not self.failing:
                        samples, events = self.pending(state)
                        self.log(
                            f"telemetry: not sent ({exc}); keeping {samples} sample(s) and "
                            f"{events} event(s) for later"
                        )
                    self.failing = True
                    continue
                except Exception as exc:  # the thread outlives a bad batch, and says so
                    self.log(f"telemetry: {type(exc).__name__}: {exc}")
                    continue
                if self.failing and batch is not None:
                    self.log(
                        f"telemetry: the server takes batches again "
                        f"({batch.dropped_samples} sample(s) and {batch.dropped_events} "
                        "event(s) were dropped meanwhile)"
                    )
                self.failing = False
