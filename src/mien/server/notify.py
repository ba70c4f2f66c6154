"""Telling every replica what changed.

A write names what it changed as :class:`Change` items (``persona:web``,
``binding:prod-web``, ``instance:i-1``, ``command:i-1``, ``result:<command id>``,
``token:<id>``). The writing replica applies them to its own cache right after commit; on
PostgreSQL they are also sent with ``pg_notify`` *inside* the transaction, so they are
delivered exactly when the change is visible, and every other replica reloads just those
items and wakes just the long-polls whose answer changed. A replica that loses its
LISTEN connection reconnects and reloads everything, since it may have missed messages.

SQLite serves one replica, so :class:`LocalNotifier` sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("mien.server.notify")

CHANNEL = "mien_changes"
MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # persona | binding | instance | command | result | token | all
    key: str = ""


Apply = Callable[[list[Change]], Awaitable[None]]


def encode(replica: str, changes: Sequence[Change]) -> list[str]:
    """Payloads of at most :data:`MAX_PAYLOAD` bytes carrying ``changes``."""
    out: list[str] = []
    batch: list[list[str]] = []
    size = 0
    for change in dict.fromkeys(changes):
        item = [change.kind, change.key]
        item_size = len(change.kind) + len(change.key.encode()) + 8
        if batch and size + item_size > MAX_PAYLOAD:
            out.append(orjson.dumps({"r": replica, "c": batch}).decode())
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        out.append(orjson.dumps({"r": replica, "c": batch}).decode())
    return out


def decode(payload: str) -> tuple[str, list[Change]]:
    data = orjson.loads(payload)
    return str(data["r"]), [Change(str(k), str(v)) for k, v in data["c"]]


class Notifier(Protocol):
    async def start(self, apply: Apply) -> None: ...

    async def publish(self, session: AsyncSession, changes: Iterable[Change]) -> None: ...

    async def stop(self) -> None: ...


class LocalNotifier:
    """One replica (SQLite): the writer applies its own changes; nothing to send."""

    async def start(self, apply: Apply) -> None:
        return None

    async def publish(self, session: AsyncSession, changes: Iterable[Change]) -> None:
        return None

    async def stop(self) -> None:
        return None


class PostgresNotifier:
    """LISTEN/NOTIFY over a dedicated asyncpg connection, reconnecting with backoff."""

    def __init__(self, db_url: str, replica: str) -> None:
        url = make_url(db_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.replica = replica
        self._apply: Apply | None = None
        self._queue: asyncio.Queue[list[Change]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._conn: Any = None
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()

    async def start(self, apply: Apply) -> None:
        self._apply = apply
        await self._connect()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="mien-listen"),
            asyncio.create_task(self._drain(), name="mien-apply-changes"),
        ]

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(lambda _c: self._lost.set())
        self._conn = conn
        self._lost.clear()
        self.connected.set()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            replica, changes = decode(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable change notification: %.200s", payload)
            return
        if replica != self.replica:
            self._queue.put_nowait(changes)

    async def _drain(self) -> None:
        while True:
            changes = [*await self._queue.get()]
            while not self._queue.empty():  # coalesce a burst into one reload
                changes.extend(self._queue.get_nowait())
            try:
                assert self._apply is not None
                await self._apply(changes)
            except Exception:
                log.exception("applying changes from another replica failed; reloading all")
                await asyncio.sleep(1.0)
                self._queue.put_nowait([Change("all")])

    async def _supervise(self) -> None:
        delay = 0.5
        while True:
            await self._lost.wait()
            self.connected.clear()
            log.warning("lost the LISTEN connection to PostgreSQL; reconnecting")
            while True:
                await asyncio.sleep(delay * (0.5 + random.random()))
                try:
                    await self._connect()
                except (OSError, Exception) as exc:  # asyncpg raises many kinds
                    log.warning("reconnecting LISTEN failed: %s", exc)
                    delay = min(delay * 2, 30.0)
                    continue
                delay = 0.5
                # Anything may have changed while we were deaf.
                self._queue.put_nowait([Change("all")])
                break

    async def publish(self, session: AsyncSession, changes: Iterable[Change]) -> None:
        for payload in encode(self.replica, list(changes)):
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": payload},
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._conn is not None and not self._conn.is_closed():
            try:
                await asyncio.wait_for(self._conn.close(), 5)
            except (TimeoutError, Exception):
                self._conn.terminate()
