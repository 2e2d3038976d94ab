"""How scores become rows: the narrow ``scores`` rows as driver-ready tuples, the columns blob of
``score_batches``, and which scores the columns cannot hold."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from decimal import Decimal
from itertools import chain
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Dialect

from service.store.records import ScoreBatch, ScoreWrite
from service.store.schema import GRADE_LENGTH, LEAD_ID_LENGTH, MODEL_VERSION_LENGTH, as_utc


def _json_default(value: Any) -> Any:
    """Fallback for types orjson does not know: missing markers become null, anything else its text."""
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def check_length(name: str, value: str | None, limit: int) -> None:
    """Reject what the column cannot hold, the same way on SQLite (which would accept it) and PostgreSQL."""
    if value is not None and len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters long; at most {limit} are stored")


def unstorable_rows_of(write: ScoreWrite) -> dict[int, str]:
    """``unstorable_rows`` of every part, with positions counted across the parts."""
    problems: dict[int, str] = {}
    offset = 0
    for part in write.parts:
        problems.update({offset + i: why for i, why in unstorable_rows(part).items()})
        offset += part.count
    return problems


def unstorable_rows(batch: ScoreBatch) -> dict[int, str]:
    """Positions of scores the columns cannot hold, and why (never the values), checked the same way on SQLite
    (which would accept them) and PostgreSQL, so one bad score cannot sink its whole batch."""
    problems: dict[int, str] = {}
    for name, values, limit in (
        ("lead_id", batch.lead_ids, LEAD_ID_LENGTH),
        ("model_version", batch.model_versions, MODEL_VERSION_LENGTH),
        ("grade", batch.grades, GRADE_LENGTH),
    ):
        if max(map(len, filter(None, values)), default=0) > limit:  # in C; the rare culprits are found below
            for i, value in enumerate(values):
                if value is not None and len(value) > limit:
                    problems.setdefault(i, f"{name} is {len(value)} characters long; at most {limit} are stored")
    if "\x00" in "".join(filter(None, batch.lead_ids)):  # PostgreSQL refuses it; SQLite would store it
        for i, value in enumerate(batch.lead_ids):
            if value is not None and "\x00" in value:
                problems.setdefault(i, "lead_id contains the NUL character")
    if not all(map(math.isfinite, batch.probabilities)):
        for i, probability in enumerate(batch.probabilities):
            if not math.isfinite(probability):
                problems.setdefault(i, "probability is not a finite number")
    return problems


SCORE_COLUMNS = ("lead_id", "model_version", "probability", "grade", "scored_at")  # as written and as read


def score_rows(dialect: Dialect, write: ScoreWrite) -> tuple[str, list[tuple[Any, ...]]]:
    """The scores INSERT in the driver's parameter style, and one tuple per row, stored as SQLAlchemy stores them."""
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) VALUES ({', '.join([marker] * len(SCORE_COLUMNS))})"
    stored_time = _sqlite_timestamp if dialect.name == "sqlite" else as_utc
    stamped: dict[datetime, Any] = {}  # a batch's scores mostly share one time: convert each time once
    rows: list[tuple[Any, ...]] = []
    for part in write.parts:
        times = []
        for scored_at in part.scored_at:
            at = stamped.get(scored_at)
            if at is None:
                at = stamped[scored_at] = stored_time(scored_at)
            times.append(at)
        rows += zip(part.lead_ids, part.model_versions, part.probabilities, part.grades, times, strict=True)
    return sql, rows


_SQLITE_ROWS_PER_STATEMENT = 500  # 2,500 parameters, well under SQLite's limit of 32,766


@functools.cache
def _sqlite_multi_row_insert(rows: int) -> str:
    row = f"({', '.join(['?'] * len(SCORE_COLUMNS))})"
    return f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) VALUES " + ", ".join([row] * rows)


def insert_sqlite_rows(conn: Any, parameters: list[tuple[Any, ...]]) -> None:
    """Many rows per statement. The sqlite3 module lets go of the GIL around every statement it steps, and an
    executemany steps once per row: with request threads busy, the writer then waited for the GIL a thousand
    times per write and fell so far behind that the queue overflowed."""
    for start in range(0, len(parameters), _SQLITE_ROWS_PER_STATEMENT):
        chunk = parameters[start : start + _SQLITE_ROWS_PER_STATEMENT]
        conn.exec_driver_sql(_sqlite_multi_row_insert(len(chunk)), tuple(chain.from_iterable(chunk)))


def columns_blob(batch: ScoreBatch) -> bytes:
    """A request's scores and lead fields, column by column, as JSON (NaN as null, numpy scalars as numbers).

    A batch's scores share one model version and one time: each is then stored once, not once per score,
    which makes the blob a quarter smaller (readers broadcast it, see ``scores_frame``).
    """
    return orjson.dumps(
        {
            "lead_id": batch.lead_ids,
            "model_version": _one_or_all(batch.model_versions),
            "probability": batch.probabilities,
            "grade": batch.grades,
            "scored_at": _one_or_all(batch.scored_at),
            "features": batch.features,
        },
        default=_json_default,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    )


def _one_or_all(values: list[Any]) -> Any:
    """The single value every row shares, or the list as it is."""
    return values[0] if values and values.count(values[0]) == len(values) else values


def _sqlite_timestamp(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (naive UTC, microseconds), so reads through the table parse it."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


_PER_SCORE = ("lead_id", "probability", "grade")  # a list in every blob
_SHARED_OR_PER_SCORE = ("model_version", "scored_at")  # one value for the whole blob, or a list


def blob_times(columns: dict[str, Any], size: int) -> list[datetime]:
    """Each score's time in a decoded columns blob, in order."""
    at = columns["scored_at"]
    if isinstance(at, list):
        return [as_utc(datetime.fromisoformat(value)) for value in at]
    return [as_utc(datetime.fromisoformat(at))] * size


def keep_scores(columns: dict[str, Any], keep: list[int]) -> bytes:
    """A decoded columns blob with only the scores at these positions, encoded as the writer encodes it."""
    kept: dict[str, Any] = {name: [columns[name][i] for i in keep] for name in _PER_SCORE}
    for name in _SHARED_OR_PER_SCORE:
        value = columns[name]
        kept[name] = _one_or_all([value[i] for i in keep]) if isinstance(value, list) else value
    kept["features"] = {name: [values[i] for i in keep] for name, values in columns["features"].items()}
    return orjson.dumps(kept)
