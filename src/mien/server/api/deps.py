"""Dependencies every route shares: the replica's state and the caller's permission."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from mien.server.auth import Principal, permitted
from mien.server.errors import ApiError
from mien.server.state import ServerState

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
INSTANCE_RE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
UUID_RE = r"^[0-9a-f-]{1,64}$"


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.mien
    return state


async def _state(request: Request) -> ServerState:
    # A coroutine: FastAPI runs a plain function dependency in a worker thread, and that
    # hop cost every request a thread handoff (most of the reconnect storm's waiting).
    return get_state(request)


State = Annotated[ServerState, Depends(_state)]
Limit = Annotated[int, Query(ge=1, le=1000, description="most items in one page")]


def allow(*roles: str, own_instance: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting the given roles (``viewer``/``operator``/``admin`` admit the
    roles above them). ``own_instance``: also admit an agent whose instance is the one in
    the path."""

    async def dependency(
        request: Request,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Principal:
        state = get_state(request)
        principal = await state.tokens.principal(authorization)
        if permitted(principal, roles):
            return principal
        if own_instance and principal.role == "agent":
            wanted = request.path_params.get("instance_id")
            if wanted is not None and wanted == principal.instance_id:
                return principal
            raise ApiError(
                403,
                "forbidden",
                f"this agent token belongs to instance {principal.instance_id!r}; "
                "it may read, report and switch only that instance",
            )
        needs = " or ".join(repr(r) for r in roles) if roles else "the instance's own agent"
        raise ApiError(
            403,
            "forbidden",
            f"token {principal.name!r} has role {principal.role!r}; this needs {needs}",
        )

    return dependency


Viewer = Annotated[Principal, Depends(allow("viewer"))]
Operator = Annotated[Principal, Depends(allow("operator"))]
Admin = Annotated[Principal, Depends(allow("admin"))]
Reader = Annotated[Principal, Depends(allow("viewer", "user"))]
InstanceReader = Annotated[Principal, Depends(allow("viewer", own_instance=True))]
Agent = Annotated[Principal, Depends(allow("agent"))]
# Only the agent of the instance in the path (checked before the request is validated).
OwnAgent = Annotated[Principal, Depends(allow(own_instance=True))]


def etag_matches(if_match: str | None, current: str) -> bool:
    """RFC 9110 If-Match: ``*`` or a list of strong entity tags, one equal to ``current``."""
    if if_match is None:
        return True
    value = if_match.strip()
    if value == "*":
        return True
    for part in value.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            continue  # weak tags never match for If-Match
        if tag == current:
            return True
    return False


def etag(kind: str, version: int, content_hash: str | None = None) -> str:
    """A strong entity tag naming one version: ``"v3-1a2b3c4d5e6f"``."""
    suffix = ""
    if content_hash:
        suffix = "-" + content_hash.split(":", 1)[-1][:12]
    return f'"{kind}{version}{suffix}"'


RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "no token, or an unknown, expired or revoked one"},
    403: {"description": "the token's role (or instance) may not do this"},
}
