"""HTTP routes. Scoring validates the raw body against the current model's schema (it changes on reload)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import ValidationError

from service import metrics
from service.auth import ADMIN_RESPONSES, READER_RESPONSES, READER_SECURITY_OPENAPI, AdminDep, ReaderDep
from service.champion import ServingModel
from service.errors import NUL_FREE, LeadRejected
from service.follow import champion_fields
from service.monitoring import monitoring_report
from service.questions import NEXT_QUESTION_REPLY, NEXT_QUESTION_REQUEST, answer_table, next_questions
from service.schemas import BatchScores, LeadScore, NextQuestions, OutcomeIn, OutcomeOut, WhatIf
from service.scoring import (
    DEFAULT_REASONS,
    REASON_MODES,
    admit,
    confirm_stored,
    error_list,
    prepare_batch,
    run_batch,
    score_one_lead,
)
from service.scoring import serving_model as scoring_model
from service.store import StoreUnavailable
from service.whatif import what_if
from training.profile import worded_profile

router = APIRouter()

LeadId = Annotated[str, Path(min_length=1, max_length=200, pattern=NUL_FREE)]
NO_MODEL = {503: {"description": "No model is loaded yet; see /readyz."}}
NOT_JSON = {415: {"description": "The body is not sent as application/json."}}
LEAD_REJECTED = {422: {"description": "A field has the wrong type, an impossible value or is unknown."}}


def _scoring_openapi(body: str, reasons_default: str) -> dict[str, Any]:
    """Request body, the reasons parameter and the key, documented for routes that read them directly."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        },
        "parameters": [
            {
                "name": "reasons",
                "in": "query",
                "required": False,
                "description": "true/top: the strongest positive and negative contributions; all: every field; "
                "false/none: no reasons (fastest).",
                "schema": {"type": "string", "enum": list(REASON_MODES), "default": reasons_default},
            }
        ],
        **READER_SECURITY_OPENAPI,
    }


