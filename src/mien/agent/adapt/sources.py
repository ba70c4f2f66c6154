"""The persona's external data sources: polled politely, the last good copy always kept.

Each source is fetched every ``every`` (±10 % jitter, so a fleet does not poll in step) with
a conditional request (``If-None-Match`` / ``If-Modified-Since`` from the last answer); a
304 keeps the copy and makes it fresh again. A fetch that fails — the server down, an error
status, slower than the source's ``timeout`` in total, larger than :data:`MAX_BYTES`
(streamed and stopped there), not UTF-8, not JSON for ``parse: json`` — is recorded in
``last_error``, the last good copy stays, and the next try backs off exponentially: after
``k`` failures in a row it comes ``every × 2^k`` later, at most ``max(every, 1h)``.

Times are wall-clock seconds, so a copy restored by :meth:`DataSources.from_json` after a
restart keeps its true age. Used by the agent's adaptation loop (which persists the copies in
the state database and gives rules ``data.NAME`` and ``data.NAME.age``) and ``mien top``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from mien.spec.models import DataSource, Persona

MAX_BYTES = 1024 * 1024
"""The largest payload a source may send (1 MiB); a larger one is an error."""
BACKOFF_CAP = 3600.0
JITTER = 0.10


@dataclass
class DataCopy:
    """The last good copy of a source and the state of its polling."""

    value: Any = None
    fetched_at: float | None = None
    last_error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0
    next_at: float = 0.0
    checked_at: float | None = None

    def age(self, now: float) -> float | None:
        """Seconds since the copy was last confirmed good (None: no copy yet)."""
        return None if self.fetched_at is None else max(0.0, now - self.fetched_at)


class FetchError(Exception):
    """Why one poll did not give a new copy."""


def parse_payload(raw: bytes, parse: str) -> Any:
    """The value of a payload: ``lines`` (non-empty lines not starting with ``#``, stripped),
    ``json`` or ``text``; :class:`FetchError` if it is not UTF-8 or not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FetchError(f"the payload is not UTF-8 (byte {exc.start})") from None
    if parse == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FetchError(f"the payload is not JSON: {exc}") from None
    if parse == "lines":
        stripped = (line.strip() for line in text.splitlines())
        return [line for line in stripped if line and not line.startswith("#")]
    return text


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
        max_bytes: int = MAX_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        self.root = Path(root)
        self.sources = source_names(persona)
        self.max_bytes = max_bytes
        self._client = client
        self._own_client = client is None
        self._rng = rng or random.Random()
        self._copies = {name: DataCopy() for name in self.sources}

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

    def _later(self, seconds: float) -> float:
        return seconds * self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)

    def poll(self, name: str, now: float) -> DataCopy:
        """Fetch ``name`` once at ``now``; its copy afterwards (never raises for the feed's
        faults: they are in ``last_error``)."""
        source = self.sources[name]
        copy = self._copies[name]
        every = source.every.seconds
        copy.checked_at = now
        try:
            self._fetch(source, copy, now)
        except FetchError as exc:
            copy.failures += 1
            copy.last_error = str(exc)
            delay = min(every * 2.0**copy.failures, max(every, BACKOFF_CAP))
            copy.next_at = now + self._later(delay)
        else:
            copy.failures = 0
            copy.last_error = None
            copy.next_at = now + self._later(every)
        return copy

    def _fetch(self, source: DataSource, copy: DataCopy, now: float) -> None:
        headers = {"Accept-Encoding": "identity"}
        if copy.fetched_at is not None:
            if copy.etag:
                headers["If-None-Match"] = copy.etag
            if copy.last_modified:
                headers["If-Modified-Since"] = copy.last_modified
        limit = source.timeout.seconds
        start = time.monotonic()
        try:
            with self.client.stream("GET", source.url, headers=headers, timeout=limit) as resp:
                if resp.status_code == 304 and copy.fetched_at is not None:
                    copy.fetched_at = now
                    return
                if resp.status_code != 200:
                    where = resp.headers.get("location")
                    extra = f" (to {where})" if where else ""
                    raise FetchError(f"HTTP {resp.status_code}{extra}")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise FetchError(self._too_big(int(declared)))
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FetchError(self._too_big(size, more=True))
                    if time.monotonic() - start > limit:
                        raise FetchError(f"timed out after {limit:g}s")
                    chunks.append(chunk)
                etag = resp.headers.get("etag")
                modified = resp.headers.get("last-modified")
        except httpx.TimeoutException:
            raise FetchError(f"timed out after {limit:g}s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from None
        copy.value = parse_payload(b"".join(chunks), source.parse)
        copy.fetched_at = now
        copy.etag = etag
        copy.last_modified = modified

    def _too_big(self, size: int, more: bool = False) -> str:
        shown = f"more than {self.max_bytes}" if more else str(size)
        return f"the payload is {shown} bytes; the limit is {self.max_bytes}"

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
        with the same name, URL and parsing (otherwise it starts afresh)."""
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
            out._copies[name] = copy
        return out
