"""The scoring lane: the scoring routes served straight from ASGI, ahead of FastAPI's router.

Marketing systems call the scoring routes on every lead, and for one lead FastAPI's routing, request
wrapping and dependency machinery cost more than scoring it. The lane answers exactly
``POST /v1/leads/score``, ``POST /v1/leads/score/batch`` and ``POST /v1/leads/next-question`` with the
same functions the documented routes call (``service.scoring``, ``service.questions``), in the same
shapes. An outcome report's key is checked here too, before FastAPI reads its body; every other request
passes through untouched. It sits inside FastAPI's own body-size limit and error handling, and inside the
request metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request

from service.auth import authorize_reader
from service.errors import LeadRejected, validation_problems
from service.questions import next_questions
from service.scoring import admit, confirm_stored, prepare_batch, run_batch, score_one_lead

_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class LaneRoute:
    """What the request metrics read from ``scope["route"]``: the route's path template."""

    path: str


SCORE_ONE = LaneRoute("/v1/leads/score")
SCORE_BATCH = LaneRoute("/v1/leads/score/batch")
NEXT_QUESTION = LaneRoute("/v1/leads/next-question")
_ROUTES = {route.path: route for route in (SCORE_ONE, SCORE_BATCH, NEXT_QUESTION)}
_OUTCOME = re.compile(r"^/v1/leads/[^/]+/outcome$")


class ScoringLane:
    """Pure ASGI middleware: scoring requests are answered here, everything else goes on to FastAPI."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        post = scope["type"] == "http" and scope["method"] == "POST"
        route = _ROUTES.get(scope["path"]) if post else None
        if route is None:
            if post and _OUTCOME.match(scope["path"]) and not await _key_accepted(scope, send):
                return
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive)
        state = scope["app"].state
        reasons = _query_value(scope["query_string"], "reasons")
        try:
            admit(state, request.headers.get("x-api-key"), request.headers.get("content-type"))
            body = await request.body()
            if route is SCORE_ONE:
                payload, ticket = score_one_lead(state, reasons, body)
                await confirm_stored(state, ticket)
            elif route is NEXT_QUESTION:
                payload = next_questions(state, body)
            else:
                payload = await run_batch(state, prepare_batch(state, reasons, body))
        except LeadRejected as exc:
            await _reply(send, 422, {"detail": validation_problems(exc.errors)})
        except HTTPException as exc:
            await _reply(send, exc.status_code, {"detail": exc.detail}, exc.headers)
        else:
            await _reply(send, 200, payload)


async def _key_accepted(scope: dict[str, Any], send: Any) -> bool:
    """The reader key of a request with a body, checked before anything reads the body; a 401 sent if wrong."""
    try:
        authorize_reader(scope["app"].state.settings, Headers(scope=scope).get("x-api-key"))
    except HTTPException as exc:
        await _reply(send, exc.status_code, {"detail": exc.detail}, exc.headers)
        return False
    return True


def _query_value(query_string: bytes, name: str) -> str | None:
    if not query_string:
        return None
    return dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)).get(name)


async def _reply(send: Any, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps(payload)
    raw_headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
