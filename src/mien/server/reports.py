"""Agent reports, written with group commit (:mod:`mien.server.batching`).

When a rollout reaches thousands of agents they all report within a second or two, twice
each (``applying``, then ``applied``). A report that is itself wrong (an activation of
another instance) is refused on its own, without failing the others in the batch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mien.protocol import Activation, AgentReport, ReportAck
from mien.server.auth import Principal
from mien.server.batching import GroupCommit
from mien.server.errors import ApiError
from mien.server.store import activations as activations_q
from mien.server.store import instances as instances_q
from mien.server.store.activations import TRANSITIONS, ActivationRow

if TYPE_CHECKING:
    from mien.server.tx import Transactor, Tx


class ReportWriter(GroupCommit[tuple[Principal, AgentReport], ReportAck]):
    """Reports, group-committed (see :mod:`mien.server.batching`)."""

    def __init__(self, state: Transactor) -> None:
        super().__init__(state, record_batch, "reports")

    async def submit(self, principal: Principal, report: AgentReport) -> ReportAck:
        return await self.submit_job((principal, report))


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
        if report.instance is not None and report.instance != iid:
            results.append(
                ApiError(
                    403,
                    "forbidden",
                    f"this agent token belongs to instance {iid!r}; it may report only "
                    f"for that instance, not {report.instance!r}",
                )
            )
            continue
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
        machine = (
            report.status.model_dump(mode="json")
            if report.status is not None
            else row.machine_status
        )
        updated = replace(
            row,
            applied_settings=settings,
            machine_status=machine,
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
