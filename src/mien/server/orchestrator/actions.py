"""What a fleet rule does when it fires, and how resolving undoes it.

Each action runs inside the evaluation's write transaction, through the same store paths
and audit records as the API (bindings, instance tags, activations), so fleet state, the
agents' long-polls and the audit log see one kind of change whoever made it; the actor is
``fleet-rule:NAME``. Every action is journalled under a key made of the rule, the time it
fired and the action's index, written in the same transaction: a key already there is not
done again, so a replayed transition (a new leader after a crash) does nothing twice.

Reverted on resolve: ``bind`` (the binding is deleted), ``unbind`` (the binding comes back
as it was), ``set_tags`` / ``remove_tags`` (each tag goes back to its value before, unless
someone changed it since), ``activate`` (the activation is cleared if it is still the one
the rule made). Not reverted: ``call_provider`` (a request to the world; write the opposite
request as another rule). A provider request is journalled ``pending`` and handed to the
queue after the commit (:meth:`mien.server.orchestrator.loop.Orchestrator.flush`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mien.server import activation
from mien.server.errors import ApiError
from mien.server.fleet import Fleet
from mien.server.orchestrator.documents import Action, FleetRuleDoc
from mien.server.store import bindings as bindings_q
from mien.server.store import fleet_rules as q
from mien.server.store import instances as instances_q
from mien.server.tx import Tx

UNDO = "/undo"


@dataclass(frozen=True)
class Context:
    """What an action acts on: the matching instances and the values of the metrics."""

    rule: FleetRuleDoc
    members: Sequence[str]
    values: Mapping[str, Mapping[str, float]]
    now: float

    @property
    def actor(self) -> str:
        return f"fleet-rule:{self.rule.name}"


def firing_prefix(rule: str, fired_at: float) -> str:
    return f"{rule}@{fired_at:.3f}#"


async def fire(tx: Tx, fleet: Fleet, ctx: Context, fired_at: float) -> list[str]:
    """Run the rule's actions for the firing at ``fired_at``; the keys it journalled."""
    done = []
    for i, act in enumerate(ctx.rule.then):
        key = f"{firing_prefix(ctx.rule.name, fired_at)}{i:02d}"
        if await q.action(tx.session, key) is not None:
            continue
        marks = len(tx.entries), len(tx.changes)
        savepoint = await tx.session.begin_nested()
        try:
            detail, undo, status = await _run(tx, fleet, ctx, act, key)
        except ApiError as exc:  # a persona deleted, an instance gone: said, not raised
            await savepoint.rollback()  # none of this action's writes stay
            del tx.entries[marks[0] :], tx.changes[marks[1] :]
            detail, undo, status = {"error": exc.detail}, None, "failed"
        else:
            await savepoint.commit()
        await q.record_action(
            tx.session, key, ctx.rule.name, act.kind, ctx.now, status, detail, undo
        )
        tx.audit(ctx.actor, f"fleet_rule.{act.kind}", key=key, status=status, **detail)
        done.append(key)
    return done


async def resolve(tx: Tx, fleet: Fleet, rule: str, fired_at: float, now: float) -> list[str]:
    """Undo what the firing at ``fired_at`` did (what can be undone); the keys undone."""
    actor = f"fleet-rule:{rule}"
    done = []
    for row in await q.actions_of(tx.session, rule, firing_prefix(rule, fired_at)):
        if row.key.endswith(UNDO) or row.undo is None or row.status != "done":
            continue
        key = row.key + UNDO
        if await q.action(tx.session, key) is not None:
            continue
        detail = await _undo(tx, fleet, actor, row.kind, row.undo)
        await q.record_action(tx.session, key, rule, row.kind, now, "done", detail, None)
        tx.audit(actor, f"fleet_rule.undo_{row.kind}", key=key, **detail)
        done.append(key)
    return done


