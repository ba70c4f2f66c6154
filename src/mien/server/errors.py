"""The server's one exception for refusing a request, and how every error is answered.

Routes raise :class:`ApiError` with a status, a stable ``code`` and a sentence saying what
to do; handlers registered by :func:`install` turn it (and FastAPI's own validation errors,
unknown routes, database outages and anything unexpected) into the same JSON body:
``{"detail": ..., "code": ..., "problems": [...]}``. No traceback reaches a client.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mien.protocol import Problem

log = logging.getLogger("mien.server")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        problems: Sequence[Problem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.problems = list(problems)
        self.headers = dict(headers or {})


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_response(
    status: int,
    code: str,
    detail: str,
    problems: Sequence[Problem] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"detail": detail, "code": code, "problems": [p.model_dump() for p in problems]}
    return Response(
        orjson.dumps(body), status, headers=dict(headers or {}), media_type="application/json"
    )


def spec_problems(problems: Sequence[Any]) -> list[Problem]:
    """Problems of the persona language (``mien.spec.errors.Problem``) on the wire."""
    from mien.spec.errors import format_path

    return [
        Problem(
            path=format_path(p.path),
            message=p.message,
            source=p.source,
            line=p.line,
            column=p.column,
            severity=p.severity,
            text=str(p),
        )
        for p in problems
    ]


INT_LIMIT = 2**63


def json_number_problems(data: Any, source: str, path: str = "") -> list[Problem]:
    """Numbers JSON cannot carry between systems: integers beyond 64 bits, NaN, infinity.
    (Python reads them; other tools, and the server's own encoder, do not.)"""
    out: list[Problem] = []
    stack: list[tuple[str, Any]] = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT:
            message = "integer out of range (at most 64 bits)"
        elif isinstance(value, float) and not math.isfinite(value):
            message = "not a finite number"
        elif isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
            continue
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
            continue
        else:
            continue
        shown = where or "(document)"
        out.append(Problem(path=shown, message=message, source=source, text=f"{shown}: {message}"))
    return out


def _validation_problems(exc: RequestValidationError) -> list[Problem]:
    out = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            # FastAPI's own words are "JSON decode error" at a character offset: say what
            # the parser said, where (and, for a value no one can hold, which field).
            # (An offset of -1 comes from mien.server.api.body: the message names a field.)
            offset = next((p for p in error.get("loc", ())[1:] if isinstance(p, int)), -1)
            message = str((error.get("ctx") or {}).get("error") or "not valid JSON")
            if offset < 0:
                out.append(Problem(path="body", message=message, text=f"body: {message}"))
                continue
            text = exc.body if isinstance(exc.body, str) else ""
            line = text.count("\n", 0, offset) + 1
            column = offset - text.rfind("\n", 0, offset)
            where = f"body:{line}:{column}"
            out.append(
                Problem(
                    path="body",
                    message=message,
                    line=line,
                    column=column,
                    text=f"{where}: {message}",
                )
            )
            continue
        loc = [str(p) for p in error.get("loc", ())]
        path = ".".join(loc) or "request"
        message = str(error.get("msg", "invalid")).replace("Input should be ", "must be ", 1)
        out.append(Problem(path=path, message=message, text=f"{path}: {message}"))
    return out


def _allowed_methods(app: FastAPI, path: str) -> str | None:
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, item in app.openapi()["paths"].items():
            regex = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))
            table.append((regex, sorted(m.upper() for m in item)))
        app.state.allow_table = table
    for regex, methods in table:
        if regex.fullmatch(path):
            return ", ".join(methods)
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""

    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.detail, exc.problems, exc.headers)

    async def invalid_request(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = _validation_problems(exc)
        detail = "invalid request: " + "; ".join(p.text for p in problems[:5])
        return error_response(422, "invalid_request", detail, problems)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Name every method the path takes (the router names only its first match).
            allowed = _allowed_methods(app, request.url.path)
            if allowed:
                headers["Allow"] = allowed
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    async def database_error(_request: Request, exc: Exception) -> Response:
        if isinstance(exc, IntegrityError):
            log.warning("integrity error: %s", exc.orig)
            return error_response(
                409, "conflict", "the change conflicts with data written at the same time; retry"
            )
        log.error("database error: %s", exc)
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; retry later",
            headers={"Retry-After": "2"},
        )

    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error (logged on the server)")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(OperationalError, database_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(OSError, database_error)
    app.add_exception_handler(Exception, unexpected)
