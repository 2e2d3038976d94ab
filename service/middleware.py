"""Request metrics as pure ASGI middleware: no per-request task or Request object."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Match, Mount

from service import metrics

Scope = dict[str, Any]
UNMATCHED = "unmatched"


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
        path, root_path = scope["path"], scope.get("root_path", "")

        async def recording_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or route_template(scope, path, root_path)
            metrics.observe_request(route, scope["method"], status, time.perf_counter() - start)


def route_template(scope: Scope, path: str, root_path: str) -> str:
    """The template of the route a request matched when the router left none in the scope (FastAPI's own
    documentation routes, mounted folders): matched again against the app's routes, from the path as it came."""
    probe = {"type": "http", "method": scope["method"], "path": path, "root_path": root_path}
    for route in getattr(scope.get("app"), "routes", ()):
        template = getattr(route, "path", None)
        if template is None or route.matches(probe)[0] is not Match.FULL:
            continue
        return f"{template}/{{path}}" if isinstance(route, Mount) else template
    return UNMATCHED
