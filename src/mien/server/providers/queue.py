"""The durable queue of provider calls: :meth:`ProviderQueue.submit` stores a request once
per idempotency key (after the trust gate), and the replica's loop attempts what is due.

Each attempt is one driver call; its outcome moves the call to ``succeeded``, ``failing``
(with the error and the time of the next attempt, by exponential backoff with jitter) or
``failed`` (a final refusal, or the attempts exhausted). A call refused by the gate is
stored as ``refused`` with why. Nothing is dropped: a provider that is down stays
``failing`` and is retried; a server restarted resumes every call still open; a replica
that died mid-attempt loses its claim when ``claimed_until`` passes and another takes over.
A call that succeeded is never sent again, and every retry carries the same key, so a
receiver that answered 2xx acts once. Every submission and outcome is audited.

Built by :class:`mien.server.state.ServerState`; ``submit`` is what the telemetry intake,
the persona-size reconciler and the orchestrator call.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mien.server.providers import gate
from mien.server.providers.backoff import retry_delay
from mien.server.providers.base import Provider, ProviderOutcome, ProviderRequest
from mien.server.providers.drivers import build
from mien.server.store import providers as q
from mien.server.store.db import Database
from mien.server.tx import Clock, Tx

log = logging.getLogger("mien.server.providers")
ACTOR = "mien-server"
BATCH = 20


@dataclass(frozen=True)
class Subject:
    """What the gate needs to know of an instance (from the fleet cache)."""

    tags: dict[str, str]
    persona: str | None
    trust_levels: dict[str, str] = field(default_factory=dict)
    """The persona's own levels (before the fleet policy's caps)."""
    cap: tuple[str, str] | None = None
    """The fleet policy's cap on ``resource_scaling``: (allowed level, policy entry)."""


@dataclass(frozen=True)
class Timing:
    poll: float = 1.0
    retry_base: float = 5.0
    retry_cap: float = 600.0
    max_attempts: int = 12
    claim: float = 120.0
    """Seconds one attempt holds its call; longer than any driver's timeout."""


