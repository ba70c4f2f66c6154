"""Dashboard sessions: sign-in with an API token, a session cookie, CSRF tokens, roles.

Used by every page of :mod:`mien.server.ui`. Signing in with a token creates a server-side
session (kept in this replica's memory: a restart signs everyone out) that remembers the
token's hash, never its secret; every request checks the token again through the same
:class:`~mien.server.auth.TokenCache` the API uses, so revoking or expiring a token ends
its sessions at once. The cookie is ``HttpOnly``, ``SameSite=Strict``, limited to ``/ui``,
and ``Secure`` when the dashboard is served over TLS.

Every form carries the session's CSRF token; every POST checks it (403 without it). The
sign-in form, before any session exists, is protected by a double-submit nonce cookie.
Roles are checked with :func:`mien.server.auth.permitted`, with the same role lists as the
API routes (:data:`READ`, :data:`PERSONAS`, :data:`WRITE`, :data:`VERIFY`).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request, Response

from mien.server.auth import Principal, permitted
from mien.server.errors import ApiError

COOKIE = "mien_session"
LOGIN_COOKIE = "mien_login"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
FORM_LIMIT = 64 * 1024

# The role lists of the API routes each page stands for (see mien.server.api.deps).
READ = ("viewer",)  # Viewer: instances, fleet summary, activations, bindings, audit
PERSONAS = ("viewer", "user")  # Reader: personas, versions, diffs
WRITE = ("operator",)  # Operator: bindings create/update/delete
VERIFY = ("admin",)  # Admin: audit chain verification
LEASES = ("viewer", "user")  # the broker's Person: leases (a person sees only their own)


class SignIn(Exception):
    """No valid session: a page answers with a redirect to the sign-in page."""


@dataclass
class Session:
    id: str
    digest: str
    csrf: str
    expires: float
    principal: Principal

    def may(self, roles: tuple[str, ...]) -> bool:
        return permitted(self.principal, roles)


class Sessions:
    """This replica's dashboard sessions, by cookie value."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_id: dict[str, Session] = {}
        self._clock = clock

    def create(self, digest: str, principal: Principal) -> Session:
        now = self._clock()
        if len(self._by_id) >= MAX_SESSIONS:
            for key in [k for k, s in self._by_id.items() if s.expires <= now]:
                del self._by_id[key]
            if len(self._by_id) >= MAX_SESSIONS:  # still full: the oldest goes
                oldest = min(self._by_id.values(), key=lambda s: s.expires)
                del self._by_id[oldest.id]
        session = Session(
            id=secrets.token_urlsafe(32),
            digest=digest,
            csrf=secrets.token_urlsafe(32),
            expires=now + SESSION_SECONDS,
            principal=principal,
        )
        self._by_id[session.id] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._by_id[sid]
            return None
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def __len__(self) -> int:
        return len(self._by_id)


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.mien_ui_sessions
    return found


async def current(request: Request) -> Session:
    """The signed-in session, its token checked again now; :class:`SignIn` if none."""
    store = sessions(request)
    session = store.get(request.cookies.get(COOKIE))
    if session is None:
        raise SignIn()
    try:
        session.principal = await request.app.state.mien.tokens.principal_by_hash(session.digest)
    except ApiError:
        store.drop(session.id)  # revoked or expired since sign-in
        raise SignIn() from None
    request.state.ui_session = session  # for the error page's navigation
    return session


def require(session: Session, roles: tuple[str, ...]) -> None:
    """The API's refusal, word for word, when the session's role may not do this."""
    if not session.may(roles):
        who = session.principal
        raise ApiError(
            403,
            "forbidden",
            f"token {who.name!r} has role {who.role!r}; this needs "
            + " or ".join(repr(r) for r in roles),
        )


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind the pages send)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}  # no form, so no CSRF token either: refused by the check that follows
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise ApiError(413, "too_large", f"a form is at most {FORM_LIMIT} bytes")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_body", "the form is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=100))


def check_csrf(expected: str | None, fields: dict[str, str]) -> None:
    """403 unless the form's ``csrf`` field is the expected token."""
    given = fields.get("csrf", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "csrf", "the form's CSRF token is missing or wrong; reload the page")


async def checked_form(request: Request, session: Session) -> dict[str, str]:
    fields = await form(request)
    check_csrf(session.csrf, fields)
    return fields


def set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