def _lead_openapi(example: dict[str, Any]) -> dict[str, Any]:
    """One lead as the request body, with an example, and the key: for routes that read the body directly."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Lead"}, "example": example}},
        },
        **READER_SECURITY_OPENAPI,
    }


def _json(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


def serving_model(request: Request) -> ServingModel:
    return scoring_model(request.app.state)


# The scoring routes and the next question are served by the scoring lane (service.lane) with the same
# functions; these definitions document them and answer whenever the app runs without the lane.
@router.post(
    "/v1/leads/score",
    response_model=LeadScore,
    openapi_extra=_scoring_openapi("Lead", DEFAULT_REASONS),
    responses={
        **READER_RESPONSES,
        **LEAD_REJECTED,
        **NO_MODEL,
        413: {"description": "The body is too large."},
        **NOT_JSON,
    },
)
async def score_lead(request: Request) -> Response:
    """Score one lead: calibrated probability, grade, percentile, reasons and warnings."""
    admit(request.app.state, request.headers.get("x-api-key"), request.headers.get("content-type"))
    reply, ticket = score_one_lead(request.app.state, request.query_params.get("reasons"), await request.body())
    await confirm_stored(request.app.state, ticket)
    return _json(reply)


@router.post(
    "/v1/leads/score/batch",
    response_model=BatchScores,
    openapi_extra=_scoring_openapi("LeadBatch", DEFAULT_REASONS),
    responses={
        **READER_RESPONSES,
        **NO_MODEL,
        413: {"description": "Too many leads or too large a body."},
        **NOT_JSON,
        422: {"description": "The body is not a JSON object {leads: [...]}, or the reasons parameter is unknown."},
    },
)
async def score_batch(request: Request) -> Response:
    """Score many leads; a bad row gets its own error entry and the good rows are scored."""
    admit(request.app.state, request.headers.get("x-api-key"), request.headers.get("content-type"))
    job = prepare_batch(request.app.state, request.query_params.get("reasons"), await request.body())
    return _json(await run_batch(request.app.state, job))


WHAT_IF_EXAMPLE = {
    "lead_id": "L0001234",
    "lead_source": "web_organic",
    "contact_role": "decision_maker",
    "owns_home": True,
    "demo_requested": False,
    "email_engagement": 0.12,
    "pages_viewed": 4,
    "purchase_timeframe": "1-3 months",
    "stated_budget": 12000,
    "credit_check": "passed",
}


@router.post(
    "/v1/leads/what-if",
    response_model=WhatIf,
    openapi_extra=_lead_openapi(WHAT_IF_EXAMPLE),
    responses={**READER_RESPONSES, **LEAD_REJECTED, **NO_MODEL, **NOT_JSON},
)
async def lead_what_if(request: Request) -> Response:
    """Among the fields the spec marks actionable, the change and the pair of changes that raise this lead's
    probability most. What the model associates with conversion, not proof that a change causes a sale; the
    hypothetical leads are scored, never stored."""
    admit(request.app.state, request.headers.get("x-api-key"), request.headers.get("content-type"))
    model = scoring_model(request.app.state)
    try:
        lead = model.validator.validate_json(await request.body())
    except ValidationError as exc:
        raise LeadRejected(error_list(exc)) from None
    bundle = model.bundle
    return _json(what_if(model.scorer, bundle.wording, bundle.reference, lead))


@router.post(
    "/v1/leads/next-question",
    response_model=NextQuestions,
    openapi_extra=_lead_openapi(NEXT_QUESTION_REQUEST),
    responses={
        200: {"content": {"application/json": {"example": NEXT_QUESTION_REPLY}}},
        **READER_RESPONSES,
        **LEAD_REJECTED,
        **NO_MODEL,
        409: {"description": "The model was trained before next-question statistics were kept: retrain it."},
        413: {"description": "The body is too large."},
        **NOT_JSON,
    },
)
async def next_question(request: Request) -> Response:
    """The unknown fields worth asking a lead next, best first: for each, what every answer would make its
    probability and grade, and how likely each answer is given what is known. Nothing is stored."""
    admit(request.app.state, request.headers.get("x-api-key"), request.headers.get("content-type"))
    return _json(next_questions(request.app.state, await request.body()))


@router.get(
    "/v1/model/answers",
    dependencies=[ReaderDep],
    responses={**READER_RESPONSES, **NO_MODEL, 409: {"description": "Retrain the model to enable this."}},
)
def model_answers(request: Request) -> dict[str, Any]:
    """Per field, its question, whether it is asked, and its answers' shares of all leads and of best customers."""
    return answer_table(serving_model(request))


@router.post(
    "/v1/leads/{lead_id}/outcome",
    response_model=OutcomeOut,
    dependencies=[ReaderDep],
    responses={
        **READER_RESPONSES,
        400: {"description": "The body is not readable JSON text."},
        503: {"description": "The outcome store is unreachable: nothing was recorded; retry."},
    },
)
def record_outcome(request: Request, lead_id: LeadId, outcome: OutcomeIn) -> dict[str, Any]:
    """Converted or not; committed before the reply. Reporting again replaces it (the history is kept)."""
    try:
        return request.app.state.store.record_outcome(lead_id, outcome.converted, outcome.value, outcome.occurred_at)
    except StoreUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"outcome not recorded: {exc}") from None


@router.get(
    "/v1/leads/{lead_id}/scores",
    dependencies=[ReaderDep],
    responses={**READER_RESPONSES, 503: {"description": "The score log is unreachable."}},
)
def lead_scores(request: Request, lead_id: LeadId) -> dict[str, Any]:
    """The score history of a lead (newest first) and its latest outcome."""
    store = request.app.state.store
    try:
        return {"lead_id": lead_id, "scores": store.score_history(lead_id), "outcome": store.latest_outcome(lead_id)}
    except StoreUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


