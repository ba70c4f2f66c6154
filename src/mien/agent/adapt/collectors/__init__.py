"""One collector per learning domain, and what they share.

A collector is built only for a domain the persona grants (:func:`build`), so a domain that
is not granted is never read: its files are not opened, its system calls not made. Each
collector keeps what it needs from the previous sample to turn counters into rates; on the
first sample a rate is left out (a missing metric is "unknown" to the rules). Used by
:class:`mien.agent.adapt.telemetry.Telemetry`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mien.agent.adapt.collectors.base import Collector, Reading, Sample
from mien.spec.models import Persona

__all__ = ["Collector", "Reading", "Sample", "build"]


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
