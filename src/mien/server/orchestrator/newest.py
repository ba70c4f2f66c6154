"""The leader's copy of the newest values and machine-rule phases its fleet rules read.

Used by :mod:`mien.server.orchestrator.loop`. The first evaluation (and one every
``resync`` seconds, and whenever the rules name a metric or machine rule the copy does
not hold) reads the rows whole; the others read only the rows changed since the last
read (:func:`mien.server.store.latest.horizon`), whichever replica stored them. Freshness
is applied when the inputs are taken (:meth:`Newest.inputs`), so values that age out drop
out without a read; instances deleted drop out because aggregates only count the live
members of the fleet cache, and their rows leave the copy at the next whole read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store import latest as latest_q

FIRING = ("firing", "resolving")


class Newest:
    """Metric → instance → value (and → ts), machine rule → instance → (ts, phase)."""

    def __init__(self, resync: float) -> None:
        self.resync = resync
        self.values: dict[str, dict[str, float]] = {}
        self.times: dict[str, dict[str, float]] = {}
        self.phases: dict[str, dict[str, tuple[float, str]]] = {}
        self._mark: int | None = None
        self._synced_at = 0.0
        self.read = 0
        """Rows the last :meth:`refresh` read (for the benchmark and the tests)."""

    def clear(self) -> None:
        """Forget everything (no longer the leader): the next refresh reads whole."""
        self.values, self.times, self.phases, self._mark = {}, {}, {}, None

    async def refresh(
        self, session: AsyncSession, metrics: Iterable[str], rules: Iterable[str], now: float
    ) -> None:
        metrics, rules = set(metrics), set(rules)
        whole = (
            self._mark is None
            or now - self._synced_at >= self.resync
            or not metrics <= self.values.keys()
            or not rules <= self.phases.keys()
        )
        mark = await latest_q.horizon(session)
        since = None if whole else self._mark
        value_rows = await latest_q.changed_values(session, sorted(metrics), since)
        phase_rows = await latest_q.changed_phases(session, sorted(rules), since)
        if whole:
            self.values = {m: {} for m in metrics}
            self.times = {m: {} for m in metrics}
            self.phases = {r: {} for r in rules}
            self._synced_at = now
        values, times, phases = self.values, self.times, self.phases
        for name, iid, ts, value in value_rows:
            values[name][iid] = value
            times[name][iid] = ts
        for rule, iid, ts, phase in phase_rows:
            phases[rule][iid] = (ts, phase)
        self._mark = mark
        self.read = len(value_rows) + len(phase_rows)

    def values_after(self, metrics: Iterable[str], after: float) -> dict[str, dict[str, float]]:
        """Metric → instance → its newest value not older than ``after`` (the copy's own
        map when every value is fresh enough: do not change it)."""
        out: dict[str, dict[str, float]] = {}
        for m in metrics:
            held, times = self.values.get(m, {}), self.times.get(m, {})
            if not times or min(times.values()) >= after:  # the usual case: all report
                out[m] = held
            else:
                out[m] = {iid: v for iid, v in held.items() if times[iid] >= after}
        return out

    def firing_after(self, rules: Iterable[str], after: float) -> dict[str, set[str]]:
        """Machine rule → the instances whose newest phase of it, not older than
        ``after``, is firing or resolving."""
        out: dict[str, set[str]] = {}
        for r in rules:
            held = self.phases.get(r, {})
            out[r] = {iid for iid, (ts, p) in held.items() if ts >= after and p in FIRING}
        return out