@router.delete(
    "/v1/leads/{lead_id}",
    dependencies=[AdminDep],
    responses={
        **ADMIN_RESPONSES,
        404: {"description": "Nothing is stored about this lead."},
        503: {"description": "The score log is unreachable: nothing was erased; retry."},
    },
)
def erase_lead(request: Request, lead_id: LeadId) -> dict[str, Any]:
    """Erase everything stored about one lead (a privacy request): its scores, the lead fields logged with them,
    its index entries, outcomes and dead letters. Scores queued when the request arrives are written, then erased."""
    try:
        erased = request.app.state.store.erase_lead(lead_id)
    except (StoreUnavailable, TimeoutError) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"nothing erased: {exc}") from None
    if not erased.found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "nothing is stored about this lead")
    return {"lead_id": lead_id, "erased": erased.to_dict()}


@router.get("/v1/model", dependencies=[ReaderDep], responses={**READER_RESPONSES, **NO_MODEL})
def model_card(request: Request) -> dict[str, Any]:
    """Version, creation time, holdout metrics against baselines, grades and the input schema.

    champion_version is the version the champion link (or registry alias) names now; serving_champion is false and
    champion_notice says when it will be served while a newly promoted champion is not serving yet.
    """
    model = serving_model(request)
    bundle = model.bundle
    metrics_summary = {k: v for k, v in bundle.metrics.items() if k not in {"calibration_curve"}}
    return {
        "version": bundle.version,
        "created_at": bundle.created_at,
        "dataset": bundle.spec.get("name"),
        "source": model.source,
        "loaded_at": model.loaded_at.isoformat(),
        **champion_fields(request.app.state.settings, model.version, model.source),
        "split": bundle.split,
        "metrics": metrics_summary,
        "calibration_curve": bundle.metrics.get("calibration_curve"),
        "grades": bundle.grades,
        "schema": [field.to_dict() for field in bundle.schema],
        "wording": bundle.wording.to_dict() if bundle.wording else {},
        "ignored_fields": sorted(set(bundle.spec.get("pii", [])) | set(bundle.spec.get("exclude", []))),
        "versions": bundle.versions,
        "notes": bundle.notes,
    }


@router.get("/v1/model/importance", dependencies=[ReaderDep], responses={**READER_RESPONSES, **NO_MODEL})
def model_importance(request: Request) -> dict[str, Any]:
    """Global importance: holdout ROC AUC lost when a field is shuffled, and mean |contribution|."""
    model = serving_model(request)
    return {"model_version": model.version, "importance": model.bundle.importance}


@router.get("/v1/model/profile", dependencies=[ReaderDep], responses={**READER_RESPONSES, **NO_MODEL})
def model_profile(request: Request) -> dict[str, Any]:
    """What the best customers share, as ranked qualification questions."""
    model = serving_model(request)
    return {"model_version": model.version, **worded_profile(model.bundle.profile, model.bundle.wording)}


@router.get(
    "/v1/monitoring",
    dependencies=[ReaderDep],
    responses={**READER_RESPONSES, 503: {"description": "No model is loaded yet, or the score log is unreachable."}},
)
def monitoring(request: Request) -> dict[str, Any]:
    """Drift of recent leads (PSI per field), score shift, and live performance from reported outcomes."""
    model = serving_model(request)
    store = request.app.state.store
    try:
        recent = store.recent_scores(request.app.state.settings.monitoring_window)
        scored = store.scored_outcomes()
    except StoreUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return monitoring_report(recent, scored, model.bundle)


@router.post(
    "/v1/admin/reload",
    dependencies=[AdminDep],
    responses={**ADMIN_RESPONSES, 409: {"description": "The new model was refused; the old one keeps serving."}},
)
async def admin_reload(request: Request) -> Response:
    """Load the current champion, verify and smoke-test it, then swap; in-flight requests finish on the old one."""
    from service.app import reload_model

    outcome = await reload_model(request.app)
    return _json(outcome, status_code=200 if outcome["reloaded"] else 409)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "No model is loaded yet."}})
def readyz(request: Request) -> Response:
    """Ready once a model is loaded."""
    holder = request.app.state.models
    if holder.current is None:
        return _json({"ready": False, "reason": holder.last_error or "loading"}, status_code=503)
    return _json({"ready": True, "model_version": holder.current.version})


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    metrics.update_store_gauges(request.app.state.store.stats)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
