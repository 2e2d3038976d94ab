"""The score log and the outcomes store: every score is kept for drift monitoring, every outcome for live performance.

Scores go through a background writer thread in batches, so the request path only appends to an in-memory queue;
outcomes are committed before the caller replies. SQLite by default (several worker processes share one WAL file),
PostgreSQL when the URL points at one. SQLAlchemy Core only: bulk inserts without ORM bookkeeping.

The score log is laid out so that every write appends, whatever the lead ids look like:

- ``scores``: one narrow row per score (lead id, model version, probability, grade, time), no secondary index;
- ``score_batches``: each request's lead fields once (a run of single leads counts as one), column by column,
  for drift monitoring;
- ``score_lead_chunks``: the lead-id index, built in sorted chunks of ``index_every`` scores once that many have
  arrived (``score_chunks`` lists them); lookups read the chunks plus the short unindexed tail;
- ``score_rejects``: the dead letters, one row per score the writer could not store (why, never the lead fields),
  the newest ``REJECTS_KEPT`` only.

A conventional index on lead id would take a random B-tree insert per score, about one page written per score
once the table outgrows memory: eight times the cost of the write itself at a million scores.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import chain
from typing import Any, NamedTuple

import orjson
import pandas as pd
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
    Row,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger(__name__)

LEAD_ID_LENGTH = 200
MODEL_VERSION_LENGTH = 64
GRADE_LENGTH = 8
CONNECT_TIMEOUT_S = 3
POOL_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_MS = 10_000
SCHEMA_ATTEMPTS = 6
WAL_SWITCH_ATTEMPTS = 10
INDEX_EVERY = 100_000  # scores per lead-index chunk
RECORDS_PER_WRITE = 500  # single-lead scores per write at most (see _next_batch)
FAILED_SPANS_KEPT = 10_000  # writes remembered as failed, for durable replies still waiting on them
CATCH_UP_WAIT_S = 10.0  # the longest a batch waits for the writer before its scores are queued anyway
LOOKUP_CHUNK = 500  # lead ids per query when reading many leads' scores
REJECTS_KEPT = 10_000  # dead letters kept, newest first
REJECT_REASON_LENGTH = 500
STOP_JOIN_GRACE_S = 2.0
DROP_WARNING_INTERVAL_S = 10.0
# PostgreSQL advisory-lock namespaces (first key of the two-key form): schema creation, outcome reports per lead.
_SCHEMA_LOCK = (0x1EAD, 0)
_SCORE_LOG_LOCK = (0x1EAD, 1)  # score writes and index chunks: ids become visible in order
_OUTCOME_LOCK_NAMESPACE = 0x1EAE
_TRANSIENT_ERRORS = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
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


class ScoreRecord(NamedTuple):
    """One score as the service produced it (see ``ScoreBatch.of_records``)."""

    lead_id: str | None
    model_version: str
    probability: float
    grade: str
    scored_at: datetime  # timezone-aware UTC
    features: dict[str, Any]  # JSON-serialisable lead fields (PII already removed by the caller)


class ScoreBatch(NamedTuple):
    """Scores as columns, one list each, all of one length: what a request queues for the score log.

    Columns, because a batch of 1,000 leads then costs the request a handful of list operations instead of
    a thousand objects, and the writer stores the lead fields as they come.
    """

    lead_ids: list[str | None]
    model_versions: list[str]
    probabilities: list[float]
    grades: list[str]
    scored_at: list[datetime]  # timezone-aware
    features: dict[str, list[Any]]  # one list per lead field, JSON-serialisable, PII already removed

    @property
    def count(self) -> int:
        return len(self.lead_ids)

    @classmethod
    def of_records(cls, records: Sequence[ScoreRecord]) -> ScoreBatch:
        names = dict.fromkeys(name for record in records for name in record.features)
        return cls(
            [r.lead_id for r in records],
            [r.model_version for r in records],
            [r.probability for r in records],
            [r.grade for r in records],
            [r.scored_at for r in records],
            {name: [r.features.get(name) for r in records] for name in names},
        )

    def rows(self, positions: Sequence[int]) -> ScoreBatch:
        """The scores at these positions, in this order."""
        pick = [*positions]
        return ScoreBatch(
            [self.lead_ids[i] for i in pick],
            [self.model_versions[i] for i in pick],
            [self.probabilities[i] for i in pick],
            [self.grades[i] for i in pick],
            [self.scored_at[i] for i in pick],
            {name: [values[i] for i in pick] for name, values in self.features.items()},
        )


def _size_of(queued: ScoreBatch | ScoreRecord) -> int:
    return 1 if isinstance(queued, ScoreRecord) else queued.count


class ScoreWrite(NamedTuple):
    """What one transaction stores: the queued batches side by side, each written with its own lead-field
    blob, so the writer never copies thousands of lead fields into one list per field."""

    parts: list[ScoreBatch]

    @property
    def count(self) -> int:
        return sum(part.count for part in self.parts)

    def rows(self, positions: Sequence[int]) -> ScoreWrite:
        """The scores at these positions (counted across the parts), in this order; for the rare bad row."""
        return ScoreWrite([concatenate(self.parts).rows(positions)])


def _as_write(queued: Sequence[ScoreBatch | ScoreRecord]) -> ScoreWrite:
    """Queued batches as they are, and each run of single records as one batch, in order."""
    parts: list[ScoreBatch] = []
    records: list[ScoreRecord] = []
    for item in queued:
        if isinstance(item, ScoreRecord):
            records.append(item)
            continue
        if records:
            parts.append(ScoreBatch.of_records(records))
            records = []
        parts.append(item)
    if records:
        parts.append(ScoreBatch.of_records(records))
    return ScoreWrite(parts)


def concatenate(batches: Sequence[ScoreBatch]) -> ScoreBatch:
    """One batch of several, in order; a lead field missing from some batch is null there."""
    if len(batches) == 1:
        return batches[0]
    names = dict.fromkeys(name for batch in batches for name in batch.features)
    return ScoreBatch(
        list(chain.from_iterable(b.lead_ids for b in batches)),
        list(chain.from_iterable(b.model_versions for b in batches)),
        list(chain.from_iterable(b.probabilities for b in batches)),
        list(chain.from_iterable(b.grades for b in batches)),
        list(chain.from_iterable(b.scored_at for b in batches)),
        {name: list(chain.from_iterable(b.features.get(name) or [None] * b.count for b in batches)) for name in names},
    )


@dataclass(frozen=True)
class StoreStats:
    """A snapshot of the writer's counters, for /metrics and /readyz; written + failed + queued = accepted."""

    queued: int  # accepted but not yet written: waiting in the queue or in the batch being written
    written: int
    failed: int  # given up after retries, rejected as unstorable, or still queued when stop() ran out of time
    rejected: int  # of the failed: scores the database (or the checks before it) refused; see score_rejects
    dropped: int  # refused because the queue was full (or the store was stopped)
    retries: int
    catch_up_waits: int  # batches that waited for the writer to catch up (see wait_for_writer)
    last_error: str | None


