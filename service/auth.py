"""API keys: one set for scoring, outcomes and reads, another for admin; compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

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
