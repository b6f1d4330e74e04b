"""The API docs pages (Swagger UI at /docs, ReDoc at /redoc) with every asset served locally.

County networks are often closed to the internet, and FastAPI's default pages load Swagger UI
from a CDN and ReDoc's web fonts from Google. The assets are vendored in ``docs_assets/``
(swagger-ui-dist 5.35.0 and redoc 2.5.4 from npm, with their licences) and served under
``/docs/static/``, which the proxy and the Ingress already route with ``/docs``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import Response

from libs.common.errors import not_found

ASSETS_DIR = Path(__file__).with_name("docs_assets")
ASSET_PREFIX = "/docs/static"
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# The vendored files change only with a new release of the project: browsers may keep them.
ASSET_CACHE = {"cache-control": "public, max-age=86400"}
# ReDoc 2 always shows Redocly's logo from their CDN (an image that hides itself when it fails to
# load): an empty data URL keeps the request on the host. Applied when served, so the vendored
# file stays as released.
REWRITES = {"redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")]}
# Swagger UI would ask validator.swagger.io to check the document: nothing may leave the host.
SWAGGER_PARAMETERS: dict[str, Any] = {"validatorUrl": None}


def asset_url(name: str) -> str:
    """The local URL of one vendored docs asset."""
    return f"{ASSET_PREFIX}/{name}"


@cache
def asset_bytes(name: str) -> bytes:
    """A vendored asset's content as served (read once)."""
    content = (ASSETS_DIR / name).read_bytes()
    for old, new in REWRITES.get(name, []):
        content = content.replace(old, new)
    return content


def install_offline_docs(app: FastAPI) -> None:
    """Replace FastAPI's CDN-backed /docs and /redoc pages with ones whose assets we serve."""
    docs_url = app.docs_url or "/docs"
    redoc_url = app.redoc_url or "/redoc"
    openapi_url = app.openapi_url or "/openapi.json"
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if getattr(route, "path", None) not in {docs_url, redoc_url}
    ]
    favicon = asset_url("favicon-32x32.png")

    # Plain routes, as FastAPI registers its own docs pages: outside the OpenAPI document and
    # open to everyone, like the document itself.
    async def swagger_ui(_: Request) -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — Swagger UI",
            swagger_js_url=asset_url("swagger-ui-bundle.js"),
            swagger_css_url=asset_url("swagger-ui.css"),
            swagger_favicon_url=favicon,
            oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), **SWAGGER_PARAMETERS},
        )

    async def redoc(_: Request) -> Response:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — ReDoc",
            redoc_js_url=asset_url("redoc.standalone.js"),
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    async def docs_asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = ASSET_TYPES.get(name)
        if media_type is None:
            raise not_found("docs asset", name)
        return Response(asset_bytes(name), media_type=media_type, headers=ASSET_CACHE)

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
    app.add_route(f"{ASSET_PREFIX}/{{name}}", docs_asset, include_in_schema=False)
