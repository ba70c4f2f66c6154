"""Building response models from rows and the fleet cache (shared by several routers)."""

from __future__ import annotations

from datetime import datetime, timedelta

from mien.protocol import AppliedState, DesiredSummary, Instance
from mien.protocol.outcomes import from_stored
from mien.protocol.status import Effect, effect_of
from mien.server.errors import not_found
from mien.server.notify import Change
from mien.server.state import ServerState
from mien.server.store.instances import InstanceRow


def desired_summary(state: ServerState, instance_id: str) -> DesiredSummary:
    desired = state.fleet.desired(instance_id)
    if desired is None:
        return DesiredSummary(source="none")
    return DesiredSummary.model_validate(desired.summary)


def applied_state(row: InstanceRow) -> AppliedState:
    return AppliedState(
        state=row.applied_state,
        persona=row.applied_persona,
        version=row.applied_version,
        hash=row.applied_hash,
        activation_id=row.applied_activation_id,
        error=row.applied_error,
        at=row.applied_at,
        settings=[from_stored(s) for s in row.applied_settings or ()],
    )


def last_seen(state: ServerState, row: InstanceRow) -> datetime | None:
    recent = state.fleet.seen.get(row.id)
    if recent is not None and (row.last_seen is None or recent > row.last_seen):
        return recent
    return row.last_seen


def connected(state: ServerState, row: InstanceRow, now: datetime) -> bool:
    seen = last_seen(state, row)
    return seen is not None and now - seen <= timedelta(seconds=state.settings.connected_after)


def in_sync(desired: DesiredSummary, applied: AppliedState) -> bool:
    if desired.error:
        return False  # the server cannot say what should run: nothing is in sync with it
    if desired.hash is None:
        return True  # nothing desired: whatever runs is fine
    return applied.state == "applied" and applied.hash == desired.hash


def effect(row: InstanceRow) -> Effect:
    """How much of the persona the machine runs is in effect, from its reported outcomes."""
    running = row.applied_persona is not None and row.applied_state is not None
    return effect_of(row.applied_settings, running=running)


def instance_model(state: ServerState, row: InstanceRow) -> Instance:
    desired = (
        desired_summary(state, row.id) if row.deleted_at is None else DesiredSummary(source="none")
    )
    applied = applied_state(row)
    return Instance(
        id=row.id,
        hostname=row.hostname,
        tags=row.tags,
        enrolled_at=row.enrolled_at,
        enrolled_by=row.enrolled_by,
        last_seen=last_seen(state, row),
        connected=row.deleted_at is None and connected(state, row, state.clock()),
        agent_version=row.agent_version,
        desired=desired,
        applied=applied,
        in_sync=in_sync(desired, applied),
        effect=effect(row),
        deleted_at=row.deleted_at,
    )


async def ensure_cached(state: ServerState, instance_id: str) -> None:
    """Load an instance another replica enrolled, before its notification arrives."""
    if instance_id not in state.fleet.members:
        await state.fleet.apply([Change("instance", instance_id)], state.clock())
    if instance_id not in state.fleet.members:
        raise not_found(f"instance {instance_id!r}")
