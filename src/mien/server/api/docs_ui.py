"""The interactive API page (``/api/v1/docs``) with Swagger UI served by the server itself.

FastAPI's default page loads Swagger UI from a CDN, so it stays blank on a machine without
internet access. The files are vendored beside this module (``swagger_ui/VERSION`` says
which release) and served from a fixed list, never from a path taken from the request.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS_DIR = Path(__file__).with_name("swagger_ui")
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def router(prefix: str, openapi_url: str, title: str) -> APIRouter:
    """Routes for ``PREFIX/docs`` and its assets under ``PREFIX/docs/assets/``."""
    api = APIRouter(include_in_schema=False)
    assets = f"{prefix}/docs/assets"

    @api.get(f"{prefix}/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )

    @api.get(f"{assets}/{{name}}")
    async def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, "no such asset")
        content = (ASSETS_DIR / name).read_bytes()
        return Response(
            content, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
        )

    return api
