"""One collector per learning domain, and what they share.

A collector is built only for a domain the persona grants (:func:`build`), so a domain that
is not granted is never read: its files are not opened, its system calls not made. Each
collector keeps what it needs from the previous sample to turn counters into rates; on the
first sample a rate is left out (a missing metric is "unknown" to the rules). Used by
:class:`mien.agent.adapt.telemetry.Telemetry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mien.spec.models import Persona


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


def build(persona: Persona, root: Path) -> list[Collector]:
    """The collectors for the persona's granted ``learning_domains``, in the table's order."""
    from mien.agent.adapt.collectors import logs, system

    makers: dict[str, Callable[[Persona, Path], Collector]] = {
        "metrics": system.MetricsCollector,
        "system_logs": logs.SystemLogsCollector,
        "network_traffic": system.NetworkTrafficCollector,
        "api_calls": logs.ApiCallsCollector,
        "processes": system.ProcessesCollector,
        "file_access": logs.FileAccessCollector,
        "auth_events": logs.AuthEventsCollector,
    }
    granted = set(persona.learning_domains)
    return [make(persona, root) for domain, make in makers.items() if domain in granted]
