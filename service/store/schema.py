"""The tables of the score log and the outcomes store, created once however many workers start together."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Double,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    func,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError

from service.store.locks import SCHEMA_LOCK

LEAD_ID_LENGTH = 200
MODEL_VERSION_LENGTH = 64
GRADE_LENGTH = 8
REJECT_REASON_LENGTH = 500
SCHEMA_ATTEMPTS = 6


class LayoutError(Exception):
    """The database holds tables of an earlier leadscore layout."""


def as_utc(value: datetime) -> datetime:
    """Timezone-aware UTC whatever came in; a naive datetime is taken to be UTC already (SQLite drops tzinfo)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware UTC, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


_ROW_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only an INTEGER primary key

metadata = MetaData()

scores_table = Table(
    "scores",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("lead_id", String(LEAD_ID_LENGTH), nullable=True),
    Column("model_version", String(MODEL_VERSION_LENGTH), nullable=False),
    Column("probability", Double, nullable=False),
    Column("grade", String(GRADE_LENGTH), nullable=False),
    Column("scored_at", UTCDateTime, nullable=False),
)

score_batches_table = Table(
    "score_batches",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("size", Integer, nullable=False),
    # JSON: {"lead_id": [...], "model_version": [...] or one for all, "probability": [...], "grade": [...],
    # "scored_at": [...] or one for all, "features": {field: [...]}}, one queued batch's scores in order.
    Column("columns", LargeBinary, nullable=False),
)

score_chunks_table = Table(
    "score_chunks",
    metadata,
    Column("first_id", BigInteger, primary_key=True, autoincrement=False),  # the chunk's key in the index
    Column("last_id", BigInteger, nullable=False),
)

score_lead_chunks_table = Table(
    "score_lead_chunks",
    metadata,
    Column("chunk", BigInteger, primary_key=True, autoincrement=False),
    Column("lead_id", String(LEAD_ID_LENGTH), primary_key=True),
    Column("score_id", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

score_rejects_table = Table(
    "score_rejects",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("rejected_at", UTCDateTime, nullable=False),
    # printable: characters the column cannot hold are escaped (\x00), and cut to the column's length
    Column("lead_id", String(LEAD_ID_LENGTH), nullable=True),
    Column("model_version", String(MODEL_VERSION_LENGTH), nullable=True),
    Column("scored_at", UTCDateTime, nullable=True),
    Column("reason", String(REJECT_REASON_LENGTH), nullable=False),
)

outcomes_table = Table(
    "outcomes",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("lead_id", String(LEAD_ID_LENGTH), nullable=False, index=True),
    Column("converted", Boolean, nullable=False),
    Column("value", Double, nullable=True),
    Column("occurred_at", UTCDateTime, nullable=True),
    Column("reported_at", UTCDateTime, nullable=False),
)


def create_schema(engine: Engine) -> None:
    """Create the tables once, even when several worker processes start at the same moment."""
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # the others wait here, then find the tables made
                    conn.execute(select(func.pg_advisory_xact_lock(*SCHEMA_LOCK)))
                metadata.create_all(conn)
                _check_layout(conn)
            return
        except DBAPIError:
            # SQLite: another process created a table between our check and our CREATE; look again.
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)


def _check_layout(conn: Connection) -> None:
    """Refuse a database whose score log has the earlier one-row-per-score-with-fields layout."""
    columns = {column["name"] for column in inspect(conn).get_columns("scores")}
    if "features" in columns:
        raise LayoutError(
            "its scores table has the earlier layout (one row per score with the lead fields as JSON); "
            "point LEADSCORE_DATABASE_URL at a new database, or rename that table to keep its history"
        )