class LayoutError(Exception):
    """The database holds tables of an earlier leadscore layout."""


class StoreUnavailable(Exception):
    """The database cannot be reached; the message is safe to show (no password)."""


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


def database_url(url: str) -> URL:
    """Parse the configured URL; plain PostgreSQL URLs go to the psycopg 3 driver this project ships."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "the database URL is not valid; expected sqlite:///path/to/leadscore.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact_url(url: URL) -> str:
    """The URL with its password masked, for messages and logs."""
    return url.render_as_string(hide_password=True)


def describe_error(exc: BaseException, secret: str | None = None) -> str:
    """One line about a database error: the driver's own first line, never the SQL parameters or the password."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    message = f"{type(cause).__name__}: {lines[0] if lines else 'no message'}"
    return message.replace(secret, "***") if secret else message


def is_transient(exc: BaseException) -> bool:
    """Whether the error is about reaching the database (worth retrying) rather than about the data."""
    if isinstance(exc, _TRANSIENT_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _json_default(value: Any) -> Any:
    """Fallback for types orjson does not know: missing markers become null, anything else its text."""
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _check_length(name: str, value: str | None, limit: int) -> None:
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


_SCORE_COLUMNS = ("lead_id", "model_version", "probability", "grade", "scored_at")  # as written and as read


def _score_rows(dialect: Dialect, write: ScoreWrite) -> tuple[str, list[tuple[Any, ...]]]:
    """The scores INSERT in the driver's parameter style, and one tuple per row, stored as SQLAlchemy stores them."""
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO scores ({', '.join(_SCORE_COLUMNS)}) VALUES ({', '.join([marker] * len(_SCORE_COLUMNS))})"
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


class Reject(NamedTuple):
    """A score the writer could not store, as its dead letter: printable, and without the lead fields."""

    lead_id: str | None
    model_version: str | None
    scored_at: datetime | None
    reason: str


def _halves(start: int, stop: int) -> list[tuple[int, int]]:
    """The stretch split in two (one stretch when it holds a single score)."""
    if stop - start <= 1:
        return [(start, stop)]
    middle = (start + stop) // 2
    return [(start, middle), (middle, stop)]


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


_SQLITE_ROWS_PER_STATEMENT = 500  # 2,500 parameters, well under SQLite's limit of 32,766


@functools.cache
def _sqlite_multi_row_insert(rows: int) -> str:
    row = f"({', '.join(['?'] * len(_SCORE_COLUMNS))})"
    return f"INSERT INTO scores ({', '.join(_SCORE_COLUMNS)}) VALUES " + ", ".join([row] * rows)


def _insert_sqlite_rows(conn: Any, parameters: list[tuple[Any, ...]]) -> None:
    """Many rows per statement. The sqlite3 module lets go of the GIL around every statement it steps, and an
    executemany steps once per row: with request threads busy, the writer then waited for the GIL a thousand
    times per write and fell so far behind that the queue overflowed."""
    for start in range(0, len(parameters), _SQLITE_ROWS_PER_STATEMENT):
        chunk = parameters[start : start + _SQLITE_ROWS_PER_STATEMENT]
        conn.exec_driver_sql(_sqlite_multi_row_insert(len(chunk)), tuple(chain.from_iterable(chunk)))


def _columns_blob(batch: ScoreBatch) -> bytes:
    """A request's scores and lead fields, column by column, as JSON (NaN as null, numpy scalars as numbers).

    A batch's scores share one model version and one time: each is then stored once, not once per score,
    which makes the blob a quarter smaller (readers broadcast it, see ``_scores_frame``).
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


def _set_sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    """Let worker processes share one file: wait for locks, readers never block the writer, durable commits."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first, so the switch to WAL waits too
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """WAL mode, retried: while other connections open the same new file at the same moment, SQLite can refuse
    the switch at once as locked, without waiting out the busy timeout (seen with four workers starting)."""
    for attempt in range(1, WAL_SWITCH_ATTEMPTS + 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_ATTEMPTS:
                raise
            time.sleep(0.01 * attempt)


def build_engine(url: URL) -> Engine:
    """An engine that checks pooled connections before use and fails fast when the server is down."""
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "hide_parameters": True,  # lead fields must never reach an exception message or a log
    }
    if url.get_backend_name() == "postgresql":
        options |= {
            "pool_size": 5,
            "max_overflow": 10,
            "pool_timeout": POOL_TIMEOUT_S,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "leadscore"},
        }
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def _create_schema(engine: Engine) -> None:
    """Create the tables once, even when several worker processes start at the same moment."""
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # the others wait here, then find the tables made
                    conn.execute(select(func.pg_advisory_xact_lock(*_SCHEMA_LOCK)))
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


