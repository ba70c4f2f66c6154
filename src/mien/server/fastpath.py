"""The agent protocol's two hot endpoints without the framework: the long-poll
(``GET /api/v1/agent/desired``) and reports (``POST /api/v1/agent/report``).

Every agent of the fleet holds a long-poll open, after a restart all of them arrive at
once, and in a rollout each sends two reports. Through FastAPI each request costs routing
among every route (a third of a report's CPU, measured), dependency solving, five
middlewares, request and response objects, and while a long-poll is parked the frames of
all of those: with ``bench/fleet_bench.py``, most of the server's CPU in a reconnect storm
and much of its memory per parked agent. :class:`AgentFastPath` sits in front of the
application and answers a well-formed request itself, with the same logic (:func:`answer`,
the report writer), the same errors and the same metrics. Anything it does not recognise
at a glance (another path, an odd query, a body that does not validate) goes to the
application, which answers as before (a 422 names the bad field).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import orjson
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.types import Message, Receive, Scope, Send

from mien.protocol import AgentReport
from mien.server.api.views import ensure_cached
from mien.server.auth import Principal
from mien.server.errors import ApiError, json_number_problems
from mien.server.state import ServerState
from mien.server.store import commands as commands_q

log = logging.getLogger("mien.server")

DESIRED = "/api/v1/agent/desired"
REPORT = "/api/v1/agent/report"


def deleted(instance_id: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        f"instance {instance_id!r} was deleted and its token revoked; enroll again",
        headers={"WWW-Authenticate": 'Bearer realm="mien"'},
    )


def shutting_down(state: ServerState) -> ApiError:
    state.metrics.longpolls.labels("shutdown").inc()
    return ApiError(
        503, "shutting_down", "the server is restarting; reconnect", headers={"Retry-After": "1"}
    )


async def _with_commands(state: ServerState, instance_id: str) -> bytes | None:
    """Hand the instance its queued commands (at most once), with its desired state."""
    state.fleet.pending_commands.discard(instance_id)
    async with state.transaction() as tx:
        rows = await commands_q.claim(
            tx.session, instance_id, now=tx.now, grace=state.settings.command_result_grace
        )
    if not rows:
        return None
    desired = state.fleet.desired(instance_id)
    if desired is None:
        return None
    commands = [
        {"id": r.id, "command": r.command, "args": r.args, "timeout": r.timeout} for r in rows
    ]
    return orjson.dumps({**desired.payload, "commands": commands})


async def answer(
    state: ServerState, iid: str, known: str | None, wait: float | None
) -> bytes | None:
    """The long-poll of instance ``iid``: the desired state's bytes as soon as it differs
    from ``known`` (or commands wait), ``None`` when ``wait`` runs out."""
    fleet = state.fleet
    settings = state.settings
    fleet.seen[iid] = state.clock()
    if iid not in fleet.members:
        try:
            await ensure_cached(state, iid)
        except ApiError:
            raise deleted(iid) from None
    loop = asyncio.get_running_loop()
    timeout = min(
        settings.longpoll_default_wait if wait is None else wait, settings.longpoll_max_wait
    )
    if timeout > 2:
        # Up to 10% early, so that agents that connected together do not all come back
        # together at every timeout.
        timeout *= 1 - random.random() * 0.1
    deadline = loop.time() + timeout
    while True:
        if state.shutting_down:
            raise shutting_down(state)
        if iid in fleet.pending_commands:
            body = await _with_commands(state, iid)
            if body is not None:
                state.metrics.longpolls.labels("commands").inc()
                return body
        desired = fleet.desired(iid)
        if desired is None:
            raise deleted(iid)
        if desired.state != known:
            state.metrics.longpolls.labels("changed").inc()
            return desired.body
        remaining = deadline - loop.time()
        if remaining <= 0:
            fleet.seen[iid] = state.clock()
            state.metrics.longpolls.labels("unchanged").inc()
            return None
        # The waiter's future itself, not a coroutine around it: while parked, a long-poll
        # holds only this frame and its caller's (see AgentFastPath).
        await fleet.waiters.park(iid, remaining, known)


def _query(raw: bytes) -> tuple[str | None, float | None] | None:
    """``known`` and ``wait`` when the query is plainly valid; ``None`` otherwise."""
    known: str | None = None
    wait: float | None = None
    try:
        pairs = parse_qsl(raw.decode("ascii"), strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        return None
    names = [name for name, _v in pairs]
    if len(names) != len(set(names)):
        return None
    for name, value in pairs:
        if name == "known" and len(value) <= 64:
            known = value
        elif name == "wait":
            try:
                wait = float(value)
            except ValueError:
                return None
            if not (math.isfinite(wait) and 0 <= wait <= 3600):
                return None
        else:
            return None
    return known, wait


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` again (to hand a read request to the app)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _error(exc: Exception) -> tuple[int, bytes, dict[str, str]]:
    """The application's answer to ``exc`` (see :func:`mien.server.errors.install`)."""
    if isinstance(exc, ApiError):
        problems = [p.model_dump() for p in exc.problems]
        body = {"detail": exc.detail, "code": exc.code, "problems": problems}
        return exc.status, orjson.dumps(body), exc.headers
    if isinstance(exc, IntegrityError):
        log.warning("integrity error: %s", exc.orig)
        detail = "the change conflicts with data written at the same time; retry"
        return 409, orjson.dumps({"detail": detail, "code": "conflict", "problems": []}), {}
    if isinstance(exc, (DBAPIError, OSError)):
        log.error("database error: %s", exc)
        body = {
            "detail": "the database is unavailable; retry later",
            "code": "database_unavailable",
            "problems": [],
        }
        return 503, orjson.dumps(body), {"Retry-After": "2"}
    log.exception("unexpected error", exc_info=exc)
    body = {"detail": "internal server error (logged on the server)", "code": "internal_error"}
    return 500, orjson.dumps({**body, "problems": []}), {}


