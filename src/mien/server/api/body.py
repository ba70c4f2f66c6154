"""JSON request bodies read with the persona language's limits, for every route.

FastAPI reads a JSON body with :func:`json.loads`, which accepts what nothing downstream can
hold: a ``"\\ud800"`` escape (a lone UTF-16 surrogate, which the database and the JSON
encoder refuse: a 500) and an integer of thousands of digits (refused by Python's own
conversion: a bare 400). Every router is built with :class:`CheckedRoute`, whose request
reads the body with :func:`mien.spec.portable.load_json` and refuses such a value as a
JSON error naming its field, which FastAPI answers with a 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from mien.spec.errors import format_path
from mien.spec.portable import bad_values, load_json


class CheckedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            data = load_json(raw)
            bad = bad_values(data)
            if bad:
                path, message = bad[0]
                text = raw.decode("utf-8", "replace")
                # Offset -1: the message names the field, not a character position.
                raise json.JSONDecodeError(f"{format_path(path)}: {message}", text, -1)
            self._json = data
        return self._json


class CheckedRoute(APIRoute):
    """A route whose handler reads JSON bodies through :class:`CheckedRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(CheckedRequest(request.scope, request.receive))

        return checked
