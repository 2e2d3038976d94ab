"""Outcome reports: every report kept, the latest one counts; committed before the caller hears back."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, func, select

from service.store.encoding import check_length
from service.store.locks import OUTCOME_LOCK_NAMESPACE
from service.store.schema import LEAD_ID_LENGTH, as_utc, outcomes_table


def record_outcome(
    engine: Engine, lead_id: str, converted: bool, value: float | None, occurred_at: datetime | None
) -> dict[str, Any]:
    """Store one outcome report in its own transaction, with its revision number (1 for the lead's first)."""
    check_length("lead_id", lead_id, LEAD_ID_LENGTH)
    if value is not None and not math.isfinite(value):
        raise ValueError("value is not a finite number")
    row = {
        "lead_id": lead_id,
        "converted": bool(converted),
        "value": None if value is None else float(value),
        "occurred_at": None if occurred_at is None else as_utc(occurred_at),
        "reported_at": datetime.now(UTC),
    }
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # concurrent reports for one lead get distinct revisions
            conn.execute(select(func.pg_advisory_xact_lock(OUTCOME_LOCK_NAMESPACE, func.hashtext(lead_id))))
        conn.execute(outcomes_table.insert(), row)
        revision = conn.execute(
            select(func.count()).select_from(outcomes_table).where(outcomes_table.c.lead_id == lead_id)
        ).scalar_one()
    return {**row, "revision": int(revision)}


def history_query(lead_id: str) -> Any:
    """Every report for this lead, oldest first."""
    return select(outcomes_table).where(outcomes_table.c.lead_id == lead_id).order_by(outcomes_table.c.id)


def latest_reports_query() -> Any:
    """Each lead's latest report."""
    o = outcomes_table.c
    return select(outcomes_table).where(o.id.in_(select(func.max(o.id)).group_by(o.lead_id)))


def outcome_dict(row: Row[Any], revision: int) -> dict[str, Any]:
    """One outcome report as the API returns it."""
    return {
        "lead_id": row.lead_id,
        "converted": bool(row.converted),
        "value": row.value,
        "occurred_at": row.occurred_at,
        "reported_at": row.reported_at,
        "revision": revision,
    }
