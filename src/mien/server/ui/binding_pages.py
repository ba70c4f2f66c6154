"""The dashboard's binding pages: the list in decision order, a form to create one, and
one binding's form to change its selector, persona, priority and description (or delete it).

Writes go through the API's own route functions (:mod:`mien.server.api.bindings`: the same
validation, optimistic concurrency, audit record and change notification), after the same
operator role check and the session's CSRF token. A created or changed binding leads to
its rollout page, where the instances it selects are followed live.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from mien.protocol import BindingIn
from mien.server.api import bindings as bindings_api
from mien.server.api import personas as personas_api
from mien.server.api.deps import NAME_RE, get_state
from mien.server.errors import ApiError
from mien.server.ui import sessions as ui
from mien.server.ui.render import UiRoute, page

router = APIRouter(route_class=UiRoute, include_in_schema=False)

NamePath = Annotated[str, Path(pattern=NAME_RE)]


def selector_text(selector: dict[str, Any]) -> str:
    """``role=web, env=a|b, gpu=*``: the selector as the form shows it."""
    parts = []
    for key, value in selector.items():
        shown = "|".join(value) if isinstance(value, list) else str(value)
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def parse_selector(text: str) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    for item in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ApiError(
                422, "invalid_binding", f"selector: {item!r} is not KEY=VALUE (a|b, or *)"
            )
        value = value.strip()
        selector[key.strip()] = value.split("|") if "|" in value else value
    return selector


def _body(
    fields: dict[str, str], override: dict[str, Any] | None, mode: str = "replace"
) -> BindingIn:
    try:
        priority = int(fields.get("priority", "0") or "0")
    except ValueError:
        raise ApiError(422, "invalid_binding", "priority: give a whole number") from None
    try:
        return BindingIn(
            name=fields.get("name", "").strip(),
            selector=parse_selector(fields.get("selector", "")),
            persona=fields.get("persona", "").strip(),
            override=override,
            priority=priority,
            description=fields.get("description", "").strip() or None,
            mode=fields.get("mode") or mode,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, "invalid_binding", f"{where}: {first['msg']}") from None


async def _persona_names(request: Request, session: ui.Session) -> list[str]:
    listing = await personas_api.list_personas(
        get_state(request), session.principal, limit=1000, after=None, include_deleted=False
    )
    return [p.name for p in listing.items]


@router.get("/bindings")
async def bindings(request: Request) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)
    listing = await bindings_api.list_bindings(get_state(request), session.principal)
    return page(
        session,
        "bindings.html",
        bindings=listing.items,
        selector_text=selector_text,
        personas=await _persona_names(request, session),
        form={},
        error=None,
    )


@router.post("/bindings")
async def create(request: Request) -> Response:
    session = await ui.current(request)
    fields = await ui.checked_form(request, session)
    ui.require(session, ui.WRITE)
    state = get_state(request)
    try:
        body = _body(fields, None)
        row = await bindings_api.create_binding(body, Response(), state, session.principal)
    except ApiError as exc:
        listing = await bindings_api.list_bindings(state, session.principal)
        return page(
            session,
            "bindings.html",
            exc.status,
            bindings=listing.items,
            selector_text=selector_text,
            personas=await _persona_names(request, session),
            form=fields,
            error=exc.detail,
        )
    return RedirectResponse(f"/ui/rollouts/binding/{row.name}", status_code=303)


@router.get("/bindings/{name}")
async def binding(request: Request, name: NamePath) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)
    row = await bindings_api.get_binding(name, Response(), get_state(request), session.principal)
    return page(
        session,
        "binding.html",
        binding=row,
        selector=selector_text(row.selector),
        personas=await _persona_names(request, session),
        error=None,
    )


@router.post("/bindings/{name}")
async def update(request: Request, name: NamePath) -> Response:
    session = await ui.current(request)
    fields = await ui.checked_form(request, session)
    ui.require(session, ui.WRITE)
    state = get_state(request)
    current = await bindings_api.get_binding(name, Response(), state, session.principal)
    try:
        body = _body({**fields, "name": name}, current.override, current.mode)
        await bindings_api.update_binding(
            name, body, Response(), state, session.principal, if_match=fields.get("etag") or None
        )
    except ApiError as exc:
        return page(
            session,
            "binding.html",
            exc.status,
            binding=current,
            selector=fields.get("selector", ""),
            personas=await _persona_names(request, session),
            error=exc.detail,
        )
    return RedirectResponse(f"/ui/rollouts/binding/{name}", status_code=303)


@router.post("/bindings/{name}/delete")
async def delete(request: Request, name: NamePath) -> Response:
    session = await ui.current(request)
    await ui.checked_form(request, session)
    ui.require(session, ui.WRITE)
    await bindings_api.delete_binding(name, get_state(request), session.principal)
    return RedirectResponse("/ui/bindings", status_code=303)
