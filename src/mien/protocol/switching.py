"""Switching personas on behalf of a person: who may use a persona, and the wire types of
the agent's local API and of the server's switch endpoints.

Shared by the agent's local API (:mod:`mien.agent.local_api`), the server's
``/instances/{id}/switchable`` and ``/instances/{id}/activations`` routes
(:mod:`mien.server.api.switching`) and their clients (:mod:`mien.client.switching`,
:mod:`mien.client.local`), so the rule "who may switch to what" is written once.

Until the fleet has its own switch policy, a persona's ``access_controls.users`` decides:
it lists user names and ``group:NAME`` entries; a person may use the persona when their
name or one of their groups is listed. Which groups: the person's Unix groups on a machine
without a server (the agent's check), the server's own groups (``mien group add``) on the
server, as for the broker's leases (:mod:`mien.server.broker.identity`). A persona that lists nobody may be switched to only
by root (locally) or by an operator (through the fleet API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import Field

from mien.protocol.base import Name, RequestModel, WireModel

USER_PATTERN = r"^[a-z_][a-z0-9_.-]{0,31}\$?$"
"""A POSIX user or group name, as useradd accepts it."""


def listed_users(document: Mapping[str, Any] | None) -> list[str]:
    """``access_controls.users`` of a persona document (canonical form), else ``[]``."""
    controls = (document or {}).get("access_controls") or {}
    users = controls.get("users") if isinstance(controls, Mapping) else None
    return [u for u in users if isinstance(u, str)] if isinstance(users, list) else []


def admits(listed: Sequence[str], user: str, groups: Iterable[str]) -> bool:
    """Whether ``listed`` (``access_controls.users``) names ``user`` or, as ``group:NAME``,
    one of ``groups``. Which groups those are is the caller's: the person's Unix groups on a
    machine without a server, the server's groups on the server
    (:mod:`mien.server.broker.identity`)."""
    return user in listed or any(f"group:{g}" in listed for g in groups)


def refusal(document: Mapping[str, Any] | None, user: str, groups: Iterable[str]) -> str | None:
    """Why ``user`` (a member of ``groups``) may not use the persona, or ``None`` if they may."""
    listed = listed_users(document)
    if admits(listed, user, groups):
        return None
    if not listed:
        return "its access_controls.users lists nobody (only root or an operator may switch to it)"
    return f"{user!r} is not in its access_controls.users ({', '.join(listed)})"


class Requester(RequestModel):
    """The person a switch is for, as the agent learnt it from the kernel."""

    user: str = Field(pattern=USER_PATTERN)
    groups: list[str] = Field(default_factory=list, max_length=256)


class SwitchRequest(RequestModel):
    """``POST /instances/{id}/activations`` with an agent token: run ``persona`` on this
    instance because ``requested_by`` asked for it on the machine."""

    persona: Name
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    requested_by: Requester


class Candidate(WireModel):
    """A persona and whether the person asking may switch to it."""

    name: str
    version: int | None = None
    display_name: str | None = None
    description: str | None = None
    allowed: bool
    reason: str | None = None  # why not, when not allowed


class Candidates(WireModel):
    items: list[Candidate]


class PersonaDocument(WireModel):
    """What switching to a persona would apply on the instance (the composed document)."""

    name: str
    version: int | None = None
    hash: str | None = None
    document: dict[str, Any]
    allowed: bool
    reason: str | None = None


# --- the agent's local API (HTTP over ROOT/run/mien/agent.sock) ------------------------


class LocalRequest(WireModel):
    """A request on the socket. Unknown fields are ignored: nothing a client sends can
    name who it is (a ``user`` or ``uid`` field is dropped; the kernel says who calls)."""


class Caller(WireModel):
    """Who the agent thinks is calling (from SO_PEERCRED) and what that allows."""

    uid: int
    user: str
    groups: list[str]
    root: bool
    persona_user: str | None = None  # whose customizations this machine keeps
    owns_customizations: bool
    fleet: str | None = None  # the server, on a fleet machine


class LocalSwitch(LocalRequest):
    persona: Name
    wait: float = Field(default=60.0, ge=0, le=600)


class LocalRollback(LocalRequest):
    to: int | None = Field(default=None, ge=0, le=2**31 - 1)
    wait: float = Field(default=60.0, ge=0, le=600)


class LocalPreview(LocalRequest):
    persona: Name


class LocalCustomize(LocalRequest):
    key: str = Field(min_length=1, max_length=512)
    value: Any = None
    unset: bool = False


class PlanLine(WireModel):
    handler: str
    action: str
    target: str
    detail: str = ""


class Preview(WireModel):
    persona: str
    active: str | None
    changes: int
    lines: list[PlanLine]
    notes: list[str] = Field(default_factory=list)


class Outcome(WireModel):
    """What a switch, rollback or customization did."""

    ok: bool
    message: str
    active: str | None = None
    changes: int = 0
    activation_id: str | None = None


class LocalHistoryEntry(WireModel):
    id: int
    persona: str | None
    kind: str
    applied_at: float
    note: str | None = None
    current: bool = False
    may_roll_back: bool = False


class LocalCustomization(WireModel):
    key: str
    value: Any
    source: str
