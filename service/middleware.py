"""Request metrics as pure ASGI middleware: no per-request task or Request object."""

from __future__ import annotations

import time
from typing import Any

from service import metrics

Scope = dict[str, Any]


class RequestMetrics:
    """Count and time requests by route template (never by raw path: lead ids would explode the labels)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.observe_request(route, scope["method"], status, time.perf_counter() - start)
