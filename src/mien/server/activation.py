"""Explicit activations, written: a persona (version) asked of one instance, and dropped.

One path for everyone who activates: the activation routes (:mod:`mien.server.api.
activations`) and the orchestrator's ``activate`` action. Both run inside a
:class:`~mien.server.tx.Tx`, which audits and notifies with the write.
"""

from __future__ import annotations

import uuid
from typing import Any

from mien.server import resolve
from mien.server.errors import ApiError, not_found
from mien.server.fleet import Fleet, Member
from mien.server.resolve import ActivationRef, PersonaDoc
from mien.server.store import activations as q
from mien.server.store import instances as instances_q
from mien.server.store import personas as personas_q
from mien.server.store.activations import ActivationRow
from mien.server.tx import Tx


async def activate(
    tx: Tx,
    fleet: Fleet,
    instance_id: str,
    persona_name: str,
    version: int | None,
    actor: str,
    **audit: Any,
) -> ActivationRow:
    """Record the activation (the latest version unless ``version``); ApiError 404/422
    when the instance, persona or version is not there or does not resolve."""
    activation_id = str(uuid.uuid4())
    s = tx.session
    instance = await instances_q.get(s, instance_id, lock=True)
    if instance is None:
        raise not_found(f"instance {instance_id!r}")
    persona = await personas_q.get(s, persona_name)
    if persona is None:
        raise not_found(f"persona {persona_name!r}")
    pinned = version or persona.latest_version
    stored = await personas_q.get_version(s, persona_name, pinned)
    if stored is None:
        raise not_found(f"version {pinned} of persona {persona_name!r}")
    # What the instance will be asked to run, so the record says which hash it wants.
    ref = ActivationRef(activation_id, persona_name, pinned)
    choice = fleet.choice(Member(instance.tags, ref))
    effective = resolve.compose_choice(
        choice,
        fleet.personas,
        fleet.bindings,
        {
            (persona_name, pinned): PersonaDoc(
                persona_name, pinned, stored.content_hash, stored.document
            )
        },
    )
    if effective.error:
        raise ApiError(
            422, "unresolvable", f"cannot activate {persona_name!r} v{pinned}: {effective.error}"
        )
    effective, _capped = fleet.with_policy(effective, dict(instance.tags))
    superseded = await q.close_open(s, instance_id, "superseded", tx.now)
    row = await q.create(
        s,
        activation_id=activation_id,
        instance_id=instance_id,
        persona=persona_name,
        version=pinned,
        desired_hash=effective.hash,
        actor=actor,
        now=tx.now,
    )
    await instances_q.set_activation(s, instance_id, activation_id)
    tx.audit(
        actor,
        "activation.create",
        instance_id=instance_id,
        persona=persona_name,
        activation_id=activation_id,
        version=pinned,
        desired_hash=effective.hash,
        superseded=superseded,
        **audit,
    )
    tx.changed("instance", instance_id)
    return row


async def clear(
    tx: Tx, instance_id: str, actor: str, *, only: str | None = None, **audit: Any
) -> bool:
    """Drop the instance's explicit activation (only activation ``only`` when given);
    ApiError 404 when the instance is not there. True when one was dropped."""
    instance = await instances_q.get(tx.session, instance_id, lock=True)
    if instance is None:
        raise not_found(f"instance {instance_id!r}")
    if instance.activation_id is None or only not in (None, instance.activation_id):
        return False
    cancelled = await q.close_open(tx.session, instance_id, "cancelled", tx.now)
    await instances_q.set_activation(tx.session, instance_id, None)
    tx.audit(
        actor,
        "activation.clear",
        instance_id=instance_id,
        activation_id=instance.activation_id,
        cancelled=cancelled,
        **audit,
    )
    tx.changed("instance", instance_id)
    return True
