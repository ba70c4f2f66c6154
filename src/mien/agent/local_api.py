"""The agent's local API: HTTP over the Unix socket ``ROOT/run/mien/agent.sock``.

Served by ``mien agent run`` (fleet machines, and ``--local``) and by ``mien agent
serve-socket`` (a machine without a fleet agent), so that ``mien switch`` and ``mien
customize`` work for the person who runs them without root. The socket is mode 0666: who
calls is read from the kernel (``SO_PEERCRED``: the uid and gid of the process that
connected) and named through the system's user database; nothing in a request can change
it. What each person may do is :mod:`mien.agent.switchboard`'s to decide.

Requests (JSON bodies of at most :data:`MAX_BODY` bytes; answers are JSON, errors
``{"detail", "code", "problems"}`` as the fleet API's):

=========================  ==========================================================
``GET  /v1/whoami``         who the agent thinks you are, and what that allows
``GET  /v1/personas``       the personas you may switch to
``GET  /v1/status``         the active persona
``POST /v1/preview``        ``{"persona"}``: the plan of a switch
``POST /v1/switch``         ``{"persona", "wait"}``: switch (fleet: ask the server)
``GET  /v1/history``        applied states, which you may roll back to
``POST /v1/rollback``       ``{"to", "wait"}``
``GET  /v1/customizations`` your customizations (the persona user's and root's only)
``POST /v1/customizations`` ``{"key", "value", "unset"}``
=========================  ==========================================================
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from mien.agent.switchboard import Denied, Missing, Person, Switchboard, Upstream
from mien.protocol.switching import LocalCustomize, LocalPreview, LocalRollback, LocalSwitch

SOCKET = "run/mien/agent.sock"
MAX_BODY = 64 * 1024
MAX_CONNECTIONS = 32
log = logging.getLogger("mien.agent.local_api")


def socket_path(root: Path) -> Path:
    return root / SOCKET


def peer(sock: socket.socket) -> Person:
    """The calling process's identity, from the kernel alone."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, gid = struct.unpack("3i", raw)
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise Denied(f"uid {uid} has no user name on this machine") from None
    groups = []
    for g in sorted(set(os.getgrouplist(name, gid))):
        try:
            groups.append(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return Person(uid, name, tuple(groups))


class _Failure(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may take to send its request

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("local api: " + format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            raise _Failure(411, "length_required", "send a Content-Length, not chunks")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _Failure(400, "invalid_request", "Content-Length is not a number") from None
        if length > MAX_BODY or length < 0:
            raise _Failure(413, "too_large", f"a request body may have at most {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw)
        except ValueError:
            raise _Failure(400, "invalid_request", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _Failure(400, "invalid_request", "the body must be a JSON object")
        return data

    def _serve(self, method: str) -> None:
        try:
            person = peer(self.request)
            body = self._body() if method == "POST" else {}
            route = self.server.routes.get((method, self.path.split("?", 1)[0]))
            if route is None:
                raise _Failure(
                    404, "not_found", f"no {method} {self.path} (see mien.agent.local_api)"
                )
            status, answer = 200, _dump(route(person, body))
        except _Failure as exc:
            status, answer = exc.status, {"detail": exc.detail, "code": exc.code, "problems": []}
        except Denied as exc:
            status, answer = 403, {"detail": str(exc), "code": "forbidden", "problems": []}
        except Missing as exc:
            status, answer = 404, {"detail": str(exc), "code": "not_found", "problems": []}
        except Upstream as exc:
            status, answer = 502, {"detail": str(exc), "code": "upstream", "problems": []}
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            status, answer = 422, {"detail": problems, "code": "invalid_request", "problems": []}
        except Exception as exc:  # an engine refusal or failure: the person sees why
            status, answer = _engine_failure(exc)
        if status >= 400:
            # The rest of a refused request (a huge body) is never read as another request.
            self.close_connection = True
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _engine_failure(exc: Exception) -> tuple[int, dict[str, Any]]:
    from mien.agent.engine import EngineError, NeedsAttention
    from mien.agent.locking import Busy
    from mien.agent.transaction import ApplyFailed
    from mien.spec.errors import SpecError

    if isinstance(exc, NeedsAttention):
        status, code = 503, "needs_attention"
    elif isinstance(exc, Busy):
        status, code = 409, "busy"
    elif isinstance(exc, SpecError):
        status, code, exc = 422, "invalid_persona", Exception("\n".join(map(str, exc.problems)))
    elif isinstance(exc, (EngineError, ApplyFailed)):
        status, code = 422, "refused"
    else:
        log.exception("local api: unexpected failure")
        status, code = 500, "internal"
    return status, {"detail": str(exc), "code": code, "problems": []}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    routes: dict[tuple[str, str], Callable[[Person, dict[str, Any]], Any]]
    # At most this many connections are served at once; more are closed at once, so no
    # one can exhaust the agent's threads by opening connections and sending nothing.
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            log.warning("local api: too many connections; one refused")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("local api: a client went away: %s", exc)
        else:
            log.exception("local api: a request failed")


def _routes(board: Switchboard) -> dict[tuple[str, str], Callable[[Person, dict[str, Any]], Any]]:
    def parse(cls: type[BaseModel], body: dict[str, Any]) -> Any:
        return TypeAdapter(cls).validate_python(body)

    def status(person: Person, _body: dict[str, Any]) -> dict[str, Any]:
        st = board.engine().status()
        return {
            "active": st.active,
            "user": st.user,
            "history": st.history.id if st.history else None,
        }

    def switch(person: Person, body: dict[str, Any]) -> Any:
        req = parse(LocalSwitch, body)
        return board.switch(person, req.persona, req.wait)

    def rollback(person: Person, body: dict[str, Any]) -> Any:
        req = parse(LocalRollback, body)
        return board.rollback(person, req.to, req.wait)

    def customize(person: Person, body: dict[str, Any]) -> Any:
        req = parse(LocalCustomize, body)
        return board.customize(person, req.key, req.value, req.unset)

    return {
        ("GET", "/v1/whoami"): lambda p, _b: board.caller(p),
        ("GET", "/v1/personas"): lambda p, _b: board.personas(p),
        ("GET", "/v1/status"): status,
        ("POST", "/v1/preview"): lambda p, b: board.preview(p, parse(LocalPreview, b).persona),
        ("POST", "/v1/switch"): switch,
        ("GET", "/v1/history"): lambda p, _b: board.history(p),
        ("POST", "/v1/rollback"): rollback,
        ("GET", "/v1/customizations"): lambda p, _b: board.customizations(p),
        ("POST", "/v1/customizations"): customize,
    }


def _prepare(path: Path) -> None:
    """Make ``ROOT/run/mien`` (root's, 0755) and clear a stale socket; refuse anything else
    found there (a link or file is not ours to remove)."""
    for directory in (path.parent.parent, path.parent):
        try:
            info = os.lstat(directory)
        except FileNotFoundError:
            os.mkdir(directory, 0o755)
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise OSError(f"{directory} is not a directory (a link?): not serving the socket")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(f"{path} exists and is not a socket: remove it first")
    os.unlink(path)


class LocalApi:
    """The socket server, running in a background thread until :meth:`stop`."""

    def __init__(self, root: Path, board: Switchboard, mode: int = 0o666) -> None:
        self.path = socket_path(root)
        _prepare(self.path)
        # Past the kernel's 108-byte limit on socket paths, bind through a descriptor of
        # the directory (deep roots in tests and images).
        fd = os.open(self.path.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            name = (
                str(self.path)
                if len(os.fsencode(self.path)) < 100
                else f"/proc/self/fd/{fd}/agent.sock"
            )
            self.server = _Server(name, _Handler)
        finally:
            os.close(fd)
        os.chmod(self.path, mode)
        self.server.routes = _routes(board)
        self.server.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="mien-local-api", daemon=True
        )

    def start(self) -> LocalApi:
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def start_local_api(
    root: Path,
    user: str | None = None,
    creds: Any = None,
    *,
    client_factory: Any = None,
    warn: Callable[[str], None] | None = None,
) -> LocalApi | None:
    """Serve the socket of ``root`` in a background thread (what ``mien agent run`` calls;
    ``creds``: the fleet credential, so switches become requests to the server). A socket
    that cannot be served is reported through ``warn`` and the agent runs without it."""
    if creds is not None and client_factory is None:
        from mien.client import AgentClient

        def client_factory() -> AgentClient:
            return AgentClient(creds.server, creds.token, timeout=30.0, verify=creds.verify)

    board = Switchboard(root.absolute(), user=user, creds=creds, client_factory=client_factory)
    try:
        return LocalApi(root.absolute(), board).start()
    except OSError as exc:
        (warn or log.warning)(f"the local API is not served ({exc}): `mien switch` needs root")
        return None
