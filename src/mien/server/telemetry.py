"""The arithmetic of fleet telemetry, with no I/O: roll-up buckets, which store answers a
query (raw samples, 1-minute or 1-hour roll-ups) and at what step, and the points of a
series.

Roll-ups are made when samples arrive (:mod:`mien.server.store.telemetry` merges each
batch's :func:`rollup` into the stored buckets), so samples an agent buffered while the
server was away land in the right buckets however late they come; the periodic task only
prunes. Used by the store, the telemetry routes and the unit tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MINUTE, HOUR = 60, 3600
STEPS = (MINUTE, HOUR)
MAX_POINTS = 2000
"""Most points in one series: a longer range gets a coarser step."""
AUTO_POINTS = 300
"""Points a query without ``step`` aims at."""

FLEET_GAUGES = (
    "cpu_percent",
    "memory_percent",
    "swap_percent",
    "load_1m",
    "load_5m",
    "net_rx_bps",
    "net_tx_bps",
)
"""The metrics exported on ``/metrics`` as fleet gauges (per persona): a fixed list, so the
label sets stay bounded whatever names agents send."""

TAG_VALUES = 50
"""Most values of one tag key exported as gauge labels; the rest count as ``OTHER``."""
OTHER = "(other)"


def by_tag(
    rows: Iterable[tuple[str, str, float]],
    tags_of: Mapping[str, Mapping[str, str]],
    keys: Sequence[str],
    limit: int = TAG_VALUES,
) -> list[tuple[str, str, str, float, int]]:
    """``(key, value, metric, average, instances)`` of the newest values ``rows``
    (``(instance, metric, value)``), grouped by each key's tag value. The ``limit`` values
    with most instances keep their own label; the others are pooled as :data:`OTHER`, so a
    tag with a value per machine cannot make the label set grow with the fleet."""
    out: list[tuple[str, str, str, float, int]] = []
    rows = list(rows)
    for key in keys:
        members: dict[str, int] = {}
        for tags in tags_of.values():
            if key in tags:
                members[tags[key]] = members.get(tags[key], 0) + 1
        kept = set(sorted(members, key=lambda v: (-members[v], v))[:limit])
        sums: dict[tuple[str, str], list[float]] = {}
        for instance, metric, value in rows:
            tag = tags_of.get(instance, {}).get(key)
            if tag is None:
                continue
            group = sums.setdefault((tag if tag in kept else OTHER, metric), [0.0, 0])
            group[0] += value
            group[1] += 1
        for (tag, metric), (total, count) in sorted(sums.items()):
            out.append((key, tag, metric, total / count, int(count)))
    return out


@dataclass
class Agg:
    """count, sum, min, max and the newest value of the samples in one bucket."""

    count: int
    sum: float
    min: float
    max: float
    last: float
    last_ts: float

    @classmethod
    def of(cls, ts: float, value: float) -> Agg:
        return cls(1, value, value, value, value, ts)

    def add(self, other: Agg) -> None:
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.last_ts >= self.last_ts:
            self.last, self.last_ts = other.last, other.last_ts

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else math.nan


def bucket(ts: float, step: float) -> float:
    """The start of the ``step``-second bucket holding ``ts``."""
    return math.floor(ts / step) * step


def rollup(
    samples: Iterable[tuple[str, float, float]], step: float
) -> dict[tuple[str, float], Agg]:
    """``(name, ts, value)`` samples aggregated by (name, bucket start)."""
    out: dict[tuple[str, float], Agg] = {}
    for name, ts, value in samples:
        key = (name, bucket(ts, step))
        one = Agg.of(ts, value)
        found = out.get(key)
        if found is None:
            out[key] = one
        else:
            found.add(one)
    return out


@dataclass(frozen=True)
class Retention:
    raw: float
    minute: float
    hour: float


def choose(since: float, until: float, step: float | None, keep: Retention) -> tuple[str, float]:
    """The store (``raw``, ``1m``, ``1h``) and the step (seconds; 0 = every raw sample) to
    answer ``[since, until]``: the finest store that still holds ``since`` and is not
    finer than ``step``, with at most :data:`MAX_POINTS` points."""
    span = max(until - since, 1.0)
    if step is None:
        step = span / AUTO_POINTS
        step = 0.0 if step < 1 else step  # under 5 minutes: every sample
    step = max(step, 0.0)
    if step and span / step > MAX_POINTS:
        step = span / MAX_POINTS
    oldest_raw = until - keep.raw
    oldest_minute = until - keep.minute
    if step < MINUTE and since >= oldest_raw:
        return "raw", step
    if step < HOUR and since >= oldest_minute:
        return "1m", float(max(MINUTE, math.ceil(step / MINUTE) * MINUTE))
    return "1h", float(max(HOUR, math.ceil(step / HOUR) * HOUR))


def points(items: Iterable[tuple[float, Agg]], step: float) -> list[list[float]]:
    """``[t, avg, min, max]`` per step from ``(time, aggregate)`` items in time order;
    ``step`` 0 keeps each item as its own point."""
    if not step:
        return [[t, a.avg, a.min, a.max] for t, a in items]
    grouped: dict[float, Agg] = {}
    for t, agg in items:
        key = bucket(t, step)
        found = grouped.get(key)
        if found is None:
            grouped[key] = Agg(agg.count, agg.sum, agg.min, agg.max, agg.last, agg.last_ts)
        else:
            found.add(agg)
    return [[t, a.avg, a.min, a.max] for t, a in sorted(grouped.items())]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d``, ``1w`` in seconds; ValueError otherwise."""
    value = text.strip().lower()
    unit = 1
    if value and value[-1] in _UNITS:
        unit = _UNITS[value[-1]]
        value = value[:-1]
    seconds = float(value) * unit
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration (e.g. 90s, 15m, 1h, 2d)")
    return seconds
