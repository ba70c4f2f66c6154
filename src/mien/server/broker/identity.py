"""Who may ask for an application persona: ``access_controls.users`` lists user names and
``group:NAME`` entries (groups are kept by the server, :mod:`mien.server.store.groups`).

A ``user`` token names a person (the token's name). An empty list admits every person;
an admin token is always admitted (it could change the list anyway); agent tokens never.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.auth import Principal
from mien.server.store import groups as groups_q

GROUP_PREFIX = "group:"


async def may_request(s: AsyncSession, who: Principal, users: Sequence[str]) -> bool:
    if who.role == "agent":
        return False
    if who.role == "admin" or not users:
        return True
    if who.name in users:
        return True
    wanted = {u[len(GROUP_PREFIX) :] for u in users if u.startswith(GROUP_PREFIX)}
    if not wanted:
        return False
    return bool(wanted & await groups_q.of_user(s, who.name))


def may_manage(who: Principal, holder: str) -> bool:
    """The holder of a lease, or an admin, may see, use and release it."""
    return who.role != "agent" and (who.name == holder or who.role == "admin")
