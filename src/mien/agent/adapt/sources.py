"""The persona's external data sources: polled politely, the last good copy always kept.

Each source is fetched every ``every`` (±10 % jitter, so a fleet does not poll in step) with
a conditional request; a failed poll keeps the last good copy and backs off exponentially
(the poll and its schedule: :mod:`mien.protocol.fetch`, shared with the server).

A source marked ``fleet: true`` is fetched by the server once for the whole fleet: with a
server (``fleet`` given), the agent asks ``GET /api/v1/agent/sources/{key}`` instead of the
origin, with ``If-None-Match`` so an unchanged copy costs a 304; the copy's age is the
server's (when it last confirmed the payload at the origin). Without a server
(``mien agent run --local``) such a source is fetched directly, as any other
(:attr:`DataSources.direct_fleet` names them, and the loop says so).

Times are wall-clock seconds, so a copy restored by :meth:`DataSources.from_json` after a
restart keeps its true age. Used by the agent's adaptation loop (which persists the copies in
the state database and gives rules ``data.NAME`` and ``data.NAME.age``) and ``mien top``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import httpx

from mien.client import ClientError
from mien.protocol.fetch import (
    BACKOFF_CAP,
    JITTER,
    MAX_BYTES,
    DataCopy,
    FetchError,
    fetch,
    parse_payload,
    settle,
)
from mien.protocol.sources import SourceCopy, source_key
from mien.spec.models import DataSource, Persona

__all__ = [
    "BACKOFF_CAP",
    "JITTER",
    "MAX_BYTES",
    "DataCopy",
    "DataSources",
    "FetchError",
    "FleetClient",
    "parse_payload",
    "source_names",
]


class FleetClient(Protocol):
    """The server's side of fleet-wide sources (:meth:`mien.client.AgentClient.source`):
    the copy, or None when ``etag`` is still current (then ``fetched_at`` is the server's)."""

    def source(self, key: str, etag: str | None) -> tuple[SourceCopy | None, str | None, float]:
        """``(copy or None for 304, ETag, fetched_at)``."""
        ...


def source_names(persona: Persona) -> dict[str, DataSource]:
    """The persona's sources by name (an unnamed one is ``source<N>``, counted from 1)."""
    return {s.name or f"source{i}": s for i, s in enumerate(persona.external_data_sources, 1)}


class DataSources:
    """Polling the persona's sources and keeping their copies."""

    def __init__(
        self,
        persona: Persona,
        root: Path,
        client: httpx.Client | None = None,
        *,
        fleet: FleetClient | None = None,
        max_bytes: int = MAX_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        self.root = Path(root)
        self.sources = source_names(persona)
        self.fleet = fleet
        self.max_bytes = max_bytes
        self._client = client
        self._own_client = client is None
        self._rng = rng or random.Random()
        self._copies = {name: DataCopy(via=self.via(name)) for name in self.sources}

    def via(self, name: str) -> str:
        """Who is asked for ``name``: ``server`` (a fleet-wide source, with a server) or
        ``origin``."""
        return "server" if self.sources[name].fleet and self.fleet is not None else "origin"

    @property
    def direct_fleet(self) -> list[str]:
        """Fleet-wide sources fetched from their origin because there is no server."""
        return [n for n, s in self.sources.items() if s.fleet and self.fleet is None]

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        return self._client

    def close(self) -> None:
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None

    def due(self, now: float) -> list[str]:
        """The sources whose next poll is due at ``now``."""
        return [name for name, copy in self._copies.items() if copy.next_at <= now]

    def current(self) -> dict[str, DataCopy]:
        return dict(self._copies)

    def poll(self, name: str, now: float) -> DataCopy:
        """Fetch ``name`` once at ``now``; its copy afterwards (never raises for the feed's
        faults: they are in ``last_error``)."""
        source = self.sources[name]
        copy = self._copies[name]
        error, retry_after = None, None
        try:
            if copy.via == "server":
                self._ask_server(source, copy)
            else:
                fetch(
                    self.client,
                    source.url,
                    source.parse,
                    source.timeout.seconds,
                    copy,
                    now,
                    max_bytes=self.max_bytes,
                )
        except FetchError as exc:
            error, retry_after = str(exc), exc.retry_after
        settle(copy, source.every.seconds, now, error, self._rng)
        if retry_after is not None:  # the server has no copy yet: back when it says
            copy.next_at = min(copy.next_at, now + retry_after)
        return copy

    def _ask_server(self, source: DataSource, copy: DataCopy) -> None:
        key = source_key(source.url, source.parse)
        known = copy.etag if copy.fetched_at is not None else None
        try:
            answer, etag, fetched_at = self.fleet.source(key, known)  # type: ignore[union-attr]
        except ClientError as exc:
            raise FetchError(f"from the server: {exc}", exc.retry_after) from None
        if answer is not None:
            copy.value = answer.value
            copy.etag = etag
        copy.fetched_at = fetched_at

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "sources": {
                name: {"url": self.sources[name].url, "parse": self.sources[name].parse}
                | asdict(copy)
                for name, copy in self._copies.items()
            },
        }

    @classmethod
    def from_json(
        cls,
        persona: Persona,
        root: Path,
        data: Mapping[str, Any],
        client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> DataSources:
        """Sources with the copies :meth:`to_json` saved; a copy is kept only for a source
        with the same name, URL and parsing (otherwise it starts afresh). A copy that was
        asked of someone else (the origin, now the server, or back) keeps its value and age
        but not that party's validators, and is due at once."""
        out = cls(persona, root, client, **kwargs)
        saved = data.get("sources")
        if not isinstance(saved, Mapping):
            return out
        fields = DataCopy.__dataclass_fields__
        for name, source in out.sources.items():
            row = saved.get(name)
            if not isinstance(row, Mapping):
                continue
            if row.get("url") != source.url or row.get("parse") != source.parse:
                continue
            try:
                copy = DataCopy(**{k: v for k, v in row.items() if k in fields})
                copy.next_at = float(copy.next_at)
                copy.failures = int(copy.failures)
            except (TypeError, ValueError):
                continue
            via = out.via(name)
            if copy.via != via:
                copy.via, copy.etag, copy.last_modified = via, None, None
                copy.next_at, copy.failures = 0.0, 0
            out._copies[name] = copy
        return out
