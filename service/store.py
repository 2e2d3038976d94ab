"""The score log and the outcomes store: every score is kept for drift monitoring, every outcome for live performance.

Scores go through a background writer thread in batches, so the request path only appends to an in-memory queue;
outcomes are committed before the caller replies. SQLite by default (several worker processes share one WAL file),
PostgreSQL when the URL points at one. SQLAlchemy Core only: bulk inserts without ORM bookkeeping.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any, NamedTuple

import orjson
import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    func,
    select,
    text,
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
STOP_JOIN_GRACE_S = 2.0
DROP_WARNING_INTERVAL_S = 10.0
# PostgreSQL advisory-lock namespaces (first key of the two-key form): schema creation, outcome reports per lead.
_SCHEMA_LOCK = (0x1EAD, 0)
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
    """One score as the service produced it; the writer thread turns it into a row.

    A named tuple: batches create thousands of these on the request path, and a frozen dataclass costs
    several times more to build.
    """

    lead_id: str | None
    model_version: str
    probability: float
    grade: str
    scored_at: datetime  # timezone-aware UTC
    features: dict[str, Any]  # JSON-serialisable lead fields (PII already removed by the caller)


@dataclass(frozen=True)
class StoreStats:
    """A snapshot of the writer's counters, for /metrics and /readyz; written + failed + queued = accepted."""

    queued: int  # accepted but not yet written: waiting in the queue or in the batch being written
    written: int
    failed: int  # given up after retries, rejected as unstorable, or still queued when stop() ran out of time
    dropped: int  # refused because the queue was full (or the store was stopped)
    retries: int
    last_error: str | None


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
    Column("scored_at", UTCDateTime, nullable=False, index=True),
    Column("features", JSON, nullable=False),
    # Serves lookups by lead and "this lead's latest score" straight from the index, whatever the planner's statistics.
    Index("ix_scores_lead_id_scored_at", "lead_id", "scored_at", "id"),
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


def dump_json(value: Any) -> str:
    """Serialise features fast; NaN becomes null (PostgreSQL's json type rejects NaN) and numpy scalars work."""
    return orjson.dumps(
        value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    ).decode()


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


def score_row(record: ScoreRecord) -> ScoreRecord:
    """The record as it will be stored, validated so one bad record cannot sink its whole batch."""
    lead_id, model_version, probability, grade, scored_at, features = record
    _check_length("lead_id", lead_id, LEAD_ID_LENGTH)
    _check_length("model_version", model_version, MODEL_VERSION_LENGTH)
    _check_length("grade", grade, GRADE_LENGTH)
    probability = float(probability)
    if not math.isfinite(probability):
        raise ValueError("probability is not a finite number")
    return ScoreRecord(lead_id, model_version, probability, grade, as_utc(scored_at), features)


_SCORE_COLUMNS = ScoreRecord._fields


def _driver_insert(dialect: Dialect, rows: list[ScoreRecord]) -> tuple[str, list[tuple[Any, ...]]]:
    """The scores INSERT in the driver's parameter style, and one tuple per row, stored as SQLAlchemy stores them."""
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO scores ({', '.join(_SCORE_COLUMNS)}) VALUES ({', '.join([marker] * len(_SCORE_COLUMNS))})"
    timestamp = _sqlite_timestamp if dialect.name == "sqlite" else None
    stamped: dict[datetime, Any] = {}  # a batch's scores mostly share one time: format each time once
    parameters = []
    for lead_id, model_version, probability, grade, scored_at, features in rows:
        at = stamped.get(scored_at)
        if at is None:
            at = stamped[scored_at] = timestamp(scored_at) if timestamp else scored_at
        parameters.append((lead_id, model_version, probability, grade, at, dump_json(features)))
    return sql, parameters


def _sqlite_timestamp(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (naive UTC, microseconds), so reads through the table parse it."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _set_sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    """Let worker processes share one file: wait for locks, readers never block the writer, durable commits."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first, so the switch to WAL waits too
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def build_engine(url: URL) -> Engine:
    """An engine that checks pooled connections before use and fails fast when the server is down."""
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "hide_parameters": True,  # lead fields must never reach an exception message or a log
        "json_serializer": dump_json,
        "json_deserializer": orjson.loads,
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
            return
        except DBAPIError:
            # SQLite: another process created a table between our check and our CREATE; look again.
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)


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


