"""Sampling the machine for the adaptation loop, within the persona's ``learning_domains``.

:class:`Telemetry` builds one collector per granted domain
(:mod:`mien.agent.adapt.collectors`) and, at each :meth:`Telemetry.sample`, asks each for its
part of a :class:`Reading`. A domain that is not granted has no collector, so nothing of it is
read. A collector that fails puts its message in ``Reading.errors`` under its domain and the
sample goes on: telemetry never raises. Metric names are those of
:data:`mien.spec.metrics.DOMAINS`. Used by the agent's adaptation loop and
``bench/telemetry_bench.py``.
"""

from __future__ import annotations

from pathlib import Path

from mien.agent.adapt.collectors import Collector, Reading, Sample, build
from mien.spec.models import Persona

__all__ = ["Reading", "Telemetry"]


class Telemetry:
    """The collectors of one persona on one machine root."""

    def __init__(self, persona: Persona, root: Path) -> None:
        self.persona = persona
        self.root = Path(root)
        self.interval = persona.telemetry.interval.seconds
        self.collectors: list[Collector] = build(persona, self.root)
        self._last: float | None = None

    @property
    def domains(self) -> list[str]:
        return [c.domain for c in self.collectors]

    def sample(self, now: float) -> Reading:
        """One reading at ``now`` (seconds, the loop's clock). Rates are over the time since
        the previous sample; the first sample has none."""
        elapsed = None if self._last is None or now <= self._last else now - self._last
        self._last = now
        reading = Reading(at=now)
        for collector in self.collectors:
            sample = Sample(reading, elapsed)
            try:
                collector.collect(sample)
            except Exception as exc:  # one domain failing must not stop the others
                sample.problems.append(f"{type(exc).__name__}: {exc}")
            if sample.problems:
                reading.errors[collector.domain] = "; ".join(sample.problems)
        return reading

    def close(self) -> None:
        for collector in self.collectors:
            collector.close()
