"""Enrollment, group-committed: ``POST /enroll`` hands its job to :class:`EnrollmentWriter`.

A fleet enrolls at once (a new site, a re-imaged lab): one transaction per agent queued
on SQLite's single writer, each paying a disk flush, made 10,000 agents take minutes. A
batch here is a handful of statements whatever its size: which ids are taken, the uses
spent per enrollment token, the instances and their tokens inserted together, the audit
records chained in one go. Each job is still judged on its own: a taken id is a 409, a
job past the token's last use a 401, and the others in the batch enroll.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mien.server.batching import GroupCommit
from mien.server.errors import ApiError
from mien.server.store import instances as instances_q
from mien.server.store import tokens as tokens_q
from mien.server.store.tokens import TokenRow

if TYPE_CHECKING:
    from mien.server.tx import Transactor, Tx


@dataclass(frozen=True)
class EnrollJob:
    """One agent enrolling with a checked enrollment token."""

    token: TokenRow
    instance_id: str
    hostname: str | None
    tags: dict[str, str]  # the agent's, merged under the enrollment token's
    agent_version: str | None
    secret_hash: str  # of the agent's new credential


class EnrollmentWriter(GroupCommit[EnrollJob, bool]):
    def __init__(self, state: Transactor) -> None:
        super().__init__(state, record_enrollments, "enrollments")


async def record_enrollments(tx: Tx, jobs: list[EnrollJob]) -> list[bool | ApiError]:
    """Enroll ``jobs`` in the open transaction; ``True``, or the error refusing one."""
    s = tx.session
    taken = await instances_q.taken(s, {j.instance_id for j in jobs})
    results: list[bool | ApiError] = [True] * len(jobs)
    wanting: dict[str, list[int]] = {}  # enrollment token id -> its jobs, in order
    for i, job in enumerate(jobs):
        if job.instance_id in taken:
            results[i] = ApiError(
                409,
                "exists",
                f"instance {job.instance_id!r} is already enrolled; "
                "delete it first to enroll again",
            )
            continue
        taken.add(job.instance_id)  # a second job with the same id in this batch is late
        wanting.setdefault(job.token.id, []).append(i)
    for token_id in sorted(wanting):  # in key order: replicas lock token rows alike
        indexes = wanting[token_id]
        granted = await tokens_q.use_enrollments(s, token_id, len(indexes), tx.now)
        for i in indexes[granted:]:
            results[i] = ApiError(
                401, "unauthorized", f"enrollment token {jobs[i].token.name!r} has no uses left"
            )
    enrolled = [job for job, result in zip(jobs, results, strict=True) if result is True]
    await instances_q.create_many(
        s,
        [
            {
                "id": job.instance_id,
                "hostname": job.hostname,
                "tags": job.tags,
                "enrolled_at": tx.now,
                "enrolled_by": _actor(job),
                "last_seen": tx.now,
                "agent_version": job.agent_version,
            }
            for job in enrolled
        ],
    )
    await tokens_q.create_many(
        s,
        [
            {
                "id": str(uuid.uuid4()),
                "name": f"agent:{job.instance_id}",
                "kind": "agent",
                "role": "agent",
                "secret_hash": job.secret_hash,
                "instance_id": job.instance_id,
                "uses_left": None,
                "tags": None,
                "expires_at": None,
                "created_at": tx.now,
                "created_by": _actor(job),
                "revoked_at": None,
            }
            for job in enrolled
        ],
    )
    for job in enrolled:
        tx.audit(
            _actor(job),
            "instance.enroll",
            instance_id=job.instance_id,
            hostname=job.hostname,
            tags=job.tags,
            token_id=job.token.id,
        )
        tx.changed("instance", job.instance_id)
    # No "token" change for the enrollment token: dropping it from the token caches made
    # every enrollment after a batch read it again (a database connection each, at once);
    # its uses are rechecked here, under its row lock, whatever a cache holds.
    return results


def _actor(job: EnrollJob) -> str:
    return f"enroll:{job.token.name}"
