"""API keys: one set for scoring, outcomes and reads, another for admin; compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader
from starlette.datastructures import Headers

from service.settings import ServiceSettings

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="Scoring or admin API key.")


def _matches(candidate: str | None, keys: list[str]) -> bool:
    """Compare against every key so timing does not reveal which one, or how much of one, matched."""
    if not candidate:
        return False
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate.encode(), key.encode())
    return found


def _settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def authorize_reader(settings: ServiceSettings, key: str | None) -> None:
    """Scoring, outcomes and reads: a scoring key (or an admin key); open when no keys are configured."""
    if settings.open_access:
        return
    if not (_matches(key, settings.api_keys) or _matches(key, settings.admin_keys)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid API key (X-API-Key header)")


async def require_reader(request: Request, key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> None:
    authorize_reader(_settings(request), key)


async def require_admin(request: Request, key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> None:
    """Admin routes: an admin key; disabled entirely when no admin keys are configured."""
    settings = _settings(request)
    if not settings.admin_keys:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin routes are disabled: set LEADSCORE_ADMIN_KEYS")
    if _matches(key, settings.admin_keys):
        return
    if _matches(key, settings.api_keys):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this route needs an admin key, not a scoring key")
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid API key (X-API-Key header)")


ReaderDep = Depends(require_reader)
AdminDep = Depends(require_admin)
# What ReaderDep adds to OpenAPI, for routes that check the key themselves.
READER_SECURITY_OPENAPI = {"security": [{"APIKeyHeader": []}]}
# What the key checks answer, for the OpenAPI of the routes that use them.
READER_RESPONSES: dict[int | str, dict] = {401: {"description": "Missing or invalid API key."}}
ADMIN_RESPONSES: dict[int | str, dict] = {
    **READER_RESPONSES,
    403: {"description": "A scoring key on an admin route, or admin routes are disabled (no admin keys)."},
}


DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
METRICS_PATH = "/metrics"
LOOPBACK_CLIENTS = frozenset({"127.0.0.1", "::1"})


def page_refusal(settings: ServiceSettings, path: str, client_host: str | None, key: str | None) -> int | None:
    """The status that refuses this caller the API's documentation or its metrics (LEADSCORE_DOCS_ACCESS,
    LEADSCORE_METRICS_ACCESS); None when allowed, and for every other path."""
    if path in DOC_PATHS:
        policy = settings.docs_access
    elif path == METRICS_PATH:
        policy = settings.metrics_access
    else:
        return None
    if policy == "off":
        return status.HTTP_404_NOT_FOUND
    if policy == "open" or (policy == "loopback-or-key" and client_host in LOOPBACK_CLIENTS):
        return None
    try:
        authorize_reader(settings, key)
    except HTTPException:
        return status.HTTP_401_UNAUTHORIZED
    return None


class PageGate:
    """Pure ASGI middleware: the documentation and metrics pages as the settings allow (``page_refusal``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (scope["path"] in DOC_PATHS or scope["path"] == METRICS_PATH):
            client = scope.get("client")
            key = Headers(scope=scope).get("x-api-key")
            refusal = page_refusal(scope["app"].state.settings, scope["path"], client[0] if client else None, key)
            if refusal is not None:
                await _refuse(send, refusal)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any, code: int) -> None:
    detail = b"not found" if code == status.HTTP_404_NOT_FOUND else b"missing or invalid API key (X-API-Key header)"
    body = b'{"detail":"' + detail + b'"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
