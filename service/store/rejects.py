"""Dead letters: one row in ``score_rejects`` per score the writer could not store (why, never the lead fields)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine, func, insert, select

from service.store.connection import describe_error
from service.store.records import ScoreBatch
from service.store.schema import LEAD_ID_LENGTH, MODEL_VERSION_LENGTH, REJECT_REASON_LENGTH, as_utc, score_rejects_table

log = logging.getLogger(__name__)

REJECTS_KEPT = 10_000  # dead letters kept, newest first


class Reject(NamedTuple):
    """A score the writer could not store, as its dead letter: printable, and without the lead fields."""

    lead_id: str | None
    model_version: str | None
    scored_at: datetime | None
    reason: str


def printable(value: Any, limit: int) -> str | None:
    """Text any column can hold: NUL and unencodable characters escaped, cut to ``limit``."""
    if value is None:
        return None
    text = str(value).replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


def rejects_of(batch: ScoreBatch, reason: str) -> list[Reject]:
    """One dead letter per score of this batch."""
    reason = printable(reason, REJECT_REASON_LENGTH) or ""
    return [
        Reject(printable(lead_id, LEAD_ID_LENGTH), printable(version, MODEL_VERSION_LENGTH), _valid_time(at), reason)
        for lead_id, version, at in zip(batch.lead_ids, batch.model_versions, batch.scored_at, strict=True)
    ]


def _valid_time(value: Any) -> datetime | None:
    """The score's time when it is one the column can hold in UTC."""
    try:
        return as_utc(value) if isinstance(value, datetime) else None
    except OverflowError:
        return None


def store_rejects(engine: Engine, rejects: list[Reject], secret: str | None) -> None:
    """Store dead letters in one insert and one trim, keeping the newest ``REJECTS_KEPT``; a failure is logged,
    never raised (the scores are counted either way)."""
    r = score_rejects_table.c
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(insert(score_rejects_table), [{"rejected_at": now, **reject._asdict()} for reject in rejects])
            newest = conn.execute(select(func.max(r.id))).scalar_one()
            conn.execute(score_rejects_table.delete().where(r.id <= newest - REJECTS_KEPT))
    except Exception as exc:
        log.error("score log: %d dead letters not recorded (%s)", len(rejects), describe_error(exc, secret))


def newest_rejects(limit: int) -> Any:
    """The newest dead letters, newest first."""
    r = score_rejects_table.c
    return select(r.rejected_at, r.lead_id, r.model_version, r.scored_at, r.reason).order_by(r.id.desc()).limit(limit)
