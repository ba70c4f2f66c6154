"""What is normal on this machine: an exponentially weighted mean and variance per metric.

``decay_rate`` is the fraction of what was learned that is forgotten per hour: after ``h``
hours a sample's weight is ``(1 - decay_rate) ** h`` of what it was, so the half-life of
the baseline is ``ln 2 / -ln(1 - decay_rate)`` hours (0.05 → 13.5 h; 0.5 → 1 h; 0 never
forgets, the baseline is the plain average of everything seen). The weighting is by time,
not by sample count, so irregular intervals (a slow sample, an agent restarted after an
hour) are weighted correctly. Until a metric has enough samples for its smoothing weight to
reach that rate, each new sample gets the weight ``1/n`` (a plain average), so the first
samples do not pin the baseline.

``anomaly.X`` is the z-score of a sample against the baseline learned *before* it (so a
spike does not dampen its own score), given only after :data:`MIN_SAMPLES` samples of the
metric, and bounded to ±:data:`Z_LIMIT`. :func:`lifetime` turns ``decay_rate`` into how long
a change made by a rule lives before it is re-evaluated. Used by the agent's adaptation
loop, which persists :meth:`Baselines.to_json` in the state database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_DECAY_RATE = 0.05
"""When the persona gives no ``decay_rate``: 5 % per hour, a half-life of about 13.5 hours
(a day's pattern is learned, last week's is mostly forgotten)."""
MIN_SAMPLES = 20
"""Samples of a metric before its z-score is given (5 minutes at the default 15 s)."""
Z_LIMIT = 1000.0
MIN_LIFETIME = 300.0
"""The shortest life of an automated change (5 minutes), whatever the decay rate."""
MAX_METRICS = 5000
"""Metrics remembered at most; the longest unseen are dropped first."""
FORGET_AFTER = 7 * 86400.0
"""A metric not seen for this long (a process gone, a port no longer used) is dropped."""
_HOUR = 3600.0


def half_life_hours(decay_rate: float) -> float:
    """``ln 2 / -ln(1 - decay_rate)``: inf for 0, 0 for 1."""
    if decay_rate <= 0.0:
        return math.inf
    if decay_rate >= 1.0:
        return 0.0
    return math.log(2.0) / -math.log1p(-decay_rate)


def lifetime(decay_rate: float | None) -> float:
    """Seconds an automated change lives before it is re-evaluated (and reverted if its rule
    no longer fires): the baseline's half-life, at least :data:`MIN_LIFETIME`; ``inf`` when
    ``decay_rate`` is 0 (the change lives until its rule resolves)."""
    rate = DEFAULT_DECAY_RATE if decay_rate is None else decay_rate
    return max(MIN_LIFETIME, half_life_hours(rate) * _HOUR)


@dataclass(slots=True)
class _Stat:
    n: int
    mean: float
    var: float
    seen: float


class Baselines:
    """Baselines of every metric seen, decaying at ``decay_rate`` per hour."""

    def __init__(self, decay_rate: float | None = None) -> None:
        self.decay_rate = DEFAULT_DECAY_RATE if decay_rate is None else float(decay_rate)
        if not 0.0 <= self.decay_rate <= 1.0:
            raise ValueError(f"decay_rate {decay_rate} is not in [0, 1]")
        self._stats: dict[str, _Stat] = {}

    def __len__(self) -> int:
        return len(self._stats)

    def _weight(self, dt: float, n: int) -> float:
        """The new sample's weight after ``dt`` seconds, for a metric with ``n`` samples."""
        if self.decay_rate >= 1.0:
            kept = 0.0
        else:
            kept = math.exp(math.log1p(-self.decay_rate) * max(dt, 0.0) / _HOUR)
        return max(1.0 - kept, 1.0 / (n + 1))

    def update(
        self, metrics: Mapping[str, float], now: float
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Learn from one sample; ``(baseline means, z-scores)`` of its metrics, both as they
        were before this sample (a metric seen for the first time has neither)."""
        baseline: dict[str, float] = {}
        anomaly: dict[str, float] = {}
        for name, value in metrics.items():
            x = float(value)
            if not math.isfinite(x):
                continue
            st = self._stats.get(name)
            if st is None:
                self._stats[name] = _Stat(1, x, 0.0, now)
                continue
            baseline[name] = st.mean
            diff = x - st.mean
            if st.n >= MIN_SAMPLES:
                sd = max(math.sqrt(st.var), 1e-9 * max(1.0, abs(st.mean)))
                anomaly[name] = max(-Z_LIMIT, min(Z_LIMIT, diff / sd))
            alpha = self._weight(now - st.seen, st.n)
            incr = alpha * diff
            st.mean += incr
            st.var = (1.0 - alpha) * (st.var + diff * incr)
            st.n += 1
            st.seen = max(st.seen, now)
        self._forget(now)
        return baseline, anomaly

    def _forget(self, now: float) -> None:
        stale = [k for k, st in self._stats.items() if now - st.seen > FORGET_AFTER]
        for k in stale:
            del self._stats[k]
        if len(self._stats) > MAX_METRICS:
            by_age = sorted(self._stats, key=lambda k: self._stats[k].seen)
            for k in by_age[: len(self._stats) - MAX_METRICS]:
                del self._stats[k]

    def mean(self, name: str) -> float | None:
        st = self._stats.get(name)
        return None if st is None else st.mean

    def stddev(self, name: str) -> float | None:
        st = self._stats.get(name)
        return None if st is None else math.sqrt(st.var)

    def count(self, name: str) -> int:
        st = self._stats.get(name)
        return 0 if st is None else st.n

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "decay_rate": self.decay_rate,
            "metrics": {k: [s.n, s.mean, s.var, s.seen] for k, s in self._stats.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], decay_rate: float | None = None) -> Baselines:
        """Baselines saved by :meth:`to_json`; ``decay_rate`` (the persona's, which may have
        changed since) wins over the saved one. Entries that do not parse are dropped."""
        rate = data.get("decay_rate") if decay_rate is None else decay_rate
        out = cls(rate if isinstance(rate, int | float) else None)
        metrics = data.get("metrics")
        if not isinstance(metrics, Mapping):
            return out
        for name, row in metrics.items():
            try:
                n, mean, var, seen = (float(v) for v in row)
            except (TypeError, ValueError):
                continue
            if all(map(math.isfinite, (n, mean, var, seen))) and n >= 1 and var >= 0:
                out._stats[str(name)] = _Stat(int(n), mean, var, seen)
        return out
