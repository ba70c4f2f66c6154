"""The switch calls an agent makes on a person's behalf (``/instances/{id}/switchable`` and
``/instances/{id}/activations``), as :class:`~mien.client._http.Call` values an
:class:`~mien.client.AgentClient` sends. Used by :mod:`mien.agent.local_api` on a fleet
machine."""

from __future__ import annotations

from collections.abc import Sequence

from mien.client._http import API, Call, as_json, build, model, segment
from mien.protocol import Activation
from mien.protocol.switching import Candidates, PersonaDocument, SwitchRequest


def _who(user: str, groups: Sequence[str]) -> list[tuple[str, str]]:
    return [("user", user), *(("group", g) for g in groups)]


def switchable(instance_id: str, user: str, groups: Sequence[str]) -> Call[Candidates]:
    return Call(
        "GET",
        f"{API}/instances/{segment(instance_id)}/switchable",
        model(Candidates),
        params=_who(user, groups),
    )


def document(
    instance_id: str, persona: str, user: str, groups: Sequence[str]
) -> Call[PersonaDocument]:
    return Call(
        "GET",
        f"{API}/instances/{segment(instance_id)}/switchable/{segment(persona)}",
        model(PersonaDocument),
        params=_who(user, groups),
    )


def request_switch(
    instance_id: str, persona: str, user: str, groups: Sequence[str]
) -> Call[Activation]:
    body = build(
        SwitchRequest,
        {"persona": persona, "requested_by": {"user": user, "groups": list(groups)}},
    )
    return Call(
        "POST",
        f"{API}/instances/{segment(instance_id)}/activations",
        model(Activation),
        json=as_json(body),
    )
