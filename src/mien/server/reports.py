"""Agent reports, written with group commit.

When a rollout reaches thousands of agents they all report within a second or two. Each
report is a small write; one transaction each would queue them on SQLite's single writer.
So reports are queued, and a writer commits everything queued so far in one transaction
(group commit); each agent still gets its answer only after its report is durable.
A report that is itself wrong (an activation of another instance) is refused on its own,
without failing the others in the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from mien.client.models import Activation, AgentReport, ReportAck
from mien.server.auth import Principal
from mien.server.errors import ApiError
from mien.server.store import activations as activations_q
from mien.server.store import instances as instances_q
from mien.server.store.activations import TRANSITIONS, ActivationRow

if TYPE_CHECKING:
    from mien.server.state import ServerState, Tx

log = logging.getLogger("mien.server.reports")

MAX_BATCH = 500

_Job = tuple[Principal, AgentReport, "asyncio.Future[ReportAck]"]


def activation_model(row: ActivationRow) -> Activation:
    return Activation(
        id=row.id,
        instance_id=row.instance_id,
        persona=row.persona,
        version=row.version,
        desired_hash=row.desired_hash,
        status=row.status,
        error=row.error,
        applied_hash=row.applied_hash,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
    )


class ReportWriter:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mien-reports")

    async def stop(self) -> None:
        if self._task is None:
            return
        # Let what is queued be written, then stop.
        try:
            await asyncio.wait_for(self._queue.join(), 10.0)
        except TimeoutError:
            log.warning("stopping with %d report(s) unwritten", self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def submit(self, principal: Principal, report: AgentReport) -> ReportAck:
        future: asyncio.Future[ReportAck] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((principal, report, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                results = await self._write(batch)
            except asyncio.CancelledError:
                for _p, _r, future in batch:
                    if not future.done():
                        future.set_exception(
                            ApiError(503, "shutting_down", "server is stopping; retry")
                        )
                raise
            except Exception as exc:
                for _p, _r, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_p, _r, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, ApiError):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            for _ in batch:
                self._queue.task_done()

    async def _write(self, batch: list[_Job]) -> list[ReportAck | ApiError]:
        results: list[ReportAck | ApiError] = []
        async with self.state.transaction() as tx:
            for principal, report, _future in batch:
                results.append(await record(tx, principal, report))
        return results


async def record(tx: Tx, principal: Principal, report: AgentReport) -> ReportAck | ApiError:
    """Store one report in the open transaction (an :class:`ApiError` if refused)."""
    s = tx.session
    iid = principal.instance_id
    assert iid is not None
    row = await instances_q.get(s, iid)
    if row is None:
        return ApiError(404, "not_found", f"instance {iid!r} not found (deleted?)")
    activation: ActivationRow | None = None
    if report.activation_id:
        found = await activations_q.get(s, report.activation_id)
        if found is None or found.instance_id != iid:
            return ApiError(
                404,
                "not_found",
                f"activation {report.activation_id!r} is not one of this instance's",
            )
        activation = found
        if report.state in TRANSITIONS.get(found.status, frozenset()):
            error = report.error if report.state == "failed" else None
            await activations_q.set_status(
                s,
                found.id,
                status=report.state,
                error=error,
                applied_hash=report.hash if report.state == "applied" else None,
                now=tx.now,
            )
            activation = await activations_q.get(s, found.id)
    before = (row.applied_state, row.applied_hash, row.applied_activation_id, row.applied_error)
    after = (report.state, report.hash, report.activation_id, report.error)
    await instances_q.record_report(
        s,
        iid,
        state=report.state,
        hash=report.hash,
        persona=report.persona,
        version=report.version,
        activation_id=report.activation_id,
        error=report.error,
        history=[h.model_dump(mode="json") for h in report.history]
        if report.history is not None
        else None,
        agent_version=report.agent_version,
        now=tx.now,
    )
    if before != after:
        tx.audit(
            principal.actor,
            f"instance.{report.state}",
            instance_id=iid,
            persona=report.persona,
            hash=report.hash,
            version=report.version,
            activation_id=report.activation_id,
            error=report.error,
        )
    return ReportAck(recorded=True, activation=activation_model(activation) if activation else None)
