"""``/instances``: list, show, tag, delete, and what each should run and runs
(``active_persona``, ``effective_persona`` with its explanation, ``history``). Listing and
showing also say why an instance is out of fleet policy (:mod:`mien.server.compliance`);
``noncompliant=true`` lists only those."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from mien.protocol import (
    ActivePersona,
    BindingMatch,
    EffectivePersona,
    ErrorBody,
    Explain,
    FleetSummary,
    HistoryEntry,
    Instance,
    KeyOrigin,
    LayerInfo,
    Noncompliance,
    Page,
    TagPatch,
)
from mien.protocol.status import effect_of
from mien.server import compliance, explain
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import INSTANCE_RE, InstanceReader, Limit, Operator, State, Viewer
from mien.server.api.views import (
    applied_state,
    desired_summary,
    effect,
    ensure_cached,
    in_sync,
    instance_model,
)
from mien.server.errors import ApiError, not_found
from mien.server.reports import activation_model
from mien.server.store import activations as activations_q
from mien.server.store import instances as q
from mien.server.store import tokens as tokens_q

router = APIRouter(
    route_class=CheckedRoute,
    tags=["instances"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role (or instance) may not do this"},
    },
)

InstancePath = Annotated[str, Path(pattern=INSTANCE_RE, description="instance id")]


async def _compliance(
    state: State, s: AsyncSession, rows: list[q.InstanceRow]
) -> dict[str, list[Noncompliance]]:
    locked: dict[str, list[str]] = {}
    for row in rows:
        desired = state.fleet.desired(row.id) if row.deleted_at is None else None
        data = desired.effective.data if desired else None
        locked[row.id] = list((data or {}).get("locked") or [])
    current = state.fleet.policy
    window = current.policy.noncompliance_window.seconds if current else None
    return await compliance.reasons(s, rows, locked, now=state.clock(), window=window)


def _tag_filter(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(422, "invalid_request", f"query.tag: {item!r} is not KEY=VALUE")
        out[key] = value
    return out


@router.get("/instances", response_model=Page[Instance], summary="List instances")
async def list_instances(
    state: State,
    who: Viewer,
    limit: Limit = 200,
    after: Annotated[str | None, Query(max_length=128)] = None,
    tag: Annotated[
        list[str], Query(description="KEY=VALUE; repeat for several (all must match)")
    ] = [],  # noqa: B006
    persona: Annotated[str | None, Query(max_length=63, description="desired persona")] = None,
    hostname: Annotated[
        str | None, Query(max_length=255, description="host name given at enrollment")
    ] = None,
    include_deleted: bool = False,
    noncompliant: Annotated[
        bool | None,
        Query(description="true: only instances out of fleet policy; false: only the others"),
    ] = None,
) -> Page[Instance]:
    wanted = _tag_filter(tag)
    items: list[Instance] = []
    cursor = after
    async with state.db.read() as s:
        while len(items) < limit:
            rows = await q.page(s, after=cursor, limit=limit, include_deleted=include_deleted)
            reasons = await _compliance(state, s, rows)
            for row in rows:
                cursor = row.id
                if any(row.tags.get(k) != v for k, v in wanted.items()):
                    continue
                if hostname is not None and row.hostname != hostname:
                    continue
                if noncompliant is not None and (row.id in reasons) != noncompliant:
                    continue
                model = instance_model(state, row)
                if persona is not None and model.desired.persona != persona:
                    continue
                model.noncompliance = reasons.get(row.id, [])
                items.append(model)
                if len(items) == limit:
                    break
            if len(rows) < limit:
                cursor = None
                break
    return Page(items=items, next=cursor if len(items) == limit else None)


@router.get(
    "/fleet/summary", response_model=FleetSummary, summary="How far the fleet has converged"
)
async def fleet_summary(state: State, who: Viewer) -> FleetSummary:
    async with state.db.read() as s:
        rows = await q.applied(s)
    now = state.clock()
    counts = dict.fromkeys(("applied", "applying", "failed", "never", "sync", "partial"), 0)
    counts["connected"] = 0
    by_persona: dict[str, int] = {}
    for iid, applied, applied_hash, seen, settings in rows:
        desired = state.fleet.desired(iid)
        want = desired.effective.hash if desired else None
        persona = desired.effective.choice.persona if desired else None
        if persona:
            by_persona[persona] = by_persona.get(persona, 0) + 1
        counts[applied or "never"] += 1
        broken = desired is not None and desired.effective.error is not None
        if not broken and (want is None or (applied == "applied" and applied_hash == want)):
            counts["sync"] += 1
            if applied is not None and effect_of(settings).state in ("partial", "none"):
                counts["partial"] += 1
        recent = state.fleet.seen.get(iid) or seen
        if recent is not None and (now - recent).total_seconds() <= state.settings.connected_after:
            counts["connected"] += 1
    return FleetSummary(
        instances=len(rows),
        connected=counts["connected"],
        in_sync=counts["sync"],
        partly_in_effect=counts["partial"],
        applied=counts["applied"],
        applying=counts["applying"],
        failed=counts["failed"],
        never_reported=counts["never"],
        by_persona=by_persona,
    )


async def row_of(state: State, instance_id: str) -> q.InstanceRow:
    async with state.db.read() as s:
        row = await q.get(s, instance_id)
    if row is None:
        raise not_found(f"instance {instance_id!r}")
    await ensure_cached(state, instance_id)
    return row


@router.get(
    "/instances/{instance_id}",
    response_model=Instance,
    responses={404: {"model": ErrorBody}},
    summary="One instance: tags, connection, desired and applied persona",
)
async def get_instance(instance_id: InstancePath, state: State, who: InstanceReader) -> Instance:
    row = await row_of(state, instance_id)
    model = instance_model(state, row)
    async with state.db.read() as s:
        model.noncompliance = (await _compliance(state, s, [row])).get(row.id, [])
    return model


@router.patch(
    "/instances/{instance_id}",
    response_model=Instance,
    responses={404: {"model": ErrorBody}},
    summary="Change tags: a value sets a tag, null removes it",
)
async def patch_instance(
    instance_id: InstancePath, patch: TagPatch, state: State, who: Operator
) -> Instance:
    async with state.transaction() as tx:
        row = await q.get(tx.session, instance_id)
        if row is None:
            raise not_found(f"instance {instance_id!r}")
        tags = dict(row.tags)
        for key, value in patch.tags.items():
            if value is None:
                tags.pop(key, None)
            else:
                tags[key] = value
        if tags != row.tags:
            await q.set_tags(tx.session, instance_id, tags)
            tx.audit(
                who.actor, "instance.tags", instance_id=instance_id, before=row.tags, after=tags
            )
            tx.changed("instance", instance_id)
    return instance_model(state, await row_of(state, instance_id))


@router.delete(
    "/instances/{instance_id}",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Delete an instance (soft; its agent token is revoked)",
)
async def delete_instance(instance_id: InstancePath, state: State, who: Operator) -> Response:
    async with state.transaction() as tx:
        if not await q.soft_delete(tx.session, instance_id, tx.now):
            raise not_found(f"instance {instance_id!r}")
        revoked = await tokens_q.revoke_for_instance(tx.session, instance_id, tx.now)
        await activations_q.close_open(tx.session, instance_id, "cancelled", tx.now)
        tx.audit(who.actor, "instance.delete", instance_id=instance_id, revoked_tokens=revoked)
        tx.changed("instance", instance_id)
        for token_id in revoked:
            tx.changed("token", token_id)
    return Response(status_code=204)


@router.get(
    "/instances/{instance_id}/active_persona",
    response_model=ActivePersona,
    responses={404: {"model": ErrorBody}},
    summary="Desired and applied persona side by side",
)
async def active_persona(
    instance_id: InstancePath, state: State, who: InstanceReader
) -> ActivePersona:
    row = await row_of(state, instance_id)
    desired = desired_summary(state, instance_id)
    applied = applied_state(row)
    activation = None
    if row.activation_id:
        async with state.db.read() as s:
            found = await activations_q.get(s, row.activation_id)
        activation = activation_model(found) if found else None
    return ActivePersona(
        instance_id=instance_id,
        desired=desired,
        applied=applied,
        in_sync=in_sync(desired, applied),
        effect=effect(row),
        activation=activation,
    )


@router.get(
    "/instances/{instance_id}/effective_persona",
    response_model=EffectivePersona,
    responses={404: {"model": ErrorBody}},
    summary="The effective persona document, with which version, binding and override made it",
)
async def effective_persona(
    instance_id: InstancePath, state: State, who: InstanceReader
) -> EffectivePersona:
    row = await row_of(state, instance_id)
    fleet = state.fleet
    member = fleet.members[instance_id]
    choice = fleet.choice(member)
    desired = fleet.desired(instance_id)
    # As the agent gets it: trust levels capped by the fleet policy (desired.capped says which).
    effective = desired.effective if desired is not None else fleet.effective(choice)
    activation = None
    if row.activation_id:
        async with state.db.read() as s:
            found = await activations_q.get(s, row.activation_id)
        activation = activation_model(found) if found else None
    matches = [
        BindingMatch(
            name=b.name,
            selector=dict(b.selector),
            persona=b.persona,
            priority=b.priority,
            mode=b.mode,
            matched=matched,
            used=used,
            reason=reason,
        )
        for b, matched, used, reason in explain.binding_reasons(
            fleet.ranked_bindings, member.tags, choice, fleet.personas
        )
    ]
    layers: list[LayerInfo] = []
    keys: dict[str, list[KeyOrigin]] = {}
    if effective.resolved is not None:
        brought = effective.brought_by
        for n, layer in enumerate(effective.resolved.layers):
            doc = (
                fleet.personas.get(layer.persona or "")
                if layer.kind in ("persona", "addition")
                else None
            )
            version = None
            if doc is not None:
                version = effective.version if layer.persona == choice.persona else doc.version
            layers.append(
                LayerInfo(
                    kind=layer.kind,
                    label=layer.label,
                    persona=layer.persona,
                    version=version,
                    binding=brought[n] if n < len(brought) else None,
                )
            )
        keys = {
            path: [
                KeyOrigin(layer=label, value=value, deleted=deleted)
                for label, value, deleted in origins
            ]
            for path, origins in explain.key_origins(effective.resolved).items()
        }
    return EffectivePersona(
        instance_id=instance_id,
        desired=desired_summary(state, instance_id),
        document=effective.data,
        explain=Explain(
            decision=explain.decision(choice, effective),
            activation=activation,
            bindings=matches,
            default_persona=fleet.default_persona,
            layers=layers,
            skipped=list(effective.skipped),
            keys=keys,
        ),
    )


@router.get(
    "/instances/{instance_id}/history",
    response_model=Page[HistoryEntry],
    responses={404: {"model": ErrorBody}},
    summary="The persona history the agent last reported",
)
async def history(
    instance_id: InstancePath, state: State, who: InstanceReader
) -> Page[HistoryEntry]:
    row = await row_of(state, instance_id)
    return Page(items=[HistoryEntry.model_validate(h) for h in row.history or []])
