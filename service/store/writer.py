"""``ScoreStore``: the object the service holds. It opens the database and runs the score writer: requests append
scores to an in-memory queue, a background thread writes them in batches, retrying through outages and isolating
the rows the database refuses; outcomes and reads go to their own modules."""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Row, func, insert, select, text

from service.store.connection import (
    StoreUnavailable,
    build_engine,
    database_url,
    describe_error,
    is_transient,
    redact_url,
)
from service.store.encoding import columns_blob, insert_sqlite_rows, score_rows, unstorable_rows_of
from service.store.lead_index import INDEX_EVERY, LOOKUP_CHUNK, index_new_scores, latest_scores_of, score_history_query
from service.store.locks import SCORE_LOG_LOCK
from service.store.outcomes import history_query, latest_reports_query, outcome_dict, record_outcome
from service.store.reading import newest_blobs, scored_outcomes_frame, scores_frame
from service.store.records import ScoreBatch, ScoreRecord, ScoreWrite, as_write, concatenate, size_of
from service.store.rejects import Reject, newest_rejects, rejects_of, store_rejects
from service.store.retention import ErasureCounts, erase_lead
from service.store.schema import LayoutError, create_schema, score_batches_table

log = logging.getLogger(__name__)

RECORDS_PER_WRITE = 500  # single-lead scores per write at most (see _next_batch)
FAILED_SPANS_KEPT = 10_000  # writes remembered as failed, for durable replies still waiting on them
CATCH_UP_WAIT_S = 10.0  # the longest a batch waits for the writer before its scores are queued anyway
STOP_JOIN_GRACE_S = 2.0
DROP_WARNING_INTERVAL_S = 10.0


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


def _halves(start: int, stop: int) -> list[tuple[int, int]]:
    """The stretch split in two (one stretch when it holds a single score)."""
    if stop - start <= 1:
        return [(start, stop)]
    middle = (start + stop) // 2
    return [(start, middle), (middle, stop)]


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
            create_schema(engine)
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
            count = size_of(batch)
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
                index_new_scores(engine, self._index_every, self._url.password)

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
            size = size_of(taken[0])
            records = 1 if isinstance(taken[0], ScoreRecord) else 0
            while self._pending and size + size_of(self._pending[0]) <= self._batch_size:
                if isinstance(self._pending[0], ScoreRecord):
                    if records >= RECORDS_PER_WRITE:
                        break
                    records += 1
                taken.append(self._pending.popleft())
                size += size_of(taken[-1])
            write = as_write(taken)
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
            store_rejects(engine, rejects, self._url.password)
        finally:
            with self._lock:
                self._rejected += len(rejects)
                self._settle_locked(failed=len(rejects), error=rejects[-1].reason)

    @staticmethod
    def _insert(engine: Engine, write: ScoreWrite) -> None:
        """One transaction: a columns blob per part, then the narrow rows as ready-made tuples, straight to the driver.

        SQLAlchemy's per-row type processing costs ~20 µs a row under the GIL, which the request threads
        feel as latency; ready-made tuples (an executemany, or multi-row statements on SQLite) cost a fraction.
        """
        sql, parameters = score_rows(engine.dialect, write)
        blobs = [{"size": part.count, "columns": columns_blob(part)} for part in write.parts]
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # ids visible in order, as on SQLite (see index_new_scores)
                conn.execute(select(func.pg_advisory_xact_lock(*SCORE_LOG_LOCK)))
            conn.execute(insert(score_batches_table), blobs)
            if conn.dialect.name == "sqlite":
                insert_sqlite_rows(conn, parameters)
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
        with self._database("record the outcome") as engine:
            return record_outcome(engine, lead_id, converted, value, occurred_at)

    def latest_outcome(self, lead_id: str) -> dict[str, Any] | None:
        """The report that counts for this lead (the latest one), with its revision number."""
        history = self.outcome_history(lead_id)
        return history[-1] if history else None

    def outcome_history(self, lead_id: str) -> list[dict[str, Any]]:
        """Every report for this lead, oldest first; revision numbers count from 1."""
        rows = self._fetch("read outcomes", history_query(lead_id))
        return [outcome_dict(row, revision) for revision, row in enumerate(rows, start=1)]

    # ---- erasure --------------------------------------------------------------------------------------------

    def erase_lead(self, lead_id: str) -> ErasureCounts:
        """Remove everything stored about one lead, once the scores queued so far (its latest ones too) are written."""
        self.flush()
        with self._database("erase the lead") as engine:
            return erase_lead(engine, lead_id)

    # ---- reads for the API and monitoring --------------------------------------------------------------------

    def rejected_scores(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest dead letters: scores the writer could not store, and why."""
        return [dict(row._mapping) for row in self._fetch("read rejected scores", newest_rejects(limit))]

    def score_history(self, lead_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """This lead's scores, newest first."""
        return [dict(row._mapping) for row in self._fetch("read scores", score_history_query(lead_id, limit))]

    def recent_scores(self, limit: int) -> pd.DataFrame:
        """The newest scores with one column per lead field, for drift monitoring."""
        with self._database("read recent scores") as engine, engine.connect() as conn:
            return scores_frame(newest_blobs(conn, limit), limit)

    def scored_outcomes(self, limit: int = 100_000) -> pd.DataFrame:
        """Per lead with both: its latest score beside its latest outcome, newest scores first, for live performance."""
        outcomes = {row.lead_id: row for row in self._fetch("read outcomes", latest_reports_query())}
        leads = list(outcomes)
        scores = []
        for start in range(0, len(leads), LOOKUP_CHUNK):
            scores += self._fetch("read scored outcomes", latest_scores_of(leads[start : start + LOOKUP_CHUNK]))
        scores.sort(key=lambda row: (row.scored_at, row.id), reverse=True)
        return scored_outcomes_frame([(score, outcomes[score.lead_id]) for score in scores[:limit]])

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