class ProviderQueue:
    def __init__(
        self,
        db: Database,
        transaction: Callable[[], AbstractAsyncContextManager[Tx]],
        clock: Clock,
        subject: Callable[[str], Subject | None],
        timing: Timing,
    ) -> None:
        self.db = db
        self.transaction = transaction
        self.clock = clock
        self.subject = subject
        self.timing = timing
        self._drivers: dict[str, tuple[int, Provider]] = {}
        self._wake = asyncio.Event()

    # --- submitting --------------------------------------------------------------------

    async def submit(self, request: ProviderRequest) -> q.CallRow:
        """Store ``request`` (once per idempotency key) as pending, or as refused with why;
        the stored call (the earlier one when the key is known)."""
        async with self.transaction() as tx:
            row = await self.submit_in(tx, request)
        self._wake.set()
        return row

    async def submit_many(self, requests: list[ProviderRequest]) -> None:
        """:meth:`submit` for many, a transaction per hundred (a transaction each made a
        thousand resizes take seconds of disk flushes)."""
        for start in range(0, len(requests), 100):
            async with self.transaction() as tx:
                for request in requests[start : start + 100]:
                    await self.submit_in(tx, request)
        if requests:
            self._wake.set()

    async def submit_in(self, tx: Tx, request: ProviderRequest) -> q.CallRow:
        """:meth:`submit` inside the caller's transaction (the telemetry intake stores an
        agent's batch and the requests it carries together)."""
        known = await q.call_by_key(tx.session, request.idempotency_key)
        if known is not None:
            return known
        declared = await q.get(tx.session, request.provider)
        subject = self.subject(request.instance_id)
        if declared is None:
            why: str | None = f"no provider named {request.provider!r} is declared"
        elif subject is None:
            why = f"instance {request.instance_id!r} is not enrolled"
        else:
            why = gate.refusal(
                kind=request.kind,
                params=request.params,
                name=declared.name,
                selector=declared.selector,
                tags=subject.tags,
                persona=subject.persona,
                trust_levels=subject.trust_levels,
                needed=request.needed,
                cap=subject.cap,
            )
        row, new = await q.add_call(
            tx.session,
            {
                "id": str(uuid.uuid4()),
                "idempotency_key": request.idempotency_key,
                "provider": request.provider,
                "instance_id": request.instance_id,
                "kind": request.kind,
                "params": dict(request.params),
                "reason": request.reason,
                "status": "refused" if why else "pending",
                "attempts": 0,
                "last_error": why,
                "next_attempt_at": None if why else tx.now,
                "created_at": tx.now,
                "updated_at": tx.now,
                "finished_at": tx.now if why else None,
            },
        )
        if new:
            tx.audit(
                ACTOR,
                "provider.refused" if why else "provider.requested",
                instance_id=request.instance_id,
                persona=subject.persona if subject else None,
                call=row.id,
                provider=request.provider,
                kind=request.kind,
                params=dict(request.params),
                reason=request.reason,
                key=request.idempotency_key,
                **({"why": why} if why else {}),
            )
        return row

    # --- attempting --------------------------------------------------------------------

    def driver(self, name: str) -> Provider | None:
        """The driver this replica built for ``name`` (its libvirt connection lives here)."""
        found = self._drivers.get(name)
        return None if found is None else found[1]

    def _driver_for(self, row: q.ProviderRow) -> Provider:
        found = self._drivers.get(row.name)
        if found is not None and found[0] == row.version:
            return found[1]
        if found is not None:
            _close(found[1])
        driver = build(row.name, row.driver, row.config, row.secret)
        self._drivers[row.name] = (row.version, driver)
        return driver

    async def run_due(self) -> int:
        """Attempt every call that is due (each claimed first); how many were attempted."""
        async with self.db.read() as s:
            rows = await q.due(s, self.clock(), BATCH)
        done = await asyncio.gather(*(self._attempt(row) for row in rows))
        return sum(done)

    async def _attempt(self, row: q.CallRow) -> bool:
        now = self.clock()
        until = now + timedelta(seconds=self.timing.claim)
        async with self.db.write() as s:
            if not await q.claim(s, row.id, now, until):
                return False  # another replica has it
            declared = await q.get(s, row.provider)
        outcome = await self._call(row, declared)
        await self._settle(row, until, outcome)
        return True

    async def _call(self, row: q.CallRow, declared: q.ProviderRow | None) -> ProviderOutcome:
        if declared is None:
            return ProviderOutcome(False, f"provider {row.provider!r} is no longer declared")
        request = ProviderRequest(
            provider=row.provider,
            instance_id=row.instance_id,
            kind=row.kind,  # type: ignore[arg-type]
            params=row.params,
            reason=row.reason,
            idempotency_key=row.idempotency_key,
        )
        try:
            driver = self._driver_for(declared)
            return await asyncio.wait_for(driver.call(request), self.timing.claim * 0.8)
        except ValueError as exc:
            return ProviderOutcome(False, str(exc))
        except TimeoutError:
            return ProviderOutcome(False, "the provider did not answer in time", retry=True)
        except Exception as exc:  # a driver's bug is a failed attempt, not a dead loop
            return ProviderOutcome(False, f"{type(exc).__name__}: {exc}", retry=True)

    async def _settle(self, row: q.CallRow, claimed: datetime, outcome: ProviderOutcome) -> None:
        attempts = row.attempts + 1
        async with self.transaction() as tx:
            values: dict[str, Any] = {"attempts": attempts, "updated_at": tx.now}
            if outcome.ok:
                action = "provider.succeeded"
                values |= {
                    "status": "succeeded",
                    "result": dict(outcome.result),
                    "last_error": None,
                    "next_attempt_at": None,
                    "finished_at": tx.now,
                }
            elif outcome.retry and attempts < self.timing.max_attempts:
                action = "provider.failing"
                delay = retry_delay(attempts, self.timing.retry_base, self.timing.retry_cap)
                values |= {
                    "status": "failing",
                    "last_error": outcome.detail,
                    "next_attempt_at": tx.now + timedelta(seconds=delay),
                }
            else:
                action = "provider.failed"
                values |= {
                    "status": "failed",
                    "last_error": outcome.detail,
                    "next_attempt_at": None,
                    "finished_at": tx.now,
                }
            if await q.settle(tx.session, row.id, claimed, **values):
                tx.audit(
                    ACTOR,
                    action,
                    instance_id=row.instance_id,
                    call=row.id,
                    provider=row.provider,
                    attempt=attempts,
                    detail=outcome.detail,
                    next_attempt=str(values.get("next_attempt_at") or "") or None,
                )

    # --- the replica's loop ----------------------------------------------------------

    async def run(self) -> None:
        """Attempt due calls until cancelled, woken early by :meth:`submit`."""
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup must not end the loop
                log.warning("provider calls: %s", exc)
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.timing.poll)

    def close(self) -> None:
        for _, driver in self._drivers.values():
            _close(driver)
        self._drivers.clear()


def _close(driver: Provider) -> None:
    close = getattr(driver, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:
            log.warning("closing provider %s: %s", driver.name, exc)
