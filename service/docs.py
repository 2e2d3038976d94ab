"""The API's documentation page, /docs: Swagger UI from files shipped in a package, so it renders offline.

FastAPI's own /docs loads Swagger UI from a CDN, which leaves the page blank without the internet. The
fastapi-swagger package ships Swagger UI's script and style sheet; they are served from here, and the page
may load nothing from elsewhere (its Content-Security-Policy names this service alone).
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html

router = APIRouter()

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSETS_PATH = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Swagger UI's online validator badge would call out to the internet; the page never shows it.
SWAGGER_PARAMETERS = {"validatorUrl": None}
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


@lru_cache
def _asset(name: str) -> bytes:
    return resources.files("fastapi_swagger").joinpath("resources", name).read_bytes()


def _script_hashes(page: bytes) -> str:
    """The page's inline start-up script, allowed by its hash rather than by allowing every inline script."""
    digests = (hashlib.sha256(script).digest() for script in INLINE_SCRIPT.findall(page))
    return " ".join(f"'sha256-{base64.b64encode(digest).decode()}'" for digest in digests)


def _headers(page: bytes = b"") -> dict[str, str]:
    scripts = " ".join(filter(None, ["'self'", _script_hashes(page)]))
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


@router.get(DOCS_PATH, include_in_schema=False)
def docs_page(request: Request) -> Response:
    """Swagger UI for this service's OpenAPI, every file served from here."""
    root = request.scope.get("root_path", "").rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
        swagger_ui_parameters=SWAGGER_PARAMETERS,
    ).body
    return _page(page)


@router.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
def docs_oauth2_redirect() -> Response:
    """Swagger UI's OAuth2 landing page, as FastAPI serves it."""
    return _page(get_swagger_ui_oauth2_redirect_html().body)


def _page(page: bytes) -> Response:
    return Response(page, media_type="text/html; charset=utf-8", headers=_headers(page))


@router.get(ASSETS_PATH + "/{name}", include_in_schema=False)
def docs_asset(name: str) -> Response:
    """Swagger UI's script, style sheet and icon, from the fastapi-swagger package (only these names)."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return Response(_asset(name), media_type=ASSETS[name], headers=_headers() | {"Cache-Control": "max-age=86400"})
