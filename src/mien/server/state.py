"""Everything one replica holds while it runs, and the one way routes change data.

:class:`ServerState` owns the database, the fleet cache, the token cache, the notifier,
the metrics, the background loops and the group-commit writers of reports and
enrollments. Routes change data only inside :meth:`ServerState.transaction` (which opens a
:class:`mien.server.tx.Tx`): the block's writes, its audit records and its change
notifications commit together; after the commit the changes are applied to this replica's
cache (so the writer reads its own writes) and, through PostgreSQL, to every other one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from mien.server import audit
from mien.server.auth import TokenCache
from mien.server.broker.shells import ShellSessions
from mien.server.broker.writer import AdmissionWriter
from mien.server.enrollment import EnrollmentWriter
from mien.server.fleet import Fleet
from mien.server.metrics import Metrics
from mien.server.notify import Change, LocalNotifier, Notifier, PostgresNotifier
from mien.server.orchestrator.loop import Orchestrator
from mien.server.providers.base import RISK
from mien.server.providers.queue import ProviderQueue, Subject, Timing
from mien.server.reports import ReportWriter
from mien.server.settings import Settings
from mien.server.sources import FleetSources
from mien.server.store import commands as commands_q
from mien.server.store import instances as instances_q
from mien.server.store import migrate
from mien.server.store.db import Database
from mien.server.tx import Clock, Tx, utcnow
from mien.server.waiters import Waiters

log = logging.getLogger("mien.server")


class ServerState:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or utcnow
        self.replica = secrets.token_hex(4)
        self.db = Database(settings.database_url)
        self.fleet = Fleet(self.db)
        self.tokens = TokenCache(self.db, settings.token_cache_ttl, self.clock)
        self.metrics = Metrics(
            connected=lambda: float(self.fleet.waiters.keys()),
            resolutions=lambda: float(self.fleet.resolutions),
        )
        self.notifier: Notifier = (
            PostgresNotifier(settings.database_url, self.replica)
            if self.db.is_postgres
            else LocalNotifier()
        )
        self.command_waiters = Waiters()
        self.shells = ShellSessions()  # mien app shell: the halves waiting to meet
        self.shutting_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.reports = ReportWriter(self)
        self.enrollments = EnrollmentWriter(self)
        self.admissions = AdmissionWriter(self)
        self.sources = FleetSources(self.db, self.fleet, self.clock, self.replica)
        self.providers = ProviderQueue(
            self.db,
            self.transaction,
            self.clock,
            self.provider_subject,
            Timing(
                poll=settings.provider_poll_interval,
                retry_base=settings.provider_retry_base,
                retry_cap=settings.provider_retry_cap,
                max_attempts=settings.provider_max_attempts,
            ),
        )
        # Fleet rules: their provider requests go to the same queue as the agents' scale
        # requests (gated, audited and retried there).
        self.orchestrator = Orchestrator(
            self,
            interval=settings.orchestrator_interval,
            ttl=settings.orchestrator_lease_ttl,
            resync=settings.cache_refresh_interval,
        )
        self.orchestrator.submit = self.providers.submit

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        before, after = await migrate.upgrade(self.db)
        if before != after:
            log.info("database schema upgraded from %s to %s", before or "empty", after)
        await self.fleet.load_all(self.clock())
        await self.tokens.load()
        await self.notifier.start(self.apply)
        self.reports.start()
        self.enrollments.start()
        self.admissions.start()
        s = self.settings
        self._tasks = [
            asyncio.create_task(
                self._every(s.heartbeat_flush_interval, self.flush_seen), name="mien-heartbeats"
            ),
            asyncio.create_task(self._every(5.0, self.expire_commands), name="mien-expiry"),
            asyncio.create_task(
                self._every(s.cache_refresh_interval, self.refresh), name="mien-refresh"
            ),
            asyncio.create_task(
                self._every(s.broker_interval, self.broker_sweep), name="mien-broker"
            ),
            asyncio.create_task(
                self._every(s.telemetry_prune_interval, self.prune_telemetry),
                name="mien-telemetry",
            ),
            asyncio.create_task(
                self._every(s.telemetry_prune_interval, self.prune_provider_calls),
                name="mien-provider-prune",
            ),
            asyncio.create_task(
                self._every(s.sources_interval, self.sources.sweep), name="mien-sources"
            ),
            asyncio.create_task(self.orchestrator.run(), name="mien-orchestrator"),
            asyncio.create_task(self.providers.run(), name="mien-providers"),
            asyncio.create_task(
                self._every(s.provider_reconcile_interval, self.reconcile_sizes),
                name="mien-provider-sizes",
            ),
        ]

    def begin_shutdown(self) -> None:
        """Answer every parked long-poll now (uvicorn would otherwise wait for them)."""
        if not self.shutting_down:
            self.shutting_down = True
            woken = self.fleet.waiters.close() + self.command_waiters.close()
            woken += self.shells.close_all()
            log.info("shutting down: released %d waiting request(s)", woken)

    def request_shutdown(self) -> None:
        """:meth:`begin_shutdown` from a signal handler (or any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.begin_shutdown)

    async def stop(self) -> None:
        self.begin_shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        await self.reports.stop()
        await self.enrollments.stop()
        await self.admissions.stop()
        self.sources.close()
        await self.orchestrator.stop()
        self.providers.close()
        try:
            await self.flush_seen(everything=True)
        except Exception as exc:
            log.warning("could not write last-seen times at shutdown: %s", exc)
        await self.notifier.stop()
        await self.db.dispose()

    async def _every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a loop must survive a database hiccup
                log.warning("%s failed: %s", getattr(job, "__name__", "job"), exc)

    # --- changes ---------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """Write, audit and notify atomically; then update this replica's cache."""
        async with self.db.write() as session:
            tx = Tx(session, self.clock())
            yield tx
            await audit.append(session, tx.entries, tx.now)
            if tx.changes:
                await self.notifier.publish(session, tx.changes)
        if tx.changes:
            await self.apply(tx.changes)

    async def apply(self, changes: list[Change]) -> None:
        """Apply changes (this replica's, or another's via LISTEN/NOTIFY)."""
        # Revocations first, before anything awaits: a deleted instance's agent must meet
        # "revoked", never a half-applied state.
        for change in changes:
            if change.kind == "token":
                self.tokens.forget(token_id=change.key)
        members = self.fleet.members
        new = [c.key for c in changes if c.kind == "instance" and c.key not in members]
        await self.fleet.apply(changes, self.clock())
        await self.tokens.load_instances([iid for iid in new if iid in members])
        for change in changes:
            if change.kind == "result":
                self.command_waiters.wake(change.key)
            elif change.kind == "all":
                await self.tokens.load()
                self.command_waiters.wake_all()

    # --- background jobs -------------------------------------------------------------

    async def flush_seen(self, *, everything: bool = False) -> None:
        """Write the last-seen times of agents that polled since they were last written,
        in small transactions so that no write waits long behind them."""
        gap = 0.0 if everything else self.settings.connected_after / 4
        seen = self.fleet.take_seen(gap)
        items = list(seen.items())
        for start in range(0, len(items), 500):
            chunk = dict(items[start : start + 500])
            try:
                async with self.db.write() as session:
                    await instances_q.touch(session, chunk)
            except Exception:
                for key, value in items[start:]:  # keep them for the next try
                    self.fleet.seen.setdefault(key, value)
                raise
            self.fleet.mark_written(chunk)

    async def expire_commands(self) -> None:
        async with self.transaction() as tx:
            for row in await commands_q.expire(tx.session, tx.now):
                tx.audit(
                    "mien-server",
                    "command.expire",
                    instance_id=row.instance_id,
                    command_id=row.id,
                    command=row.command,
                    was=row.status,
                )
                tx.changed("result", row.id)

    async def broker_sweep(self) -> None:
        from mien.server.broker.lifecycle import sweep

        async with self.transaction() as tx:
            await sweep(tx, self.settings.sandbox_host_timeout)

    async def prune_telemetry(self) -> None:
        from mien.server.store import telemetry as telemetry_q
        from mien.server.telemetry import Retention

        s = self.settings
        keep = Retention(
            s.telemetry_raw_retention, s.telemetry_minute_retention, s.telemetry_hour_retention
        )
        async with self.db.write() as session:
            await telemetry_q.prune(
                session, self.clock().timestamp(), keep, s.telemetry_event_retention
            )

    async def prune_provider_calls(self) -> None:
        from mien.server.store import providers as providers_q

        before = self.clock() - timedelta(seconds=self.settings.provider_call_retention)
        async with self.db.write() as session:
            await providers_q.prune_calls(session, before)

    def provider_subject(self, instance_id: str) -> Subject | None:
        """An instance's tags and effective persona, as the provider gate judges them."""
        member = self.fleet.members.get(instance_id)
        desired = self.fleet.desired(instance_id)
        if member is None or desired is None:
            return None
        document = desired.effective.data or {}
        trust = dict(document.get("trust_levels") or {})  # as capped by the fleet policy
        cap = None
        for capped in desired.capped:
            trust[capped.risk] = capped.granted  # the persona's own level
            if capped.risk == RISK:
                cap = (capped.allowed, capped.entry)
        return Subject(dict(member.tags), desired.payload.get("persona"), trust, cap)

    async def reconcile_sizes(self) -> None:
        from mien.server.providers.sizes import reconcile

        items = []
        for instance_id, member in list(self.fleet.members.items()):
            desired = self.fleet.desired(instance_id)
            if desired is not None and desired.effective.data:
                items.append(
                    (
                        instance_id,
                        member.tags,
                        desired.payload.get("persona"),
                        desired.effective.version,
                        desired.effective.data,
                    )
                )
        await reconcile(self.providers, items)

    async def refresh(self) -> None:
        await self.fleet.load_all(self.clock())
        await self.tokens.load()
