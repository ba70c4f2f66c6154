"""Rendering dashboard pages: the Jinja2 environment (autoescaping everything), the route
class that turns a missing session into a redirect to sign-in and an API refusal into an
HTML error page, and the small formatting filters the templates share.

Used by every page module of :mod:`mien.server.ui`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mien.server.errors import ApiError
from mien.server.ui.sessions import LEASES, PERSONAS, READ, VERIFY, WRITE, Session, SignIn

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SECURITY_HEADERS = {
    # Only this server's own files run or load; inline scripts and handlers never do, so
    # markup slipped into a name cannot execute even if escaping were ever missed.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(value: datetime | str | float | None) -> str:
    if value is None:
        return "never"
    if isinstance(value, int | float):  # the orchestrator's times are epoch seconds
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):  # audit records keep their time as text
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(value: str | None, size: int = 12) -> str:
    if not value:
        return "–"
    text = value.split(":", 1)[-1]
    return text[:size]


def query(**params: Any) -> str:
    """A query string of the non-empty parameters (lists repeat their key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None or value == "":
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, str(item)))
    return ("?" + urlencode(pairs)) if pairs else ""


ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=True,  # every value is escaped unless a template says otherwise
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["when"] = when
ENV.filters["short"] = short
ENV.filters["path"] = lambda v: quote(str(v), safe="")
ENV.globals["query"] = query


def html(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = ENV.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def page(session: Session | None, template: str, status: int = 200, **context: Any) -> Response:
    """A full page: the template with the navigation, the session's CSRF token and what
    its role may do."""
    caps = {
        "read": session is not None and session.may(READ),
        "personas": session is not None and session.may(PERSONAS),
        "write": session is not None and session.may(WRITE),
        "verify": session is not None and session.may(VERIFY),
        "leases": session is not None and session.may(LEASES),
    }
    return html(template, status, session=session, can=caps, **context)


def refusal(session: Session | None, exc: ApiError) -> Response:
    return page(session, "error.html", exc.status, error=exc)


class UiRoute(APIRoute):
    """A dashboard route: no session → the sign-in page (GET) or 403 (POST); an
    :class:`ApiError` → the error page with its status and message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignIn:
                if request.method in ("GET", "HEAD"):
                    target = request.url.path + (
                        "?" + request.url.query if request.url.query else ""
                    )
                    return RedirectResponse("/ui/login" + query(next=target), status_code=303)
                return refusal(None, ApiError(403, "unauthorized", "sign in first"))
            except ApiError as exc:
                return refusal(getattr(request.state, "ui_session", None), exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                text = f"{where}: {first.get('msg', 'invalid request')}"
                return refusal(
                    getattr(request.state, "ui_session", None),
                    ApiError(422, "invalid_request", text),
                )
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return wrapped