def _outcome_dict(row: Row[Any], revision: int) -> dict[str, Any]:
    """One outcome report as the API returns it."""
    return {
        "lead_id": row.lead_id,
        "converted": bool(row.converted),
        "value": row.value,
        "occurred_at": row.occurred_at,
        "reported_at": row.reported_at,
        "revision": revision,
    }


def _utc_series(values: list[Any]) -> pd.Series:
    """A datetime64 UTC column, also when empty."""
    return pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[us, UTC]")


def _scores_frame(blobs: Sequence[bytes], limit: int) -> pd.DataFrame:
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
                "scored_at": _utc_series([]),
            }
        )
    frame = pd.concat(parts, ignore_index=True).head(limit)
    frame["probability"] = frame["probability"].astype("float64")
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    frame = frame.sort_values("scored_at", ascending=False, kind="stable", ignore_index=True)
    names = {c: c.removeprefix("feature:") for c in frame.columns if c.startswith("feature:")}
    return frame.rename(columns={c: f"feature_{n}" if n in _SCORE_COLUMNS else n for c, n in names.items()})


def _scored_outcomes_frame(pairs: Sequence[tuple[Row[Any], Row[Any]]]) -> pd.DataFrame:
    """Latest score beside latest outcome, one row per lead, with stable dtypes even when empty."""
    scores = [score for score, _ in pairs]
    outcomes = [outcome for _, outcome in pairs]
    return pd.DataFrame(
        {
            "lead_id": pd.Series([r.lead_id for r in scores], dtype=object),
            "model_version": pd.Series([r.model_version for r in scores], dtype=object),
            "probability": pd.Series([r.probability for r in scores], dtype="float64"),
            "grade": pd.Series([r.grade for r in scores], dtype=object),
            "scored_at": _utc_series([r.scored_at for r in scores]),
            "converted": pd.Series([bool(r.converted) for r in outcomes], dtype=bool),
            "value": pd.Series([r.value for r in outcomes], dtype="float64"),
            "occurred_at": _utc_series([r.occurred_at for r in outcomes]),
            "reported_at": _utc_series([r.reported_at for r in outcomes]),
        },
        columns=_OUTCOME_COLUMNS,
    )


def _score_ids_of(lead_ids: list[str]) -> Any:
    """The ids of these leads' scores: from the lead index's chunks, plus the unindexed tail after the last chunk.

    One statement, so it reads one snapshot: a chunk made meanwhile cannot hide or double a score.
    """
    s, chunks, entries = scores_table.c, score_chunks_table.c, score_lead_chunks_table.c
    indexed_through = select(func.coalesce(func.max(chunks.last_id), 0)).scalar_subquery()
    return union_all(
        # naming every chunk lets the database probe each one's (chunk, lead_id) range in the primary key
        select(entries.score_id).where(entries.chunk.in_(select(chunks.first_id)), entries.lead_id.in_(lead_ids)),
        select(s.id).where(s.id > indexed_through, s.lead_id.in_(lead_ids)),
    )


