"""``mien app shell``: the server's relay between the lease holder and the sandbox host.

* ``WS /broker/leases/{id}/shell`` — the holder (a ``user`` token, the lease's holder or an
  admin; the lease must be ready). Query: ``tty`` (a terminal, default true), ``rows``,
  ``cols``, ``term`` and ``arg`` (repeated: the program; default the login shell).
* ``WS /broker/host/shells/{session}`` — the lease's host (its agent token), after
  ``GET /broker/host/work`` handed it the session.

Refusals come before the handshake is accepted, as an HTTP answer in the API's problem
format (401, 403 and audited, 404, 409 for a lease that is not ready or has ended). The
frames are relayed unchanged (:mod:`mien.protocol.shell`); the lease is renewed while the
shell is open, and its opening and exit status are audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from mien.protocol import shell as wire
from mien.server.api.broker import forbid, lease_for
from mien.server.auth import Principal, permitted
from mien.server.broker import lifecycle
from mien.server.broker.shells import ShellSession
from mien.server.errors import ApiError, error_response
from mien.server.state import ServerState
from mien.server.store import leases as q

log = logging.getLogger("mien.server")
router = APIRouter(prefix="/broker", tags=["broker"])

HOST_ATTACH_TIMEOUT = 20.0
"""Seconds the holder waits for the host to dial in (it polls for work every ~0.5 s)."""
_UUID = re.compile(r"^[0-9a-f-]{1,64}$")
_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def _state(socket: WebSocket) -> ServerState:
    state: ServerState = socket.app.state.mien
    return state


async def _refuse(socket: WebSocket, exc: ApiError) -> None:
    """Answer the handshake with the error (an HTTP response where the server can)."""
    with contextlib.suppress(RuntimeError):
        await socket.send_denial_response(
            error_response(exc.status, exc.code, exc.detail, exc.problems, exc.headers)
        )
        return
    await socket.close(code=1008, reason=exc.detail[:120])  # a server without denial responses


async def _principal(state: ServerState, socket: WebSocket, *roles: str) -> Principal:
    principal = await state.tokens.principal(socket.headers.get("authorization"))
    if not permitted(principal, roles):
        needs = " or ".join(repr(r) for r in roles)
        raise ApiError(
            403,
            "forbidden",
            f"token {principal.name!r} has role {principal.role!r}; this needs {needs}",
        )
    return principal


def _bad(parameter: str, why: str) -> ApiError:
    return ApiError(422, "invalid_request", f"query parameter {parameter}: {why}")


@router.websocket("/leases/{lease_id}/shell")
async def holder_shell(
    socket: WebSocket,
    lease_id: str,
    tty: bool = True,
    rows: int = 24,
    cols: int = 80,
    term: str = "xterm",
    arg: Annotated[list[str] | None, Query()] = None,
) -> None:
    state = _state(socket)
    try:
        if not _UUID.match(lease_id):
            raise ApiError(404, "not_found", f"lease {lease_id!r} not found")
        if not (0 < rows <= wire.MAX_DIMENSION and 0 < cols <= wire.MAX_DIMENSION):
            raise _bad("rows/cols", f"{rows}x{cols} is not a window size")
        if not _TERM.match(term):
            raise _bad("term", f"{term!r} is not a terminal type")
        argv = list(arg or wire.DEFAULT_SHELL)
        if len(argv) > 256 or any(len(a) > 4096 or "\0" in a for a in argv):
            raise _bad("arg", "at most 256 arguments of 4096 characters, no NUL")
        who = await _principal(state, socket, "viewer", "user")
        row = await lease_for(state, who, lease_id, "shell")
        if row.state != "ready" or row.host is None:
            detail = (
                f"lease {lease_id} has ended ({row.state}): request a new one"
                if row.state not in q.OPEN
                else f"lease {lease_id} is {row.state}, not ready yet"
            )
            raise ApiError(409, "lease_not_ready", detail)
    except ApiError as exc:
        await _refuse(socket, exc)
        return
    session = state.shells.open(
        lease_id=lease_id, host=row.host, argv=argv, tty=tty, rows=rows, cols=cols, term=term
    )
    await socket.accept()
    async with state.transaction() as tx:
        await lifecycle.renew(tx, row)
        tx.audit(
            who.actor, "lease.shell", lease_id=lease_id, argv=argv, tty=tty, session=session.id
        )
    status: int | None = None
    try:
        try:
            host = await asyncio.wait_for(asyncio.shield(session.host_socket), HOST_ATTACH_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            await _end(socket, wire.error(f"sandbox host {row.host} did not answer"), 1011)
            return
        status = await _relay(state, row, socket, host, session)
    finally:
        state.shells.close(session)
    async with state.transaction() as tx:
        tx.audit(who.actor, "lease.shell_exit", lease_id=lease_id, session=session.id,
                 exit_status=status)  # fmt: skip


async def _end(socket: WebSocket, text: str | None, code: int = 1000) -> None:
    with contextlib.suppress(Exception):
        if text is not None:
            await socket.send_text(text)
        await socket.close(code=code)


async def _relay(
    state: ServerState, row: q.LeaseRow, holder: WebSocket, host: WebSocket, session: ShellSession
) -> int | None:
    """Pipe frames both ways until the host reports the exit (its status) or a side leaves."""
    exit_status: list[int] = []

    async def down() -> None:  # host → holder
        while True:
            message = await host.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await holder.send_bytes(message["bytes"])
            elif message.get("text") is not None:
                text = message["text"]
                control = wire.control(text)
                await holder.send_text(text)
                if control["type"] == "exit" and isinstance(control.get("status"), int):
                    exit_status.append(control["status"])
                    return

    async def up() -> None:  # holder → host
        while True:
            message = await holder.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await host.send_bytes(message["bytes"])
            elif message.get("text") is not None:
                await host.send_text(message["text"])

    async def keep_alive() -> None:  # the open shell keeps its lease
        while True:
            await asyncio.sleep(max(1.0, row.ttl / 3))
            async with state.transaction() as tx:
                await lifecycle.renew(tx, row)

    tasks = [
        asyncio.create_task(down()),
        asyncio.create_task(up()),
        asyncio.create_task(keep_alive()),
        asyncio.create_task(session.ended.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except Exception:  # a side that broke is a side that left
        log.debug("shell %s: relay ended by an error", session.id, exc_info=True)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
    if not exit_status:
        await _end(holder, wire.error("the shell's connection to its sandbox host was lost"), 1011)
    else:
        await _end(holder, None)
    await _end(host, None)
    return exit_status[0] if exit_status else None


@router.websocket("/host/shells/{session_id}")
async def host_shell(socket: WebSocket, session_id: str) -> None:
    state = _state(socket)
    try:
        who = await _principal(state, socket, "agent")
        session = state.shells.get(session_id)
        if session is None:
            raise ApiError(404, "not_found", f"shell session {session_id!r} not found")
        if session.host != who.instance_id:
            raise await forbid(
                state,
                who,
                "lease.shell_denied",
                f"shell session {session_id} is for sandbox host {session.host!r}",
                lease_id=session.lease_id,
            )
    except ApiError as exc:
        await _refuse(socket, exc)
        return
    await socket.accept()
    if not state.shells.attach(session, socket):
        await _end(socket, None, 1000)
        return
    await session.ended.wait()  # the holder's side relays; this keeps the socket open
