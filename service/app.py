"""The FastAPI application: lifespan (model, score log, reload polling), middleware, errors, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from service import metrics
from service.auth import PageGate
from service.champion import ServingModel, champion_location, load_serving_model
from service.dashboard import router as dashboard_router
from service.docs import router as docs_router
from service.errors import LeadRejected, validation_problems
from service.follow import ChampionPointer, champion_pointer_or_none
from service.lane import ScoringLane
from service.middleware import RequestMetrics
from service.routes import router
from service.settings import ServiceSettings, get_service_settings
from service.store import ScoreStore
from training.errors import LeadscoreError

log = logging.getLogger("leadscore.service")
GC_YOUNG_THRESHOLD = 50_000
# a refused champion is tried again after this long: a download may have failed for a passing reason
RETRY_REFUSED_AFTER_S = 60.0


class ModelHolder:
    """The serving model, swapped atomically: requests take a reference and finish on what they took."""

    def __init__(self) -> None:
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        self.lock = asyncio.Lock()


async def reload_model(app: FastAPI) -> dict[str, Any]:
    """Load, verify and smoke-test the champion, then swap; on any failure keep the old model serving."""
    holder: ModelHolder = app.state.models
    settings: ServiceSettings = app.state.settings
    async with holder.lock:
        previous = holder.current.version if holder.current else None
        try:
            loaded = await asyncio.to_thread(load_serving_model, settings)
        except Exception as exc:  # whatever a bad bundle raises, the old model must keep serving
            reason = str(exc) if isinstance(exc, LeadscoreError) else f"{type(exc).__name__}: {exc}"
            holder.last_error = reason
            metrics.RELOADS.labels("failed").inc()
            log.error(
                "model reload from %s failed; still serving %s: %s", champion_location(settings), previous, reason
            )
            return {"reloaded": False, "model_version": previous, "previous_version": previous, "reason": reason}
        holder.current = loaded
        holder.last_error = None
        app.openapi_schema = None  # the lead fields may have changed
        metrics.RELOADS.labels("ok").inc()
        metrics.set_model_version(loaded.version)
        log.info("serving model %s from %s (was %s)", loaded.version, loaded.source, previous)
        return {"reloaded": True, "model_version": loaded.version, "previous_version": previous, "reason": None}


@dataclass
class _Refusal:
    """The champion the poller last failed to load, so a bad bundle is not reloaded on every check."""

    location: str | None = None
    at: float = 0.0

    def holds(self, pointer: ChampionPointer) -> bool:
        return pointer.location == self.location and time.monotonic() - self.at < RETRY_REFUSED_AFTER_S


def _serving_location(app: FastAPI) -> str | None:
    holder: ModelHolder = app.state.models
    return holder.current.source if holder.current else None


async def _follow_champion_once(app: FastAPI, refusal: _Refusal) -> None:
    """Reload when the link or the registry alias names another bundle than the one serving."""
    pointer = await asyncio.to_thread(champion_pointer_or_none, app.state.settings)
    if pointer is None or pointer.location == _serving_location(app) or refusal.holds(pointer):
        return
    outcome = await reload_model(app)
    refusal.location, refusal.at = (None, 0.0) if outcome["reloaded"] else (pointer.location, time.monotonic())


async def _poll_for_champion(app: FastAPI, interval_s: float) -> None:
    """Follow the champion every LEADSCORE_RELOAD_INTERVAL_S seconds."""
    refusal = _Refusal()
    while True:
        await asyncio.sleep(interval_s)
        try:
            await _follow_champion_once(app, refusal)
        except Exception:  # the poller must outlive any one bad check
            log.exception("checking for a new champion failed")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServiceSettings = app.state.settings
    if settings.open_access:
        log.warning(
            "no API keys configured (LEADSCORE_API_KEYS): anyone who can reach this port can score; "
            "admin routes are disabled"
        )
    store = ScoreStore(
        settings.database_url, batch_size=settings.score_log_batch, flush_interval_s=settings.score_log_flush_s
    )
    await asyncio.to_thread(store.start)
    app.state.store = store
    app.state.batch_limiter = anyio.CapacityLimiter(settings.batch_threads)
    await reload_model(app)
    # Everything loaded so far lives for the whole process: keep it out of the collector's full passes,
    # which otherwise pause requests for tens of milliseconds (the p99 of single-lead scoring).
    gc.collect()
    gc.freeze()
    # A 1,000-lead batch allocates tens of thousands of short-lived objects, freed by reference counting;
    # at the default threshold (700) each batch also paid for dozens of young collections (~13% of its CPU).
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    poller = (
        asyncio.create_task(_poll_for_champion(app, settings.reload_interval_s)) if settings.reload_interval_s else None
    )
    try:
        yield
    finally:
        if poller:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await asyncio.to_thread(store.stop)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_problems(list(exc.errors()), drop=1)}, status_code=422)

    @app.exception_handler(LeadRejected)
    async def lead_invalid(_: Request, exc: LeadRejected) -> JSONResponse:
        return JSONResponse({"detail": validation_problems(exc.errors)}, status_code=422)


def _lead_schema_openapi(app: FastAPI) -> dict[str, Any]:
    """OpenAPI with the loaded model's real lead fields."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    holder: ModelHolder = app.state.models
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if holder.current is not None:
        lead = holder.current.lead_model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components.update(lead.pop("$defs", {}))
        components["Lead"] = lead
    else:
        components["Lead"] = {"type": "object", "description": "No model is loaded: the lead fields are unknown."}
    schema["components"]["schemas"]["LeadBatch"] = {
        "type": "object",
        "required": ["leads"],
        "additionalProperties": False,
        "properties": {
            "leads": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Lead"},
                "maxItems": app.state.settings.max_batch,
            }
        },
    }
    app.openapi_schema = schema
    return schema


def create_app(settings: ServiceSettings | None = None, fast_lane: bool = True) -> FastAPI:
    """Build the service; nothing is loaded or connected until the lifespan starts.

    ``fast_lane=False`` leaves the scoring routes to FastAPI alone (the tests compare the two).
    """
    settings = settings or get_service_settings()
    app = FastAPI(
        title="leadscore",
        version="1",
        description="Calibrated lead-conversion probabilities, grades and reasons from the champion model.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        docs_url=None,  # service.docs serves /docs from package files instead of a CDN
    )
    app.state.settings = settings
    app.state.models = ModelHolder()
    app.include_router(router)
    app.include_router(dashboard_router)
    app.include_router(docs_router)
    _install_error_handlers(app)
    app.openapi = lambda: _lead_schema_openapi(app)  # type: ignore[method-assign]
    if fast_lane:
        app.add_middleware(ScoringLane)
    app.add_middleware(PageGate)
    app.add_middleware(RequestMetrics)  # added last, so outermost: it also times the lane
    return app
