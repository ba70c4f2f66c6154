"""What every collector shares: the reading it writes into, the sample with its rates, and
the collector's base class. Used by the collectors of :mod:`mien.agent.adapt.collectors`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Reading:
    """One sample: ``metrics`` by name (see :data:`mien.spec.metrics.DOMAINS`),
    ``events`` (counts since the previous sample: ``log_errors:<name>``, ``api_requests``,
    ``api_errors``, ``auth_failures``, ``auth_successes``, ``firewall_blocks``,
    ``file_changes:<name>``, ``probe_failed:<name>``) and ``errors`` (domain → what went
    wrong; the rest of the sample is still good), taken ``at`` (the loop's clock)."""

    metrics: dict[str, float] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    at: float = 0.0


@dataclass
class Sample:
    """What a collector writes into: the reading, and the seconds since the previous
    sample (None on the first)."""

    reading: Reading
    elapsed: float | None
    problems: list[str] = field(default_factory=list)

    def rate(self, count: float, per: float = 60.0) -> float | None:
        return None if not self.elapsed else count * per / self.elapsed

    def put_rate(self, name: str, count: float, per: float = 60.0) -> None:
        value = self.rate(count, per)
        if value is not None:
            self.reading.metrics[name] = value


class Collector:
    """A domain's collector; :meth:`collect` adds to the sample and may raise (the error
    is recorded against the domain) or note partial problems in ``sample.problems``."""

    domain: str = ""

    def collect(self, sample: Sample) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release descriptors (the file_access watcher)."""
