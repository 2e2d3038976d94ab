"""Frames for monitoring and live performance, built from the score log's blobs and rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Connection, Row, select

from service.store.encoding import SCORE_COLUMNS
from service.store.schema import score_batches_table

_OUTCOME_COLUMNS = [
    "lead_id",
    "model_version",
    "probability",
    "grade",
    "scored_at",
    "converted",
    "value",
    "occurred_at",
    "reported_at",
]


def utc_series(values: list[Any]) -> pd.Series:
    """A datetime64 UTC column, also when empty."""
    return pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[us, UTC]")


def scores_frame(blobs: Sequence[bytes], limit: int) -> pd.DataFrame:
    """The newest ``limit`` scores of these writes (given newest first) with one column per lead field,
    newest first; a field named like a score column gets a `feature_` prefix."""
    parts = []
    for blob in blobs:
        columns = orjson.loads(blob)
        features = columns.pop("features")
        part = pd.DataFrame(columns).assign(**{f"feature:{name}": values for name, values in features.items()})
        parts.append(part.iloc[::-1])
    if not parts:
        return pd.DataFrame(
            {
                "lead_id": pd.Series(dtype=object),
                "model_version": pd.Series(dtype=object),
                "probability": pd.Series(dtype="float64"),
                "grade": pd.Series(dtype=object),
                "scored_at": utc_series([]),
            }
        )
    frame = pd.concat(parts, ignore_index=True).head(limit)
    frame["probability"] = frame["probability"].astype("float64")
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    frame = frame.sort_values("scored_at", ascending=False, kind="stable", ignore_index=True)
    names = {c: c.removeprefix("feature:") for c in frame.columns if c.startswith("feature:")}
    return frame.rename(columns={c: f"feature_{n}" if n in SCORE_COLUMNS else n for c, n in names.items()})


def scored_outcomes_frame(pairs: Sequence[tuple[Row[Any], Row[Any]]]) -> pd.DataFrame:
    """Latest score beside latest outcome, one row per lead, with stable dtypes even when empty."""
    scores = [score for score, _ in pairs]
    outcomes = [outcome for _, outcome in pairs]
    return pd.DataFrame(
        {
            "lead_id": pd.Series([r.lead_id for r in scores], dtype=object),
            "model_version": pd.Series([r.model_version for r in scores], dtype=object),
            "probability": pd.Series([r.probability for r in scores], dtype="float64"),
            "grade": pd.Series([r.grade for r in scores], dtype=object),
            "scored_at": utc_series([r.scored_at for r in scores]),
            "converted": pd.Series([bool(r.converted) for r in outcomes], dtype=bool),
            "value": pd.Series([r.value for r in outcomes], dtype="float64"),
            "occurred_at": utc_series([r.occurred_at for r in outcomes]),
            "reported_at": utc_series([r.reported_at for r in outcomes]),
        },
        columns=_OUTCOME_COLUMNS,
    )


def newest_blobs(conn: Connection, limit: int) -> list[bytes]:
    """The newest writes' columns blobs, newest first, enough of them to hold ``limit`` scores."""
    b = score_batches_table.c
    blobs: list[bytes] = []
    found, before = 0, None
    while found < limit:
        query = select(b.id, b.size, b.columns).order_by(b.id.desc()).limit(16)
        page = conn.execute(query if before is None else query.where(b.id < before)).all()
        if not page:
            break
        for row in page:
            if found < limit:
                blobs.append(row.columns)
                found += row.size
        before = page[-1].id
    return blobs
