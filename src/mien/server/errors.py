"""The server's one exception for refusing a request, and how every error is answered.

Routes raise :class:`ApiError` with a status, a stable ``code`` and a sentence saying what
to do; handlers registered by :func:`install` turn it (and FastAPI's own validation errors,
unknown routes, database outages and anything unexpected) into the same JSON body:
``{"detail": ..., "code": ..., "problems": [...]}``. No traceback reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mien.client.models import Problem

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
    """Problems of the persona language (``mien.spec.Problem``) on the wire."""
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


def _validation_problems(exc: RequestValidationError) -> list[Problem]:
    out = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        path = ".".join(loc) or "request"
        message = str(error.get("msg", "invalid")).replace("Input should be ", "must be ", 1)
        out.append(Problem(path=path, message=message, text=f"{path}: {message}"))
    return out


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

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

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
