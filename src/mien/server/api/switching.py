"""Switching on a person's behalf: what an agent asks when someone on its machine wants
another persona.

* ``GET /instances/{id}/switchable?user=alice&group=dev`` — every persona, with whether
  that person may switch this instance to it (and why not).
* ``GET /instances/{id}/switchable/{name}?user=…`` — the composed document a switch would
  apply (the agent plans it locally for a preview).
* ``POST /instances/{id}/activations`` — record an activation "requested by alice on vm-3",
  so the desired state follows the switch instead of reverting it; 403 with the reason when
  the persona's ``access_controls`` do not admit that person.

Only the instance's own agent token may call these: the agent vouches for the person (it
read their identity from the kernel, see :mod:`mien.agent.local_api`). Two checks, both
must admit the person: the persona's ``access_controls.users``, its ``group:NAME`` entries
read as the server's groups (``mien group add``), the same as for a lease
(:func:`mien.server.broker.identity.switch_refusal`); and, when the fleet policy has a
``switching`` list, an entry covering this instance that names the person (or one of
their server groups) and the persona (:func:`mien.server.policy.switch_refusal`). The Unix
groups the agent reports do not count here. A refused switch is a 403, audited as
``activation.refused``. Operators keep ``POST …/personas/{name}/activate``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from mien.protocol import Activation, ErrorBody
from mien.protocol.switching import (
    USER_PATTERN,
    Candidate,
    Candidates,
    PersonaDocument,
    SwitchRequest,
    refusal,
)
from mien.server import policy as policies
from mien.server import resolve
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import INSTANCE_RE, NAME_RE, OwnAgent, State
from mien.server.broker import identity
from mien.server.errors import ApiError, not_found
from mien.server.fleet import Member
from mien.server.reports import activation_model
from mien.server.resolve import ActivationRef, Effective, PersonaDoc
from mien.server.state import ServerState
from mien.server.store import activations as q
from mien.server.store import instances as instances_q

router = APIRouter(
    route_class=CheckedRoute,
    tags=["switching"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "not this instance's agent, or not allowed"},
    },
)

User = Annotated[str, Query(pattern=USER_PATTERN, description="the person on the machine")]
Groups = Annotated[
    list[str],
    Query(
        alias="group",
        max_length=256,
        description="their Unix groups (repeat); accepted and not used: on the server, "
        "group:NAME in access_controls.users is a server group (mien group add)",
    ),
]


def _effective(state: ServerState, tags: dict[str, str], doc: PersonaDoc) -> Effective:
    """What an activation of ``doc`` would make this instance run (bindings' overrides
    included), as ``POST …/activate`` computes it."""
    fleet = state.fleet
    ref = ActivationRef("preview", doc.name, doc.version)
    choice = fleet.choice(Member(tags, ref))
    effective = resolve.compose_choice(
        choice, fleet.personas, fleet.bindings, {(doc.name, doc.version): doc}
    )
    return fleet.with_policy(effective, tags)[0]


async def _tags(state: ServerState, instance_id: str) -> dict[str, str]:
    async with state.db.read() as s:
        instance = await instances_q.get(s, instance_id)
    if instance is None:
        raise not_found(f"instance {instance_id!r}")
    return dict(instance.tags)


async def _groups(state: ServerState, user: str) -> set[str]:
    async with state.db.read() as s:
        return await identity.groups_of(s, user)


def _refusal(
    state: ServerState, tags: dict[str, str], doc: PersonaDoc, user: str, groups: set[str]
) -> str | None:
    """Why ``user`` may not switch an instance with ``tags`` to ``doc`` (``None``: may)."""
    why = refusal(doc.document, user, groups)
    if why is None:
        current = state.fleet.policy
        why = policies.switch_refusal(
            current.policy if current else None, tags, user, groups, doc.name
        )
    return why


def _describe(
    state: ServerState, tags: dict[str, str], doc: PersonaDoc, user: str, groups: set[str]
) -> Candidate:
    why = _refusal(state, tags, doc, user, groups)
    return Candidate(
        name=doc.name,
        version=doc.version,
        display_name=doc.document.get("display_name"),
        description=doc.document.get("description"),
        allowed=why is None,
        reason=why,
    )


@router.get(
    "/instances/{instance_id}/switchable",
    response_model=Candidates,
    summary="Personas, and whether this person may switch this instance to each",
)
async def switchable(
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)],
    state: State,
    who: OwnAgent,
    user: User,
    group: Groups = [],  # noqa: B006 (FastAPI reads the default, never mutates it)
) -> Candidates:
    tags = await _tags(state, instance_id)
    docs = sorted((d for d in state.fleet.personas.values() if not d.deleted), key=lambda d: d.name)
    groups = await _groups(state, user)
    return Candidates(items=[_describe(state, tags, d, user, groups) for d in docs])


@router.get(
    "/instances/{instance_id}/switchable/{persona_name}",
    response_model=PersonaDocument,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="The document a switch to this persona would apply on this instance",
)
async def switchable_document(
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)],
    persona_name: Annotated[str, Path(pattern=NAME_RE)],
    state: State,
    who: OwnAgent,
    user: User,
    group: Groups = [],  # noqa: B006
) -> PersonaDocument:
    tags = await _tags(state, instance_id)
    doc = state.fleet.personas.get(persona_name)
    if doc is None or doc.deleted:
        raise not_found(f"persona {persona_name!r}")
    effective = _effective(state, tags, doc)
    if effective.error or effective.data is None:
        raise ApiError(422, "unresolvable", f"cannot compose {persona_name!r}: {effective.error}")
    why = _refusal(state, tags, doc, user, await _groups(state, user))
    return PersonaDocument(
        name=doc.name,
        version=doc.version,
        hash=effective.hash,
        document=effective.data,
        allowed=why is None,
        reason=why,
    )


@router.post(
    "/instances/{instance_id}/activations",
    status_code=202,
    response_model=Activation,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Record a switch a person asked for on the instance (agent token only)",
)
async def request_switch(
    instance_id: Annotated[str, Path(pattern=INSTANCE_RE)],
    body: SwitchRequest,
    response: Response,
    state: State,
    who: OwnAgent,
) -> Activation:
    person = body.requested_by
    activation_id = str(uuid.uuid4())
    async with state.transaction() as tx:
        s = tx.session
        instance = await instances_q.get(s, instance_id, lock=True)
        if instance is None:
            raise not_found(f"instance {instance_id!r}")
        doc = state.fleet.personas.get(body.persona)
        if doc is None or doc.deleted:
            raise not_found(f"persona {body.persona!r}")
        if body.version is not None and body.version != doc.version:
            raise ApiError(
                422,
                "invalid_request",
                f"body.version: a person may switch only to the latest version "
                f"(v{doc.version}) of {body.persona!r}",
            )
        where = instance.hostname or instance_id
        actor = f"{person.user} on {where}"
        why = await identity.switch_refusal(s, doc.document, person.user)
        if why is None:
            current = state.fleet.policy
            why = policies.switch_refusal(
                current.policy if current else None,
                dict(instance.tags),
                person.user,
                await identity.groups_of(s, person.user),
                body.persona,
            )
        if why is not None:
            tx.audit(
                actor,
                "activation.refused",
                instance_id=instance_id,
                persona=body.persona,
                requested_by=person.user,
                reason=why,
                agent=who.name,
                policy_version=state.fleet.policy.version if state.fleet.policy else None,
            )
            refused = ApiError(
                403, "forbidden", f"{person.user} may not switch to {body.persona!r}: {why}"
            )
        else:
            refused = None
            effective = _effective(state, dict(instance.tags), doc)
            if effective.error:
                raise ApiError(
                    422, "unresolvable", f"cannot activate {body.persona!r}: {effective.error}"
                )
            superseded = await q.close_open(s, instance_id, "superseded", tx.now)
            row = await q.create(
                s,
                activation_id=activation_id,
                instance_id=instance_id,
                persona=body.persona,
                version=doc.version,
                desired_hash=effective.hash,
                actor=actor,
                now=tx.now,
            )
            await instances_q.set_activation(s, instance_id, activation_id)
            tx.audit(
                actor,
                "activation.create",
                instance_id=instance_id,
                persona=body.persona,
                activation_id=activation_id,
                version=doc.version,
                desired_hash=effective.hash,
                superseded=superseded,
                requested_by=person.user,
                agent=who.name,
            )
            tx.changed("instance", instance_id)
    if refused is not None:
        raise refused  # after the refusal's audit record committed
    response.headers["Location"] = f"/api/v1/activations/{activation_id}"
    return activation_model(row)
