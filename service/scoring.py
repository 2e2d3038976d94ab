"""The scoring endpoints' work, independent of the web framework: authorise, validate, score, log.

Both the documented FastAPI routes and the scoring lane (``service.lane``) call these functions with the
application state, the caller's key, the ``reasons`` query value and the raw body, so the two can never
answer differently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from fastapi import HTTPException, status
from pydantic import ValidationError

from service import metrics
from service.auth import authorize_reader
from service.batch_decoder import DecodedBatch
from service.champion import ServingModel
from service.errors import LeadRejected, problem_message
from service.scorer import ScoredColumns
from service.store import ScoreBatch, ScoreRecord

INLINE_BATCH = 64  # larger batches are scored off the event loop
REASON_MODES = {"true": "top", "top": "top", "all": "all", "false": "none", "none": "none"}
# Single leads and batches alike carry reasons unless the caller asks ?reasons=false (the fast path).
DEFAULT_REASONS = "true"


def serving_model(state: Any) -> ServingModel:
    model = state.models.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model is loaded yet; see /readyz")
    return model


def reasons_mode(value: str | None, default: str) -> str:
    mode = REASON_MODES.get(default if value is None else value)
    if mode is None:
        raise LeadRejected(
            [{"loc": ["query", "reasons"], "msg": f"must be one of {', '.join(REASON_MODES)}", "type": "enum"}]
        )
    return mode


def error_list(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": problem_message(e), "type": e["type"]}  # type: ignore[arg-type]
        for e in exc.errors(include_input=False)
    ]


def admit(state: Any, key: str | None, content_type: str | None) -> None:
    """What is checked before a scoring body is read: the key (a wrong one must not cost a 16 MiB read), then
    that the body is JSON. A web page can post text/plain across sites without asking; it cannot post JSON."""
    authorize_reader(state.settings, key)
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "the body must be JSON, sent with Content-Type: application/json"
        )


async def confirm_stored(state: Any, ticket: int | None) -> None:
    """In durable mode (LEADSCORE_SCORE_LOG_MODE=durable), wait until the write holding these scores has
    committed; a 503 if it did not store them. In the default mode, nothing to wait for."""
    if state.settings.score_log_mode != "durable":
        return
    if ticket is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "score not stored: the score log's queue is full")
    loop = asyncio.get_running_loop()
    stored: asyncio.Future[bool] = loop.create_future()

    def wake(outcome: bool) -> None:
        loop.call_soon_threadsafe(_resolve, stored, outcome)

    state.store.when_stored(ticket, wake)
    try:
        ok = await asyncio.wait_for(stored, state.settings.durable_wait_s)
    except TimeoutError:
        ok = False
    if not ok:
        reason = state.store.stats.last_error or "the score log did not commit it in time"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"score not stored: {reason}")


def _resolve(future: asyncio.Future[bool], outcome: bool) -> None:
    if not future.done():
        future.set_result(outcome)


def score_one_lead(state: Any, reasons: str | None, body: bytes) -> tuple[dict[str, Any], int | None]:
    """POST /v1/leads/score: one lead in, its score out (reasons on by default), with its score-log ticket for
    ``confirm_stored``; ``admit`` first."""
    mode = reasons_mode(reasons, DEFAULT_REASONS)
    model = serving_model(state)
    try:
        lead = model.validator.validate_json(body)
    except ValidationError as exc:
        raise LeadRejected(error_list(exc)) from None
    result = model.scorer.score_one(lead, mode)
    record = ScoreRecord(
        result["lead_id"],
        model.version,
        result["probability"],
        result["grade"],
        result["scored_at"],
        {name: lead.get(name) for name in model.scorer.fields},
    )
    ticket = state.store.enqueue(record)
    metrics.record_scores([record.probability], {record.grade: 1})
    return result, ticket


@dataclass(frozen=True)
class BatchJob:
    """A parsed batch, ready to score inline (small) or on a worker thread (large)."""

    run: Callable[[], tuple[dict[str, Any], int | None]]  # the reply, and its score-log ticket
    small: bool


def prepare_batch(state: Any, reasons: str | None, body: bytes) -> BatchJob:
    """POST /v1/leads/score/batch (reasons on by default, as for one lead): the cheap checks now (``admit``
    before); validation and scoring in ``run``.

    A batch whose every lead passes the strict decoder is scored column by column from it; any other body
    takes the full path, where each bad lead gets its own error entry and the good ones are still scored.
    """
    mode = reasons_mode(reasons, DEFAULT_REASONS)
    model = serving_model(state)
    decoded = model.batch_decoder.decode(body)
    if decoded is not None:
        _check_batch_size(decoded.count, state.settings.max_batch)
        return _batch_job(state, lambda: _score_decoded(state, model, decoded, mode), decoded.count)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise LeadRejected([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None
    rows = _batch_rows(raw, state.settings.max_batch)

    def run() -> tuple[dict[str, Any], int | None]:
        good, errors = _validate_rows(model, rows)
        if not good:
            return _batch_reply(model, [], errors), 0
        columns = model.scorer.columns_of(good)
        scored = model.scorer.score_columns(columns, len(good), mode)
        ticket = log_scores(state, model, columns, scored)
        return _batch_reply(model, scored.results, errors), ticket

    return _batch_job(state, run, len(rows))


async def run_batch(state: Any, job: BatchJob) -> dict[str, Any]:
    """A small batch inline; a larger one on a worker thread, at most ``batch_threads`` at a time per process.

    Scoring a batch is mostly Python under the GIL, so threads beyond one take turns rather than work
    together; waiting batches wait here, on the event loop, in the order they came.
    """
    if job.small:
        reply, ticket = job.run()
    else:
        reply, ticket = await anyio.to_thread.run_sync(job.run, limiter=state.batch_limiter)
    await confirm_stored(state, ticket)
    return reply


def _batch_job(state: Any, run: Callable[[], tuple[dict[str, Any], int | None]], count: int) -> BatchJob:
    """Small batches are scored inline; larger ones on a worker thread, which first waits while the score
    log's writer is behind, so sustained batch traffic goes at the pace scores are stored."""
    if count <= INLINE_BATCH:
        return BatchJob(run, small=True)

    def run_when_the_writer_keeps_up() -> tuple[dict[str, Any], int | None]:
        state.store.wait_for_writer()
        return run()

    return BatchJob(run_when_the_writer_keeps_up, small=False)


