"""Who may use a persona on the server: ``access_controls.users`` lists user names and
``group:NAME`` entries, and on the server a group is one it keeps
(:mod:`mien.server.store.groups`, ``mien group add``), never a Unix group a machine reports.

Used by the broker (:func:`may_request`: who may ask for a lease) and by the switch routes
(:func:`switch_refusal`: who may switch a fleet machine), so both read ``group:NAME`` the
same way through :func:`listed`. The agent's own check on a machine without a server reads
it as a Unix group (:func:`mien.protocol.switching.refusal`, docs/switching.md).

A ``user`` token names a person (the token's name). For a lease, an empty list admits every
person; an admin token is always admitted (it could change the list anyway); agent tokens
never.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mien.protocol.switching import admits, refusal
from mien.server.auth import Principal
from mien.server.store import groups as groups_q

GROUP_PREFIX = "group:"


async def groups_of(s: AsyncSession, person: str) -> set[str]:
    """The server groups ``person`` belongs to: what ``group:NAME`` means on the server."""
    return await groups_q.of_user(s, person)


async def listed(s: AsyncSession, users: Sequence[str], person: str) -> bool:
    """Whether ``person`` is named in ``users`` or belongs to a server group listed there."""
    return admits(users, person, await groups_of(s, person))


async def may_request(s: AsyncSession, who: Principal, users: Sequence[str]) -> bool:
    if who.role == "agent":
        return False
    if who.role == "admin" or not users:
        return True
    return await listed(s, users, who.name)


async def switch_refusal(
    s: AsyncSession, document: Mapping[str, Any] | None, person: str
) -> str | None:
    """Why ``person`` may not switch a fleet machine to the persona, or ``None``: the
    switch rule (:func:`mien.protocol.switching.refusal`) with the person's server groups."""
    return refusal(document, person, await groups_of(s, person))


def may_manage(who: Principal, holder: str) -> bool:
    """The holder of a lease, or an admin, may see, use and release it."""
    return who.role != "agent" and (who.name == holder or who.role == "admin")
