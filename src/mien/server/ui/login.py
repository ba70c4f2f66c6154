"""Signing in to the dashboard with an API token, and signing out.

The sign-in form is protected against cross-site posting by a nonce in a ``SameSite=Strict``
cookie that the form must repeat (there is no session yet to hold a CSRF token). Agent and
enrollment tokens are refused: the dashboard is for people.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from mien.server.auth import hash_secret
from mien.server.errors import ApiError
from mien.server.ui import sessions as ui
from mien.server.ui.render import UiRoute, html

router = APIRouter(route_class=UiRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a dashboard path is a place to go after sign-in (never another site)."""
    if target and (target == "/ui" or target.startswith(("/ui/", "/ui?"))):
        if "\\" not in target and "\r" not in target and "\n" not in target:
            return target
    return "/ui/"


def _form(request: Request, status: int, error: str | None, target: str) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = html("login.html", status, nonce=nonce, error=error, next=target)
    ui.set_cookie(request, response, ui.LOGIN_COOKIE, nonce, 600)
    return response


@router.get("/login")
async def login_page(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    return _form(request, 200, None, _safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await ui.form(request)
    ui.check_csrf(request.cookies.get(ui.LOGIN_COOKIE), fields)
    target = _safe_next(fields.get("next"))
    token = fields.get("token", "").strip()
    if not token:
        return _form(request, 400, "give a token", target)
    digest = hash_secret(token)
    try:
        principal = await request.app.state.mien.tokens.principal_by_hash(digest)
    except ApiError as exc:
        return _form(request, exc.status, exc.detail, target)
    if principal.role == "agent":
        return _form(request, 403, "agent tokens are for agents; sign in with an API token", target)
    session = ui.sessions(request).create(digest, principal)
    response = RedirectResponse(target, status_code=303)
    ui.set_cookie(request, response, ui.COOKIE, session.id, ui.SESSION_SECONDS)
    ui.clear_cookie(request, response, ui.LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await ui.current(request)
    await ui.checked_form(request, session)
    ui.sessions(request).drop(session.id)
    response = RedirectResponse("/ui/login", status_code=303)
    ui.clear_cookie(request, response, ui.COOKIE)
    return response