def _scores_frame(rows: Sequence[Row[Any]]) -> pd.DataFrame:
    """Scores as a table with one column per feature; a feature named like a score column gets a `feature_` prefix."""
    frame = pd.DataFrame(
        {
            "lead_id": pd.Series([r.lead_id for r in rows], dtype=object),
            "model_version": pd.Series([r.model_version for r in rows], dtype=object),
            "probability": pd.Series([r.probability for r in rows], dtype="float64"),
            "grade": pd.Series([r.grade for r in rows], dtype=object),
            "scored_at": _utc_series([r.scored_at for r in rows]),
        }
    )
    features = pd.DataFrame.from_records([r.features or {} for r in rows], index=frame.index)
    features = features.rename(columns={c: f"feature_{c}" for c in features.columns if c in frame.columns})
    return pd.concat([frame, features], axis=1) if len(features.columns) else frame


def _scored_outcomes_frame(rows: Sequence[Row[Any]]) -> pd.DataFrame:
    """Latest score beside latest outcome, one row per lead, with stable dtypes even when empty."""
    return pd.DataFrame(
        {
            "lead_id": pd.Series([r.lead_id for r in rows], dtype=object),
            "model_version": pd.Series([r.model_version for r in rows], dtype=object),
            "probability": pd.Series([r.probability for r in rows], dtype="float64"),
            "grade": pd.Series([r.grade for r in rows], dtype=object),
            "scored_at": _utc_series([r.scored_at for r in rows]),
            "converted": pd.Series([bool(r.converted) for r in rows], dtype=bool),
            "value": pd.Series([r.value for r in rows], dtype="float64"),
            "occurred_at": _utc_series([r.occurred_at for r in rows]),
            "reported_at": _utc_series([r.reported_at for r in rows]),
        },
        columns=_OUTCOME_COLUMNS,
    )


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
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval_s <= 0:
            raise ValueError("batch_size and max_queue must be at least 1 and flush_interval_s above 0")
        self._url = database_url(url)
        self.safe_url = redact_url(self._url)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_queue = max_queue
        self._retry_delays_s = tuple(retry_delays_s)
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)  # the writer waits here
        self._progress = threading.Condition(self._lock)  # flush() waits here
        self._pending: deque[ScoreRecord] = deque()
        self._in_flight = 0
        self._accepted = 0
        self._done = 0  # written + failed
        self._flush_target = 0
        self._stopping = False
        self._closed = False
        self._deadline: float | None = None
        self._written = 0
        self._failed = 0
        self._dropped = 0
        self._retries = 0
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

    def enqueue(self, records: Sequence[ScoreRecord]) -> None:
        """Hand scores to the writer: an append under a short lock, no I/O, never an exception."""
        try:
            count = len(records)
            if not count:
                return
            with self._lock:
                room = 0 if self._closed else self._max_queue - len(self._pending)
                accepted = min(count, room)
                if accepted > 0:
                    was_empty = not self._pending
                    self._pending.extend(records if accepted == count else islice(records, accepted))
                    self._accepted += accepted
                    if was_empty or len(self._pending) >= self._batch_size:
                        self._has_work.notify()
                dropped = count - max(accepted, 0)
                self._dropped += dropped
            if dropped:
                self._warn_dropped()
        except Exception:  # the reply must not fail because the score log did
            log.exception("scores could not be queued for the score log; they are not stored")

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
                queued=len(self._pending) + self._in_flight,
                written=self._written,
                failed=self._failed,
                dropped=self._dropped,
                retries=self._retries,
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
        while (batch := self._next_batch()) is not None:
            try:
                self._write_batch(engine, batch)
            except Exception as exc:  # a bug here must not kill the thread and leave records unaccounted for
                log.exception("score writer failed unexpectedly; %d scores not written", len(batch))
                with self._lock:
                    self._settle_locked(failed=self._in_flight, error=describe_error(exc, self._url.password))

    def _next_batch(self) -> list[ScoreRecord] | None:
        """Wait for a full batch, the flush interval, a flush request or shutdown; None once stopped and drained."""
        with self._lock:
            linger_until: float | None = None
            while True:
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self._abandon_queue("stop() ran out of time before they were written")
                    return None
                waiting = len(self._pending)
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
            size = min(len(self._pending), self._batch_size)
            batch = [self._pending.popleft() for _ in range(size)]
            self._in_flight = size
            return batch

    def _write_batch(self, engine: Engine, batch: list[ScoreRecord]) -> None:
        """Write one batch, retrying through outages; every record ends up counted as written or failed."""
        rows = self._valid_rows(batch)
        attempt = 0
        while rows:
            try:
                self._insert(engine, rows)
            except Exception as exc:
                error: BaseException = exc
                if not is_transient(exc):  # bad data, not a bad connection: find the culprits row by row
                    rows, error = self._insert_one_by_one(engine, rows)
                    if not rows:
                        return
                if attempt >= len(self._retry_delays_s) or not self._wait_before_retry(error, attempt):
                    self._give_up(rows, error, attempt + 1)
                    return
                attempt += 1
                continue
            if attempt:
                log.info("score log: database reachable again; %d scores written", len(rows))
            self._settle(written=len(rows))
            return

    def _valid_rows(self, batch: list[ScoreRecord]) -> list[ScoreRecord]:
        """Rows for the records that can be stored; the others are counted as failed, saying why (no values)."""
        rows: list[ScoreRecord] = []
        for record in batch:
            try:
                rows.append(score_row(record))
            except Exception as exc:
                message = f"score record rejected: {type(exc).__name__}: {exc}"
                log.warning("score log: %s", message)
                self._settle(failed=1, error=message)
        return rows

    @staticmethod
    def _insert(engine: Engine, rows: list[ScoreRecord]) -> None:
        """One executemany in one transaction, straight to the driver.

        SQLAlchemy's per-row type processing costs ~20 µs a row under the GIL, which the request threads
        feel as latency; the driver's executemany of ready-made tuples costs a fraction of that.
        """
        sql, parameters = _driver_insert(engine.dialect, rows)
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, parameters)

    def _insert_one_by_one(self, engine: Engine, rows: list[ScoreRecord]) -> tuple[list[ScoreRecord], BaseException]:
        """Store what can be stored and count the rest as failed; stop at a connection error and return what is left."""
        last_error: BaseException = RuntimeError("no error")
        for position, row in enumerate(rows):
            try:
                self._insert(engine, [row])
            except Exception as exc:
                if is_transient(exc):
                    return rows[position:], exc
                message = f"score record rejected by the database: {describe_error(exc, self._url.password)}"
                log.warning("score log: %s", message)
                self._settle(failed=1, error=message)
                last_error = exc
                continue
            self._settle(written=1)
        return [], last_error

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

    def _give_up(self, rows: list[ScoreRecord], error: BaseException, attempts: int) -> None:
        """Count a batch as failed after its last attempt, loudly."""
        reason = describe_error(error, self._url.password)
        message = f"gave up on {len(rows)} scores after {attempts} attempts: {reason}"
        log.error("score log (%s): %s", self.safe_url, message)
        self._settle(failed=len(rows), error=message)

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
        lost = len(self._pending)
        self._pending.clear()
        self._failed += lost
        self._done += lost
        self._last_error = f"{lost} scores not written: {reason}"
        self._progress.notify_all()
        log.error("score log: %s", self._last_error)

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

    def score_history(self, lead_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """This lead's scores, newest first."""
        s = scores_table.c
        query = (
            select(s.model_version, s.probability, s.grade, s.scored_at)
            .where(s.lead_id == lead_id)
            .order_by(s.scored_at.desc(), s.id.desc())
            .limit(limit)
        )
        return [dict(row._mapping) for row in self._fetch("read scores", query)]

    def recent_scores(self, limit: int) -> pd.DataFrame:
        """The newest scores with one column per lead field, for drift monitoring."""
        s = scores_table.c
        query = (
            select(s.lead_id, s.model_version, s.probability, s.grade, s.scored_at, s.features)
            .order_by(s.scored_at.desc(), s.id.desc())
            .limit(limit)
        )
        return _scores_frame(self._fetch("read recent scores", query))

    def scored_outcomes(self, limit: int = 100_000) -> pd.DataFrame:
        """Per lead with both: its latest score beside its latest outcome, newest scores first, for live performance."""
        o, s = outcomes_table.c, scores_table.c
        newer = scores_table.alias("newer")
        latest_score_id = (
            select(newer.c.id)
            .where(newer.c.lead_id == o.lead_id)
            .order_by(newer.c.scored_at.desc(), newer.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        per_lead = (
            select(o.lead_id, func.max(o.id).label("outcome_id"), latest_score_id.label("score_id"))
            .group_by(o.lead_id)
            .subquery("per_lead")
        )
        query = (
            select(
                per_lead.c.lead_id,
                s.model_version,
                s.probability,
                s.grade,
                s.scored_at,
                o.converted,
                o.value,
                o.occurred_at,
                o.reported_at,
            )
            .join_from(per_lead, scores_table, s.id == per_lead.c.score_id)
            .join(outcomes_table, o.id == per_lead.c.outcome_id)
            .order_by(s.scored_at.desc(), s.id.desc())
            .limit(limit)
        )
        return _scored_outcomes_frame(self._fetch("read scored outcomes", query))

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
