"""Fleet-wide data sources: how one is identified, and the copy the server hands agents.

A source marked ``fleet: true`` in a persona is fetched once by the server for every agent
whose persona names it. Sources are the same source, whichever personas name them and
under whatever names, when their URL and their parsing are the same: :func:`source_key`
is a digest of those two, the id in ``GET /api/v1/agent/sources/{key}``, computed alike by
the server (:mod:`mien.server.sources`) and the agent (:mod:`mien.agent.adapt.sources`).
When several personas poll one source at different ``every``, the server polls it at the
shortest, with the longest ``timeout`` (:func:`merge`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mien.protocol.base import WireModel
from mien.spec.models import DataSource, Persona

FETCHED_AT = "X-Mien-Fetched-At"
"""Header of the agent endpoint: when the server last confirmed its copy at the origin."""


def source_key(url: str, parse: str) -> str:
    """The id of the fleet-wide source fetching ``url`` parsed as ``parse``."""
    return hashlib.sha256(f"{parse}\n{url}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FleetSource:
    """A fleet-wide source as the server polls it."""

    key: str
    url: str
    parse: str
    every: float
    timeout: float


def fleet_source(source: DataSource) -> FleetSource:
    return FleetSource(
        source_key(source.url, source.parse),
        source.url,
        source.parse,
        source.every.seconds,
        source.timeout.seconds,
    )


def fleet_sources(persona: Persona) -> list[FleetSource]:
    """The persona's sources marked ``fleet: true``."""
    return [fleet_source(s) for s in persona.external_data_sources if s.fleet]


def merge(sources: Iterable[FleetSource]) -> dict[str, FleetSource]:
    """One entry per key: the shortest ``every`` and the longest ``timeout`` asked for."""
    out: dict[str, FleetSource] = {}
    for s in sources:
        seen = out.get(s.key)
        if seen is not None:
            s = FleetSource(
                s.key, s.url, s.parse, min(s.every, seen.every), max(s.timeout, seen.timeout)
            )
        out[s.key] = s
    return out


class SourceCopy(WireModel):
    """``GET /agent/sources/{key}``: the server's last good copy of a fleet-wide source.
    ``value`` is the parsed payload (as the persona's ``parse`` gives it); ``fetched_at`` is
    when the server last confirmed it at the origin, ``changed_at`` when it last changed;
    ``error`` is why the server's last poll of the origin failed (the copy is then older)."""

    key: str
    url: str
    parse: str
    value: Any = None
    fetched_at: float
    changed_at: float
    error: str | None = None