def _score_decoded(
    state: Any, model: ServingModel, decoded: DecodedBatch, mode: str
) -> tuple[dict[str, Any], int | None]:
    if not decoded.count:
        return _batch_reply(model, [], []), 0
    scored = model.scorer.score_columns(decoded.columns, decoded.count, mode)
    ticket = log_scores(state, model, decoded.columns, scored)
    return _batch_reply(model, scored.results, []), ticket


def _batch_reply(model: ServingModel, results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model_version": model.version,
        "scored": len(results),
        "failed": len(errors),
        "results": results,
        "errors": errors,
    }


def _check_batch_size(count: int, max_batch: int) -> None:
    if count > max_batch:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {max_batch:,} leads per batch")


def _batch_rows(raw: Any, max_batch: int) -> list[Any]:
    if not isinstance(raw, dict) or set(raw) != {"leads"} or not isinstance(raw["leads"], list):
        shape = "body must be an object with one key, leads: [lead, ...]"
        raise LeadRejected([{"loc": ["leads"], "msg": shape, "type": "batch_shape"}])
    rows = raw["leads"]
    _check_batch_size(len(rows), max_batch)
    return rows


def _validate_rows(model: ServingModel, rows: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The whole list in one call; only when some rows fail, one by one, so the good rows are still scored."""
    try:
        return model.batch_validator.validate_python(rows), []
    except ValidationError:
        pass
    good, errors = [], []
    id_field = model.scorer.id_field
    for index, row in enumerate(rows):
        try:
            good.append(model.validator.validate_python(row))
        except ValidationError as exc:
            lead_id = row.get(id_field) if isinstance(row, dict) and id_field else None
            errors.append(
                {"index": index, "lead_id": None if lead_id is None else str(lead_id)[:200], "errors": error_list(exc)}
            )
    return good, errors


def log_scores(state: Any, model: ServingModel, columns: Mapping[str, list[Any]], scored: ScoredColumns) -> int | None:
    """Queue scores for the score log (off the hot path) as columns; only model fields are kept, so no PII.
    Returns the ticket for ``confirm_stored``."""
    count = len(scored.results)
    ticket = state.store.enqueue(
        ScoreBatch(
            scored.lead_ids,
            [model.version] * count,
            scored.probabilities,
            scored.grades,
            [scored.scored_at] * count,
            {name: columns[name] for name in model.scorer.fields},
        )
    )
    metrics.record_scores(scored.probability_array, scored.grade_counts)
    return ticket
