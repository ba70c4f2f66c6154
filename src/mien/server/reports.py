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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from mien.protocol import Activation, AgentReport, ReportAck
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


def retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure: the same transaction may succeed if rerun."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001") or "deadlock detected" in str(exc.orig)


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
        reports = [(p, r) for p, r, _f in batch]
        for attempt in range(1, 4):
            try:
                async with self.state.transaction() as tx:
                    return await record_batch(tx, reports)
            except DBAPIError as exc:
                # Another replica's batch may lock the same rows: PostgreSQL picks a victim.
                if attempt == 3 or not retryable(exc):
                    raise
                log.info("report batch retried after %s", exc.orig)
                await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")


def _repeated(found: ActivationRow, report: AgentReport) -> bool:
    """Whether ``report`` says again what the activation already records: an agent re-sends
    a report whose answer it did not get (reports are at least once), and that changes
    nothing, not even the activation's time."""
    if report.state != found.status:
        return False
    if report.state == "applied":
        return report.hash == found.applied_hash
    if report.state == "failed":
        return report.error == found.error
    return True


async def record_batch(
    tx: Tx, reports: list[tuple[Principal, AgentReport]]
) -> list[ReportAck | ApiError]:
    """Store reports in the open transaction with a handful of statements whatever their
    number; each result is an acknowledgement, or the :class:`ApiError` refusing it."""
    s = tx.session
    instances = await instances_q.get_many(s, {p.instance_id or "" for p, _r in reports})
    wanted = [r.activation_id for _p, r in reports if r.activation_id]
    activations = await activations_q.get_many(s, list(dict.fromkeys(wanted)))
    instance_rows: dict[str, dict[str, Any]] = {}
    activation_rows: dict[str, dict[str, Any]] = {}
    results: list[ReportAck | ApiError] = []
    for principal, report in reports:
        iid = principal.instance_id or ""
        row = instances.get(iid)
        if row is None:
            results.append(ApiError(404, "not_found", f"instance {iid!r} not found (deleted?)"))
            continue
        activation: ActivationRow | None = None
        if report.activation_id:
            found = activations.get(report.activation_id)
            if found is None or found.instance_id != iid:
                results.append(
                    ApiError(
                        404,
                        "not_found",
                        f"activation {report.activation_id!r} is not one of this instance's",
                    )
                )
                continue
            activation = found
            if report.state in TRANSITIONS.get(found.status, frozenset()) and not _repeated(
                found, report
            ):
                activation = replace(
                    found,
                    status=report.state,
                    error=report.error if report.state == "failed" else None,
                    applied_hash=report.hash if report.state == "applied" else found.applied_hash,
                    updated_at=tx.now,
                )
                activations[found.id] = activation
                activation_rows[found.id] = {
                    "id": found.id,
                    "status": activation.status,
                    "error": activation.error,
                    "applied_hash": activation.applied_hash,
                    "updated_at": tx.now,
                }
        before = (row.applied_state, row.applied_hash, row.applied_activation_id, row.applied_error)
        after = (report.state, report.hash, report.activation_id, report.error)
        history = (
            [h.model_dump(mode="json") for h in report.history]
            if report.history is not None
            else row.history
        )
        if report.settings is not None:
            settings = [o.model_dump(mode="json") for o in report.settings]
        elif report.state == "applied" and report.hash != row.applied_hash:
            settings = None  # another persona, from an agent that does not say
        else:
            settings = row.applied_settings  # the machine still runs what it ran
        updated = replace(
            row,
            applied_settings=settings,
            applied_state=report.state,
            applied_hash=report.hash,
            applied_persona=report.persona,
            applied_version=report.version,
            applied_activation_id=report.activation_id,
            applied_error=report.error,
            applied_at=tx.now,
            last_seen=tx.now,
            history=history,
            agent_version=report.agent_version or row.agent_version,
        )
        instances[iid] = updated
        instance_rows[iid] = {
            "iid": iid,
            **{k: getattr(updated, k) for k in instances_q.REPORT_COLUMNS},
        }
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
        results.append(
            ReportAck(
                recorded=True, activation=activation_model(activation) if activation else None
            )
        )
    await instances_q.record_reports(s, list(instance_rows.values()))
    await activations_q.set_statuses(s, list(activation_rows.values()))
    return results