def _latest_scores_of(lead_ids: list[str]) -> Any:
    """Each lead's latest score (by time, then id)."""
    s = scores_table.c
    ranked = (
        select(
            s.id,
            s.lead_id,
            s.model_version,
            s.probability,
            s.grade,
            s.scored_at,
            func.row_number().over(partition_by=s.lead_id, order_by=(s.scored_at.desc(), s.id.desc())).label("rank"),
        )
        .where(s.id.in_(_score_ids_of(lead_ids)))
        .subquery()
    )
    return select(ranked).where(ranked.c.rank == 1)


_running_stores: weakref.WeakSet[ScoreStore] = weakref.WeakSet()


@atexit.register
def _stop_running_stores() -> None:
    """Last resort when the app forgot stop(): write what is queued before the interpreter exits."""
    for store in list(_running_stores):
        store.stop(timeout_s=10.0)


class ScoreStore:
    """Score log and outcomes in one database; safe to share between threads (one instance per worker process)."""

    def __init__(
        self,
        url: str,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        max_queue: int = 200_000,
        retry_delays_s: tuple[float, ...] = (0.1, 0.5, 1, 2, 5),
        index_every: int = INDEX_EVERY,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or index_every < 1 or flush_interval_s <= 0:
            raise ValueError("batch_size, max_queue and index_every must be at least 1 and flush_interval_s above 0")
        self._url = database_url(url)
        self.safe_url = redact_url(self._url)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_queue = max_queue
        self._retry_delays_s = tuple(retry_delays_s)
        self._index_every = index_every
        self._written_since_index_check = 0
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)  # the writer waits here
        self._progress = threading.Condition(self._lock)  # flush() waits here
        self._pending: deque[ScoreBatch | ScoreRecord] = deque()
        self._pending_rows = 0
        self._in_flight = 0
        self._accepted = 0
        # durable replies: each queued request's ticket is the count of scores accepted through it; writes take
        # the queue in order, so one number says how far writing has got, and a short list which writes failed
        self._taken = 0  # scores taken off the queue into writes, so far
        self._completed = 0  # scores whose writes have finished, stored or not
        self._failed_spans: deque[tuple[int, int]] = deque(maxlen=FAILED_SPANS_KEPT)
        self._waiters: list[tuple[int, Callable[[bool], None]]] = []
        self._done = 0  # written + failed
        self._flush_target = 0
        self._stopping = False
        self._closed = False
        self._deadline: float | None = None
        self._written = 0
        self._failed = 0
        self._rejected = 0
        self._rejects: list[Reject] = []  # dead letters not yet recorded (writer thread only)
        self._dropped = 0
        self._retries = 0
        self._catch_up_waits = 0
        self._last_error: str | None = None
        self._last_drop_warning = -math.inf

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, create the schema and start the writer; raise StoreUnavailable if the database is unreachable."""
        if self._thread is not None:
            return
        engine: Engine | None = None
        try:
            engine = build_engine(self._url)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            _create_schema(engine)
        except Exception as exc:
            if engine is not None:
                engine.dispose()
            if isinstance(exc, LayoutError):
                raise StoreUnavailable(f"cannot use the score database at {self.safe_url}: {exc}") from exc
            raise StoreUnavailable(
                f"cannot open the score database at {self.safe_url} ({describe_error(exc, self._url.password)}); "
                "check LEADSCORE_DATABASE_URL and that the database is running"
            ) from exc
        with self._lock:
            self._engine = engine
            self._stopping = self._closed = False
            self._deadline = None
            self._thread = threading.Thread(target=self._run_writer, args=(engine,), name="score-writer", daemon=True)
            self._thread.start()
        _running_stores.add(self)
        log.info("score store ready at %s", self.safe_url)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the writer and close connections; safe to call twice."""
        with self._lock:
            thread = self._thread
            self._stopping = self._closed = True
            self._deadline = time.monotonic() + timeout_s
            self._has_work.notify_all()
        if thread is not None:
            thread.join(timeout_s + STOP_JOIN_GRACE_S)
            if thread.is_alive():
                log.error("score writer still busy after %.1f s; closing the database connections anyway", timeout_s)
        with self._lock:
            self._abandon_queue("the store stopped before they were written")
            self._thread = None
            engine, self._engine = self._engine, None
        _running_stores.discard(self)
        if engine is not None:
            engine.dispose()

    def ping(self) -> bool:
        """Whether a SELECT 1 succeeds right now, for /readyz."""
        engine = self._engine
        if engine is None:
            return False
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    # ---- the score log: request side -------------------------------------------------------------------------

    def enqueue(self, batch: ScoreBatch | ScoreRecord) -> int | None:
        """Hand scores to the writer: an append under a short lock, no I/O, never an exception. Returns a ticket
        for ``when_stored``, or None when some of the scores were dropped (a full queue, a stopped store).

        One lead's score may come as a ``ScoreRecord``: two objects instead of a batch's two dozen lists,
        which the garbage collector would otherwise walk while thousands of single scores wait to be written.
        """
        try:
            count = _size_of(batch)
            if not count:
                return self._accepted
            with self._lock:
                room = 0 if self._closed else self._max_queue - self._pending_rows
                accepted = max(min(count, room), 0)
                if accepted:
                    was_empty = not self._pending
                    self._pending.append(batch if accepted == count else batch.rows(range(accepted)))  # type: ignore[union-attr]
                    self._pending_rows += accepted
                    self._accepted += accepted
                    if was_empty or self._pending_rows >= self._batch_size:
                        self._has_work.notify()
                dropped = count - accepted
                self._dropped += dropped
                ticket = self._accepted
            if dropped:
                self._warn_dropped()
                return None
            return ticket
        except Exception:  # the reply must not fail because the score log did
            log.exception("scores could not be queued for the score log; they are not stored")
            return None

    def when_stored(self, ticket: int, callback: Callable[[bool], None]) -> None:
        """Call ``callback(stored)`` once the write holding the scores of ``ticket`` has finished: True if it
        stored every score it held, False if any failed. From the writer thread, or at once if already known;
        the writer stops lingering for a fuller batch while anyone waits."""
        with self._lock:
            if ticket <= self._completed:
                outcome = self._stored_through(ticket)
            else:
                self._waiters.append((ticket, callback))
                self._flush_target = max(self._flush_target, ticket)
                self._has_work.notify()
                return
        callback(outcome)

    def _stored_through(self, ticket: int) -> bool:
        """Whether the write that held ``ticket``'s last score stored everything (caller holds the lock)."""
        return not any(first < ticket <= last for first, last in self._failed_spans)

    def _complete(self, through: int, stored: bool) -> None:
        """Writing has got through ``through`` scores; wake the durable replies waiting on them."""
        with self._lock:
            if not stored:
                self._failed_spans.append((self._completed, through))
            self._completed = through
            due = [(ticket, callback) for ticket, callback in self._waiters if ticket <= through]
            self._waiters = [(ticket, callback) for ticket, callback in self._waiters if ticket > through]
            outcomes = [(callback, self._stored_through(ticket)) for ticket, callback in due]
        for callback, outcome in outcomes:
            try:
                callback(outcome)
            except Exception:  # a waiter gone away must not stop the writer
                log.exception("score log: a durable reply could not be woken")

    def enqueue_records(self, records: Sequence[ScoreRecord]) -> None:
        """As ``enqueue``, for several scores one record each."""
        self.enqueue(ScoreBatch.of_records(records))

    def wait_for_writer(self, timeout_s: float = CATCH_UP_WAIT_S) -> bool:
        """Block while the writer is behind (a tenth of the queue or more waiting), so that sustained batch
        traffic runs at the pace scores are stored rather than filling the queue until scores are dropped.

        For worker threads only, never the event loop. Returns False if the writer did not catch up in time
        (a database outage, say): the caller then queues its scores anyway, and a full queue counts what it drops.
        """
        backlog = self._max_queue // 10

        def caught_up() -> bool:
            return self._pending_rows + self._in_flight <= backlog or self._thread is None or self._closed

        with self._lock:
            if caught_up():
                return True
            self._catch_up_waits += 1
            return self._progress.wait_for(caught_up, timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until every score queued so far is written or given up; TimeoutError if that takes longer."""
        with self._lock:
            target = self._accepted
            if self._done >= target:
                return
            if self._thread is None:
                raise RuntimeError("the score store is not started; call start() before flush()")
            self._flush_target = max(self._flush_target, target)
            self._has_work.notify()
            if not self._progress.wait_for(lambda: self._done >= target, timeout_s):
                missing = target - self._done
                raise TimeoutError(f"{missing} scores still not written after {timeout_s:g} s; see stats.last_error")

    @property
    def stats(self) -> StoreStats:
        """The writer's counters right now."""
        with self._lock:
            return StoreStats(
                queued=self._pending_rows + self._in_flight,
                written=self._written,
                failed=self._failed,
                rejected=self._rejected,
                dropped=self._dropped,
                retries=self._retries,
                catch_up_waits=self._catch_up_waits,
                last_error=self._last_error,
            )

    def _warn_dropped(self) -> None:
        """Say so when the queue overflows, at most every few seconds so an outage does not flood the log."""
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARNING_INTERVAL_S:
            self._last_drop_warning = now
            log.warning(
                "score queue full (%d) or store stopped: %d scores dropped so far", self._max_queue, self._dropped
            )

    # ---- the score log: writer thread ------------------------------------------------------------------------

    def _run_writer(self, engine: Engine) -> None:
        """Take batches off the queue and write each in one transaction, until stopped and drained."""
        while (write := self._next_batch()) is not None:
            failed_before, through = self._failed, self._taken
            try:
                self._write_batch(engine, write)
                if self._rejects:
                    self._record_rejects(engine)
            except Exception as exc:  # a bug here must not kill the thread and leave records unaccounted for
                log.exception("score writer failed unexpectedly; %d scores not written", write.count)
                self._rejects = []
                with self._lock:
                    self._settle_locked(failed=self._in_flight, error=describe_error(exc, self._url.password))
            self._complete(through, stored=self._failed == failed_before)
            # looking for a due chunk costs a transaction: do it after every eighth of a chunk's scores
            self._written_since_index_check += write.count
            if self._written_since_index_check * 8 >= self._index_every:
                self._written_since_index_check = 0
                self._index_new_scores(engine)

    def _next_batch(self) -> ScoreWrite | None:
        """Wait for a full batch, the flush interval, a flush request or shutdown; None once stopped and drained."""
        with self._lock:
            linger_until: float | None = None
            while True:
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self._abandon_queue("stop() ran out of time before they were written")
                    return None
                waiting = self._pending_rows
                if waiting >= self._batch_size:
                    break
                if not waiting:
                    if self._stopping:
                        return None
                    linger_until = None
                    self._has_work.wait()
                    continue
                if self._stopping or self._flush_target > self._done:
                    break
                now = time.monotonic()
                linger_until = linger_until or now + self._flush_interval_s
                if now >= linger_until:
                    break
                self._has_work.wait(linger_until - now)
            # whole requests' batches, up to about batch_size scores; single records at most RECORDS_PER_WRITE,
            # as turning them into columns is a stretch of pure Python that requests wait behind
            taken = [self._pending.popleft()]
            size = _size_of(taken[0])
            records = 1 if isinstance(taken[0], ScoreRecord) else 0
            while self._pending and size + _size_of(self._pending[0]) <= self._batch_size:
                if isinstance(self._pending[0], ScoreRecord):
                    if records >= RECORDS_PER_WRITE:
                        break
                    records += 1
                taken.append(self._pending.popleft())
                size += _size_of(taken[-1])
            write = _as_write(taken)
            self._pending_rows -= write.count
            self._in_flight = write.count
            self._taken += write.count
            return write

    def _write_batch(self, engine: Engine, write: ScoreWrite) -> None:
        """Store one write, retrying through outages; every score ends up counted as written or failed."""
        rows: ScoreWrite | None = self._storable(write)
        attempt = 0
        while rows is not None:
            try:
                self._insert(engine, rows)
            except Exception as exc:
                error: BaseException = exc
                if not is_transient(exc):  # bad data, not a bad connection: isolate the culprits by halving
                    rows, error = self._insert_bisecting(engine, rows)
                    if rows is None:
                        return
                if attempt >= len(self._retry_delays_s) or not self._wait_before_retry(error, attempt):
                    self._give_up(rows, error, attempt + 1)
                    return
                attempt += 1
                continue
            if attempt:
                log.info("score log: database reachable again; %d scores written", rows.count)
            self._settle(written=rows.count)
            return

    def _storable(self, write: ScoreWrite) -> ScoreWrite | None:
        """The scores that can be stored; the others are rejected, saying why (no values)."""
        problems = unstorable_rows_of(write)
        if not problems:
            return write
        scores = concatenate(write.parts)
        for position, problem in problems.items():
            self._reject(scores.rows([position]), f"score record rejected: {problem}")
        if len(problems) == write.count:
            return None
        return write.rows([i for i in range(write.count) if i not in problems])

    def _reject(self, scores: ScoreBatch, message: str) -> None:
        """Keep dead letters for these scores; ``_record_rejects`` stores them, then counts the scores."""
        log.warning("score log: %s", message)
        self._rejects += rejects_of(scores, message)

    def _record_rejects(self, engine: Engine) -> None:
        """Store the dead letters in one transaction, keeping the newest ``REJECTS_KEPT`` (best effort), then count
        their scores as failed and rejected: once flush() returns, the letters can be read."""
        rejects, self._rejects = self._rejects, []
        try:
            self._store_rejects(engine, rejects)
        finally:
            with self._lock:
                self._rejected += len(rejects)
                self._settle_locked(failed=len(rejects), error=rejects[-1].reason)

    def _store_rejects(self, engine: Engine, rejects: list[Reject]) -> None:
        """One insert and one trim; a failure is logged, never raised (the scores are counted either way)."""
        r = score_rejects_table.c
        now = datetime.now(UTC)
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(score_rejects_table), [{"rejected_at": now, **reject._asdict()} for reject in rejects]
                )
                newest = conn.execute(select(func.max(r.id))).scalar_one()
                conn.execute(score_rejects_table.delete().where(r.id <= newest - REJECTS_KEPT))
        except Exception as exc:
            log.error(
                "score log: %d dead letters not recorded (%s)", len(rejects), describe_error(exc, self._url.password)
            )

    @staticmethod
    def _insert(engine: Engine, write: ScoreWrite) -> None:
        """One transaction: a columns blob per part, then the narrow rows as ready-made tuples, straight to the driver.

        SQLAlchemy's per-row type processing costs ~20 µs a row under the GIL, which the request threads
        feel as latency; ready-made tuples (an executemany, or multi-row statements on SQLite) cost a fraction.
        """
        sql, parameters = _score_rows(engine.dialect, write)
        blobs = [{"size": part.count, "columns": _columns_blob(part)} for part in write.parts]
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # ids become visible in order, as on SQLite (see _index_new_scores)
                conn.execute(select(func.pg_advisory_xact_lock(*_SCORE_LOG_LOCK)))
            conn.execute(insert(score_batches_table), blobs)
            if conn.dialect.name == "sqlite":
                _insert_sqlite_rows(conn, parameters)
            else:
                conn.exec_driver_sql(sql, parameters)

    def _insert_bisecting(self, engine: Engine, write: ScoreWrite) -> tuple[ScoreWrite | None, BaseException]:
        """Store what the database takes of a refused write, halving each refused stretch until a refused score
        stands alone and is rejected: about 2·log2(n) transactions per bad score, where one per score would let
        a few bad leads a second bring the writer to a crawl. Stops at a connection error; returns what is left.
        """
        last_error: BaseException = RuntimeError("no error")
        scores = concatenate(write.parts)
        stretches = list(reversed(_halves(0, scores.count)))  # a stack, the first stretch on top: stored in order
        while stretches:
            start, stop = stretches.pop()
            part = scores.rows(range(start, stop))
            try:
                self._insert(engine, ScoreWrite([part]))
            except Exception as exc:
                if is_transient(exc):
                    left = [i for a, b in [(start, stop), *reversed(stretches)] for i in range(a, b)]
                    return ScoreWrite([scores.rows(left)]), exc
                last_error = exc
                if stop - start == 1:
                    self._reject(
                        part, f"score record rejected by the database: {describe_error(exc, self._url.password)}"
                    )
                else:
                    stretches += reversed(_halves(start, stop))
                continue
            self._settle(written=stop - start)
        return None, last_error

    def _index_new_scores(self, engine: Engine) -> None:
        """Once ``index_every`` scores wait unindexed, add them to the lead index as one chunk sorted by lead id.

        Each chunk lands after the previous ones, so the index only ever grows at its end. Ids must become
        visible in order for the tail (ids after the last chunk) to hold every unindexed score: SQLite has
        one writer at a time, and on PostgreSQL writes and chunks take the same advisory lock.
        """
        chunks, s = score_chunks_table.c, scores_table.c
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(*_SCORE_LOG_LOCK)))
                indexed = conn.execute(select(func.coalesce(func.max(chunks.last_id), 0))).scalar_one()
                newest = conn.execute(select(func.coalesce(func.max(s.id), 0))).scalar_one()
                if newest - indexed < self._index_every:
                    return
                # another worker process making the same chunk fails here, on the chunk's key, and rolls back
                conn.execute(insert(score_chunks_table), {"first_id": indexed + 1, "last_id": newest})
                rows = (
                    select(literal(indexed + 1, BigInteger), s.lead_id, s.id)
                    .where(s.id > indexed, s.id <= newest, s.lead_id.is_not(None))
                    .order_by(s.lead_id, s.id)
                )
                conn.execute(score_lead_chunks_table.insert().from_select(["chunk", "lead_id", "score_id"], rows))
        except Exception as exc:  # the scores are stored; the chunk is made on a later try
            log.info("score log: lead index not extended this time (%s)", describe_error(exc, self._url.password))

    def _wait_before_retry(self, error: BaseException, attempt: int) -> bool:
        """Count and log a retry, then sleep its delay; False when stop()'s deadline leaves no time for it."""
        delay = self._retry_delays_s[attempt]
        with self._lock:
            if self._deadline is not None and time.monotonic() + delay >= self._deadline:
                return False
            self._retries += 1
            self._last_error = describe_error(error, self._url.password)
        log.warning(
            "score log: write to %s failed (%s); retry %d/%d in %.2g s",
            self.safe_url,
            self._last_error,
            attempt + 1,
            len(self._retry_delays_s),
            delay,
        )
        time.sleep(delay)
        return True

    def _give_up(self, rows: ScoreWrite, error: BaseException, attempts: int) -> None:
        """Count a batch as failed after its last attempt, loudly."""
        reason = describe_error(error, self._url.password)
        message = f"gave up on {rows.count} scores after {attempts} attempts: {reason}"
        log.error("score log (%s): %s", self.safe_url, message)
        self._settle(failed=rows.count, error=message)

    def _settle(self, written: int = 0, failed: int = 0, error: str | None = None) -> None:
        """Record the fate of records from the batch in flight and wake flush() callers."""
        with self._lock:
            self._settle_locked(written, failed, error)

    def _settle_locked(self, written: int = 0, failed: int = 0, error: str | None = None) -> None:
        """As _settle, for a caller already holding the lock."""
        self._written += written
        self._failed += failed
        self._done += written + failed
        self._in_flight -= written + failed
        if error is not None:
            self._last_error = error
        self._progress.notify_all()

    def _abandon_queue(self, reason: str) -> None:
        """Count what is still queued as failed (caller holds the lock): shutdown must not lose records silently."""
        if not self._pending:
            return
        lost = self._pending_rows
        self._pending.clear()
        self._pending_rows = 0
        self._failed += lost
        self._done += lost
        self._taken += lost
        self._last_error = f"{lost} scores not written: {reason}"
        self._progress.notify_all()
        log.error("score log: %s", self._last_error)
        self._failed_spans.append((self._completed, self._taken))
        self._completed = self._taken
        waiting, self._waiters = self._waiters, []
        for _, callback in waiting:  # called under the lock: the callbacks only schedule work elsewhere
            try:
                callback(False)
            except Exception:
                log.exception("score log: a durable reply could not be woken")

    # ---- outcomes --------------------------------------------------------------------------------------------

    def record_outcome(
        self, lead_id: str, converted: bool, value: float | None, occurred_at: datetime | None
    ) -> dict[str, Any]:
        """Store one outcome report and commit before returning, so an acknowledged report is never lost."""
        _check_length("lead_id", lead_id, LEAD_ID_LENGTH)
        if value is not None and not math.isfinite(value):
            raise ValueError("value is not a finite number")
        row = {
            "lead_id": lead_id,
            "converted": bool(converted),
            "value": None if value is None else float(value),
            "occurred_at": None if occurred_at is None else as_utc(occurred_at),
            "reported_at": datetime.now(UTC),
        }
        with self._database("record the outcome") as engine, engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # concurrent reports for one lead get distinct revisions
                conn.execute(select(func.pg_advisory_xact_lock(_OUTCOME_LOCK_NAMESPACE, func.hashtext(lead_id))))
            conn.execute(outcomes_table.insert(), row)
            revision = conn.execute(
                select(func.count()).select_from(outcomes_table).where(outcomes_table.c.lead_id == lead_id)
            ).scalar_one()
        return {**row, "revision": int(revision)}

    def latest_outcome(self, lead_id: str) -> dict[str, Any] | None:
        """The report that counts for this lead (the latest one), with its revision number."""
        history = self.outcome_history(lead_id)
        return history[-1] if history else None

    def outcome_history(self, lead_id: str) -> list[dict[str, Any]]:
        """Every report for this lead, oldest first; revision numbers count from 1."""
        query = select(outcomes_table).where(outcomes_table.c.lead_id == lead_id).order_by(outcomes_table.c.id)
        rows = self._fetch("read outcomes", query)
        return [_outcome_dict(row, revision) for revision, row in enumerate(rows, start=1)]

    # ---- reads for the API and monitoring --------------------------------------------------------------------

    def rejected_scores(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest dead letters: scores the writer could not store, and why."""
        r = score_rejects_table.c
        query = select(r.rejected_at, r.lead_id, r.model_version, r.scored_at, r.reason).order_by(r.id.desc())
        return [dict(row._mapping) for row in self._fetch("read rejected scores", query.limit(limit))]

    def score_history(self, lead_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """This lead's scores, newest first."""
        s = scores_table.c
        query = (
            select(s.model_version, s.probability, s.grade, s.scored_at)
            .where(s.id.in_(_score_ids_of([lead_id])))
            .order_by(s.scored_at.desc(), s.id.desc())
            .limit(limit)
        )
        return [dict(row._mapping) for row in self._fetch("read scores", query)]

    def recent_scores(self, limit: int) -> pd.DataFrame:
        """The newest scores with one column per lead field, for drift monitoring."""
        b = score_batches_table.c
        blobs: list[bytes] = []
        found, before = 0, None
        with self._database("read recent scores") as engine, engine.connect() as conn:
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
        return _scores_frame(blobs, limit)

    def scored_outcomes(self, limit: int = 100_000) -> pd.DataFrame:
        """Per lead with both: its latest score beside its latest outcome, newest scores first, for live performance."""
        o = outcomes_table.c
        latest_reports = select(outcomes_table).where(o.id.in_(select(func.max(o.id)).group_by(o.lead_id)))
        outcomes = {row.lead_id: row for row in self._fetch("read outcomes", latest_reports)}
        leads = list(outcomes)
        scores = []
        for start in range(0, len(leads), LOOKUP_CHUNK):
            scores += self._fetch("read scored outcomes", _latest_scores_of(leads[start : start + LOOKUP_CHUNK]))
        scores.sort(key=lambda row: (row.scored_at, row.id), reverse=True)
        return _scored_outcomes_frame([(score, outcomes[score.lead_id]) for score in scores[:limit]])

    # ---- plumbing --------------------------------------------------------------------------------------------

    @contextmanager
    def _database(self, action: str) -> Iterator[Engine]:
        """The engine, with outages turned into StoreUnavailable (a 503 for the caller), password-free."""
        engine = self._engine
        if engine is None:
            raise StoreUnavailable(f"cannot {action}: the score store is not started")
        try:
            yield engine
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise StoreUnavailable(
                f"cannot {action}: the database at {self.safe_url} is unavailable "
                f"({describe_error(exc, self._url.password)})"
            ) from exc

    def _fetch(self, action: str, query: Any) -> Sequence[Row[Any]]:
        """Run a read and return all rows."""
        with self._database(action) as engine, engine.connect() as conn:
            return conn.execute(query).all()