async def _agent(state: ServerState, authorization: str | None) -> Principal:
    principal = await state.tokens.principal(authorization)
    if principal.role != "agent" or principal.instance_id is None:
        raise ApiError(
            403,
            "forbidden",
            f"token {principal.name!r} has role {principal.role!r}; this needs 'agent'",
        )
    return principal


class AgentFastPath:
    """Answers well-formed long-polls and reports without the framework.

    Not a middleware: the application (:class:`mien.server.app.MienApp`) asks
    :meth:`route` first and hands back what it returns, so a parked long-poll holds two
    frames of ours (:meth:`_desired`, :func:`answer`) instead of the dozen a middleware
    stack adds; at ten thousand parked agents that is tens of MiB.
    """

    def __init__(
        self,
        fallback: Callable[[Scope, Receive, Send], Awaitable[None]],
        state: Callable[[], ServerState],
    ) -> None:
        self.app = fallback
        self.state = state

    def route(self, scope: Scope) -> Callable[[Scope, Receive, Send], Awaitable[None]] | None:
        """The handler of ``scope`` when it is one of ours, else ``None``."""
        if scope["type"] == "http":
            if scope["path"] == DESIRED and scope["method"] == "GET":
                return self._desired
            if scope["path"] == REPORT and scope["method"] == "POST":
                return self._report
        return None

    async def _timed(
        self, path: str, method: str, send: Send, work: Awaitable[tuple[int, bytes, dict[str, str]]]
    ) -> None:
        start = time.perf_counter()
        try:
            status, body, headers = await work
        except Exception as exc:
            status, body, headers = _error(exc)
        await self._finish(path, method, send, start, status, body, headers)

    async def _finish(
        self,
        path: str,
        method: str,
        send: Send,
        start: float,
        status: int,
        body: bytes,
        headers: dict[str, str],
    ) -> None:
        try:
            await _send(send, status, body, headers)
        finally:
            self.state().metrics.latency.labels(method, path, str(status)).observe(
                time.perf_counter() - start
            )

    async def _desired(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name in (b"content-length", b"transfer-encoding") and value != b"0":
                await self.app(scope, receive, send)  # a body on a GET: the long way
                return
        query = _query(scope.get("query_string", b""))
        if query is None:
            await self.app(scope, receive, send)
            return
        # Inline rather than through _timed: this frame is what a parked long-poll holds.
        start = time.perf_counter()
        state = self.state()
        headers: dict[str, str] = {}
        try:
            principal = await _agent(state, authorization)
            assert principal.instance_id is not None
            body = await answer(state, principal.instance_id, *query)
            status = 200 if body is not None else 204
        except Exception as exc:
            status, body, headers = _error(exc)
        await self._finish(DESIRED, "GET", send, start, status, body or b"", headers)

    async def _report(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state()
        authorization: str | None = None
        length: int | None = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                length = int(value)
            elif name == b"content-type":
                json_body = value.split(b";")[0].strip().lower() == b"application/json"
            elif name == b"transfer-encoding":
                length = None
                break
        if length is None or length > state.settings.max_body_bytes or not json_body:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > length or not message.get("more_body", False):
                break
        try:
            report = AgentReport.model_validate_json(body)
            history = [h.model_dump(mode="json") for h in report.history or ()]
        except ValueError:
            report = None
        if report is None or len(body) != length or json_number_problems(history, "report"):
            await self.app(scope, _replay(body, receive), send)
            return
        await self._timed(REPORT, "POST", send, self._store(authorization, report))

    async def _store(
        self, authorization: str | None, report: AgentReport
    ) -> tuple[int, bytes, dict[str, str]]:
        state = self.state()
        principal = await _agent(state, authorization)
        assert principal.instance_id is not None
        state.fleet.seen[principal.instance_id] = state.clock()
        if state.shutting_down:
            raise shutting_down(state)
        ack = await state.reports.submit(principal, report)
        return 200, ack.model_dump_json().encode(), {}


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if status != 204:
        raw.append((b"content-type", b"application/json"))
        raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
