"""Group commit: many small writes from concurrent requests in one transaction.

Used for agent reports (:mod:`mien.server.reports`) and enrollments
(:mod:`mien.server.enrollment`). When a fleet enrolls, reconnects or reports at once, each
request is a small write; one transaction each would queue them on SQLite's single writer
and pay one disk flush each. So requests are queued, and one writer task records
everything queued so far in one transaction; each request still gets its answer only
after its write is durable. A job that is itself wrong is refused on its own (its result
is an :class:`ApiError`) without failing the others; should a whole batch fail (another
replica wrote a conflicting row meanwhile), each of its jobs is tried alone, so only the
guilty one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from mien.server.errors import ApiError

if TYPE_CHECKING:
    from mien.server.tx import Transactor, Tx

log = logging.getLogger("mien.server.batching")

J = TypeVar("J")
R = TypeVar("R")

MAX_BATCH = 500


def retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure: the same transaction may succeed if rerun."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001") or "deadlock detected" in str(exc.orig)


class GroupCommit(Generic[J, R]):
    """Queue jobs; ``record(tx, jobs)`` writes a batch and returns one result per job."""

    def __init__(
        self,
        state: Transactor,
        record: Callable[[Tx, list[J]], Awaitable[list[R | ApiError]]],
        name: str,
    ) -> None:
        self.state = state
        self.record = record
        self.name = name
        self._queue: asyncio.Queue[tuple[J, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mien-{self.name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        # Let what is queued be written, then stop.
        try:
            await asyncio.wait_for(self._queue.join(), 10.0)
        except TimeoutError:
            log.warning("stopping with %d %s unwritten", self._queue.qsize(), self.name)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def submit_job(self, job: J) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await self._settle(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _settle(self, batch: list[tuple[J, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([job for job, _f in batch])
        except asyncio.CancelledError:
            for _job, future in batch:
                if not future.done():
                    future.set_exception(
                        ApiError(503, "shutting_down", "server is stopping; retry")
                    )
            raise
        except Exception as exc:
            if len(batch) > 1:
                log.info(
                    "%s batch of %d failed (%s); writing each alone", self.name, len(batch), exc
                )
                for item in batch:
                    await self._settle([item])
                return
            for _job, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_job, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, ApiError):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _write(self, jobs: list[J]) -> list[R | ApiError]:
        for attempt in range(1, 4):
            try:
                async with self.state.transaction() as tx:
                    return await self.record(tx, jobs)
            except DBAPIError as exc:
                # Another replica's batch may lock the same rows: PostgreSQL picks a victim.
                if attempt == 3 or not retryable(exc):
                    raise
                log.info("%s batch retried after %s", self.name, exc.orig)
                await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")