async def _run(
    tx: Tx, fleet: Fleet, ctx: Context, act: Action, key: str
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    s, actor = tx.session, ctx.actor
    if act.bind is not None:
        b = act.bind
        name = b.binding or f"fleet-{ctx.rule.name}"[:63]
        persona = fleet.personas.get(b.persona)
        if persona is None or persona.deleted:
            raise ApiError(422, "invalid_binding", f"persona {b.persona!r} does not exist")
        selector = dict(b.selector if b.selector is not None else ctx.rule.selector)
        row = await bindings_q.create(
            s,
            name=name,
            selector=selector,
            persona=b.persona,
            override=None,
            priority=b.priority,
            description=f"bound by fleet rule {ctx.rule.name}",
            actor=actor,
            now=tx.now,
        )
        if row is None:
            raise ApiError(409, "exists", f"binding {name!r} already exists")
        record = _binding(row)
        tx.audit(actor, "binding.create", persona=b.persona, binding=record, fleet_rule=key)
        tx.changed("binding", name)
        return {"binding": record}, {"delete_binding": name}, "done"
    if act.unbind is not None:
        gone = await bindings_q.delete_binding(s, act.unbind.binding)
        if gone is None:
            return {"binding": act.unbind.binding, "note": "no such binding"}, None, "done"
        record = _binding(gone) | {"description": gone.description}
        tx.audit(actor, "binding.delete", persona=gone.persona, binding=record, fleet_rule=key)
        tx.changed("binding", gone.name)
        return {"binding": record}, {"create_binding": record}, "done"
    if act.set_tags is not None or act.remove_tags is not None:
        want: dict[str, str | None] = dict(act.set_tags or {})
        want.update(dict.fromkeys(act.remove_tags or ()))
        undo = await _tags(tx, ctx.members, want, actor, key)
        return {"tags": want, "instances": sorted(undo)}, {"tags": undo}, "done"
    if act.activate is not None:
        a = act.activate
        chosen = worst(ctx.members, ctx.values.get(a.by, {}), a.worst, a.order)
        made: dict[str, str] = {}
        for iid in chosen:
            made[iid] = (
                await activation.activate(tx, fleet, iid, a.persona, None, actor, fleet_rule=key)
            ).id
        return {"persona": a.persona, "instances": chosen}, {"activations": made}, "done"
    assert act.call_provider is not None
    c = act.call_provider
    targets = (
        worst(ctx.members, ctx.values.get(c.by, {}), c.worst, c.order)
        if c.worst is not None and c.by is not None
        else sorted(ctx.members)
    )
    requests = [
        {
            "provider": c.provider,
            "instance_id": iid,
            "kind": c.kind,
            "params": dict(c.params),
            "reason": f"fleet rule {ctx.rule.name} fired",
            "idempotency_key": f"{key}:{iid}",
        }
        for iid in targets
    ]
    return {"requests": requests}, None, "pending"


async def _tags(
    tx: Tx, members: Sequence[str], want: Mapping[str, str | None], actor: str, key: str
) -> dict[str, dict[str, Any]]:
    """Set (a value) or remove (None) tags on every member; per instance, per changed key,
    ``[before, after]``."""
    undo: dict[str, dict[str, Any]] = {}
    rows = await instances_q.get_many(tx.session, members)
    for iid in sorted(rows):
        row = rows[iid]
        tags = dict(row.tags)
        changed = {}
        for k, v in want.items():
            if tags.get(k) != v:
                changed[k] = [tags.get(k), v]
                if v is None:
                    tags.pop(k, None)
                else:
                    tags[k] = v
        if changed:
            await instances_q.set_tags(tx.session, iid, tags)
            tx.audit(
                actor, "instance.tags", instance_id=iid, before=row.tags, after=tags, fleet_rule=key
            )
            tx.changed("instance", iid)
            undo[iid] = changed
    return undo


async def _undo(
    tx: Tx, fleet: Fleet, actor: str, kind: str, undo: dict[str, Any]
) -> dict[str, Any]:
    s = tx.session
    if "delete_binding" in undo:
        name = undo["delete_binding"]
        gone = await bindings_q.delete_binding(s, name)
        if gone is None:
            return {"binding": name, "note": "already gone"}
        tx.audit(actor, "binding.delete", persona=gone.persona, binding=_binding(gone))
        tx.changed("binding", name)
        return {"binding": name}
    if "create_binding" in undo:
        r = undo["create_binding"]
        row = await bindings_q.create(
            s,
            name=r["name"],
            selector=r["selector"],
            persona=r["persona"],
            override=r["override"],
            priority=r["priority"],
            description=r.get("description"),
            actor=actor,
            now=tx.now,
            mode=r.get("mode", "replace"),
        )
        if row is None:
            return {"binding": r["name"], "note": "a binding of that name exists again: kept"}
        tx.audit(actor, "binding.create", persona=row.persona, binding=_binding(row))
        tx.changed("binding", row.name)
        return {"binding": r["name"]}
    if "tags" in undo:
        rows = await instances_q.get_many(s, undo["tags"])
        restored = []
        for iid, changed in sorted(undo["tags"].items()):
            inst = rows.get(iid)
            if inst is None:
                continue
            tags = dict(inst.tags)
            for k, (before, after) in changed.items():
                if tags.get(k) != after:
                    continue  # changed by someone since: theirs stands
                if before is None:
                    tags.pop(k, None)
                else:
                    tags[k] = before
            if tags != inst.tags:
                await instances_q.set_tags(s, iid, tags)
                tx.audit(actor, "instance.tags", instance_id=iid, before=inst.tags, after=tags)
                tx.changed("instance", iid)
                restored.append(iid)
        return {"instances": restored}
    cleared = []
    for iid, activation_id in sorted(undo.get("activations", {}).items()):
        try:
            if await activation.clear(tx, iid, actor, only=activation_id):
                cleared.append(iid)
        except ApiError:
            continue  # the instance is gone
    return {"instances": cleared}


def worst(
    members: Sequence[str], values: Mapping[str, float], n: int, order: str = "highest"
) -> list[str]:
    """The ``n`` members with the highest (or lowest) value; ties by instance id."""
    have = [(values[i], i) for i in members if i in values]
    sign = -1.0 if order == "highest" else 1.0
    have.sort(key=lambda vi: (sign * vi[0], vi[1]))
    return [i for _, i in have[:n]]


def _binding(row: bindings_q.BindingRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "selector": row.selector,
        "persona": row.persona,
        "override": row.override,
        "priority": row.priority,
        "mode": row.mode,
        "version": row.version,
    }
