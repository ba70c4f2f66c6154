"""Fleet-wide data sources: polled once by the server for every agent that needs them.

A persona's source marked ``fleet: true`` is not polled by each machine: the server polls
it (one row per URL and parsing, :func:`mien.protocol.sources.source_key`, whatever
personas name it) with the very poll the agent uses (:mod:`mien.protocol.fetch`:
conditional requests, size and time limits, exponential backoff with jitter), keeps the last
good copy in the database (it survives restarts and is shared by the replicas), and hands
it to the agents at ``GET /api/v1/agent/sources/{key}``.

Which sources are wanted is read from the replica's fleet cache: the fleet-wide sources of
the effective persona each instance is desired to run. Every replica records what it wants
(``wanted_at``, refreshed every :data:`WANT_EVERY` seconds); a source no replica has wanted
for :data:`FORGET_AFTER` seconds is deleted. Several replicas poll a source once between
them: a replica polls only after claiming the poll in the database
(:func:`mien.server.store.fleet_sources.claim`).

Run by :class:`~mien.server.state.ServerState` every ``sources_interval``; read by
:mod:`mien.server.api.sources`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from typing import Any

import httpx
import orjson

from mien.protocol.fetch import DataCopy, FetchError, fetch, settle
from mien.protocol.sources import FleetSource, fleet_sources, merge
from mien.server.fleet import Fleet
from mien.server.store import fleet_sources as q
from mien.server.store.db import Database
from mien.server.tx import Clock

log = logging.getLogger("mien.server.sources")

WANT_EVERY = 60.0
FORGET_AFTER = 3600.0
CLAIM_MARGIN = 30.0
"""A claim outlasts the poll's own timeout by this much; then another replica may poll."""


def digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class FleetSources:
    """One replica's part in polling the fleet-wide sources."""

    def __init__(self, db: Database, fleet: Fleet, clock: Clock, replica: str) -> None:
        self.db = db
        self.fleet = fleet
        self.clock = clock
        self.replica = replica
        self.wanted: dict[str, FleetSource] = {}
        self._written: dict[str, FleetSource] = {}
        self._written_at = 0.0
        self._rng = random.Random()
        self._client: httpx.Client | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- who needs what --------------------------------------------------------------

    def of_instance(self, instance_id: str) -> dict[str, FleetSource]:
        """The fleet-wide sources of the persona ``instance_id`` is desired to run."""
        desired = self.fleet.desired(instance_id)
        resolved = desired.effective.resolved if desired is not None else None
        if resolved is None:
            return {}
        return merge(fleet_sources(resolved.persona))

    def collect(self) -> dict[str, FleetSource]:
        """Every fleet-wide source some instance's desired persona names."""
        found: list[FleetSource] = []
        seen: set[int] = set()
        fleet = self.fleet
        for iid in list(fleet.members):
            desired = fleet.desired(iid)
            if desired is None or id(desired.effective) in seen:
                continue
            seen.add(id(desired.effective))
            resolved = desired.effective.resolved
            if resolved is not None:
                found.extend(fleet_sources(resolved.persona))
        return merge(found)

    # --- the periodic job ------------------------------------------------------------

    async def sweep(self) -> None:
        """Record what this replica's fleet wants, then poll what is due and claimed."""
        now = self.clock().timestamp()
        self.wanted = self.collect()
        if self.wanted != self._written or now - self._written_at >= WANT_EVERY:
            async with self.db.write() as session:
                await q.want(session, self.wanted.values(), now)
                gone = await q.forget(session, now - FORGET_AFTER)
            if gone:
                log.info("forgot %d fleet-wide source(s) no persona names any more", gone)
            self._written, self._written_at = dict(self.wanted), now
        if not self.wanted:
            return
        async with self.db.read() as session:
            keys = [k for k in await q.due(session, now) if k in self.wanted]
        claimed = []
        for key in keys:
            until = now + self.wanted[key].timeout + CLAIM_MARGIN
            async with self.db.write() as session:
                if await q.claim(session, key, now, until, self.replica):
                    claimed.append(key)
        if claimed and self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        await asyncio.gather(*(self.poll(key, now) for key in claimed))

    async def poll(self, key: str, now: float) -> None:
        """Poll the claimed source ``key`` at its origin and store the outcome."""
        async with self.db.read() as session:
            row = await q.get(session, key)
        if row is None:
            return
        copy = DataCopy(
            value=row.value,
            fetched_at=row.fetched_at,
            etag=row.etag,
            last_modified=row.last_modified,
            failures=row.failures,
        )
        error = None
        try:
            await asyncio.to_thread(self._fetch, row, copy, now)
        except FetchError as exc:
            error = str(exc)
        settle(copy, row.every, now, error, self._rng)
        fields: dict[str, Any] = {
            "next_at": copy.next_at,
            "checked_at": copy.checked_at,
            "failures": copy.failures,
            "last_error": copy.last_error,
            "fetched_at": copy.fetched_at,
        }
        if error is None:
            fields.update(etag=copy.etag, last_modified=copy.last_modified)
            new = digest(copy.value)
            if new != row.digest:
                fields.update(value=copy.value, digest=new, changed_at=now)
        else:
            log.warning(
                "fleet-wide source %s: %s (try %d, next in %.0fs)",
                row.url,
                error,
                copy.failures,
                copy.next_at - now,
            )
        async with self.db.write() as session:
            await q.save(session, key, self.replica, **fields)

    def _fetch(self, row: q.SourceRow, copy: DataCopy, now: float) -> None:
        assert self._client is not None
        fetch(self._client, row.url, row.parse, row.timeout, copy, now)
