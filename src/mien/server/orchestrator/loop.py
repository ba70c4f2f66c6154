"""The orchestrator's background task: hold the lease, evaluate the fleet rules, act.

Every replica runs one :class:`Orchestrator` (started by :class:`mien.server.state.
ServerState`); only the one holding the database lease (:mod:`mien.server.store.
orchestrator_lease`) evaluates. It claims or renews the lease every third of its TTL and,
every ``orchestrator_interval``, reads the rules, their persisted states and the
aggregates, steps each rule (:mod:`mien.rules.fleet`) and writes, in one transaction that
first re-checks the lease: the new states, the actions (:mod:`mien.server.orchestrator.
actions`), their journal and their audit records. A replica that dies stops renewing; the
next to find the lease expired takes over and carries on from the stored states, so an
action is neither lost nor done twice. A replica that stops cleanly releases the lease.

Provider requests are journalled ``pending`` in that transaction and handed afterwards to
:attr:`Orchestrator.submit` (the provider queue's coroutine, set by whoever builds the
queue); a leader that dies before handing them over leaves them pending for the next one,
with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from mien.rules.fleet import FleetRule
from mien.rules.state import RuleState
from mien.server.fleet import Fleet
from mien.server.orchestrator import actions
from mien.server.orchestrator.aggregates import Loaded, Selections, load, scope, shown
from mien.server.orchestrator.documents import load_stored
from mien.server.orchestrator.newest import Newest
from mien.server.providers.base import ProviderRequest
from mien.server.store import fleet_rules as q
from mien.server.store import orchestrator_lease as lease_q
from mien.server.store.db import Database
from mien.server.tx import Clock, Tx

log = logging.getLogger("mien.server.orchestrator")

LEASE = "fleet-rules"
Submit = Callable[[ProviderRequest], Awaitable[Any]]


class Host(Protocol):
    """What the orchestrator needs of its replica (:class:`~mien.server.state.ServerState`)."""

    db: Database
    fleet: Fleet
    replica: str
    clock: Clock

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...


class LostLease(Exception):
    """Another replica holds the lease: this evaluation writes nothing."""


@dataclass
class Evaluation:
    """What one evaluation did (for tests, the benchmark and the log)."""

    rules: int = 0
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


class Orchestrator:
    def __init__(
        self,
        host: Host,
        *,
        interval: float,
        ttl: float,
        submit: Submit | None = None,
        resync: float = 300.0,
    ) -> None:
        self.host = host
        self.interval = interval
        self.ttl = ttl
        self.submit = submit
        """The provider queue's ``submit`` coroutine; None: requests wait, pending."""
        self.leader = False
        self.newest = Newest(resync)
        """The newest values the rules read; read whole every ``resync`` seconds."""
        self._compiled: dict[tuple[str, int], Loaded] = {}
        self._next = 0.0
        self._warned = False

    def now(self) -> float:
        return self.host.clock().timestamp()

    async def run(self) -> None:
        """The background task: claim, evaluate when due, hand over provider requests."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup must not end the loop
                log.warning("orchestrator: %s", exc)
            await asyncio.sleep(min(self.interval, self.ttl / 3))

    async def stop(self) -> None:
        """Release the lease so another replica takes over at once."""
        if self.leader:
            with suppress(Exception):
                async with self.host.db.write() as s:
                    await lease_q.release(s, LEASE, self.host.replica)
            self.leader = False

    async def tick(self) -> Evaluation | None:
        now = self.now()
        async with self.host.db.write() as s:
            leader = await lease_q.claim(s, LEASE, self.host.replica, now, self.ttl)
        if leader and not self.leader:
            log.info("orchestrator: replica %s evaluates fleet rules", self.host.replica)
        self.leader = leader
        if not leader:
            self.newest.clear()
            return None
        done = None
        if now >= self._next:
            self._next = now + self.interval
            try:
                done = await self.evaluate(now)
            except LostLease:
                self.leader = False
                self.newest.clear()
                return None
        await self.flush()
        return done

    async def evaluate(self, now: float) -> Evaluation:
        """Step every rule once; raises LostLease when another replica took over."""
        async with self.host.db.read() as s:
            rows = await q.current(s)
            rules = [self._rule(r) for r in rows]
            inputs = await load(s, self.newest, rules, now)
        out = Evaluation(rules=len(rules))
        select = Selections(self.host.fleet.members)
        async with self.host.transaction() as tx:
            if not await lease_q.renew(tx.session, LEASE, self.host.replica, now, self.ttl):
                raise LostLease
            states = await q.states(tx.session)
            for r in rules:
                name = r.doc.name
                row = states.pop(name, None)
                prev = RuleState.from_json(row.state) if row is not None else None
                matching = select(r.doc.selector)
                sc = scope(r, matching, inputs)
                step = r.rule.step(sc, prev, now)
                for t in step.transitions:
                    fires = t.to == "firing" and t.from_ in ("inactive", "pending")
                    if fires or (t.to == "inactive" and t.from_ in ("firing", "resolving")):
                        tx.audit(
                            f"fleet-rule:{name}",
                            f"fleet_rule.{'firing' if fires else 'resolved'}",
                            rule=name,
                            version=r.version,
                            why=t.why,
                            values=shown(r, sc),
                            cooling=step.cooling if fires else None,
                        )
                if step.fired and not step.cooling and step.state.fired_at is not None:
                    ctx = actions.Context(
                        r.doc, matching, inputs.values.get(r.doc.fresh.seconds, {}), now
                    )
                    out.actions += await actions.fire(tx, self.host.fleet, ctx, step.state.fired_at)
                    out.fired.append(name)
                if step.resolved and prev is not None and prev.fired_at is not None:
                    out.actions += await actions.resolve(
                        tx, self.host.fleet, name, prev.fired_at, now
                    )
                    out.resolved.append(name)
                await q.put_state(
                    tx.session, name, step.state.to_json(), step.note, shown(r, sc), now
                )
            for name, row in states.items():  # rules deleted since: undo, then forget
                gone = RuleState.from_json(row.state)
                if gone.phase in ("firing", "resolving") and gone.fired_at is not None:
                    out.actions += await actions.resolve(
                        tx, self.host.fleet, name, gone.fired_at, now
                    )
                    out.resolved.append(name)
                await q.drop_state(tx.session, name)
        return out

    async def flush(self) -> int:
        """Hand pending provider requests to :attr:`submit`; how many were handed."""
        async with self.host.db.read() as s:
            pending = await q.pending(s)
        if not pending:
            return 0
        if self.submit is None:
            if not self._warned:
                log.warning(
                    "orchestrator: %d provider request(s) wait: no provider queue", len(pending)
                )
                self._warned = True
            return 0
        handed = 0
        for row in pending:
            for req in row.detail.get("requests", []):
                await self.submit(ProviderRequest(**req))
            async with self.host.db.write() as s:
                await q.set_status(s, row.key, "submitted")
            handed += 1
        return handed

    def _rule(self, row: q.FleetRuleRow) -> Loaded:
        key = (row.name, row.version)
        got = self._compiled.get(key)
        if got is None:
            doc = load_stored(row.document)
            got = self._compiled[key] = Loaded(doc, FleetRule(doc.source()), row.version)
        return got
