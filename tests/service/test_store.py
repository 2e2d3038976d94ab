"""The score log and outcomes store against real databases: a SQLite file and a real PostgreSQL 15 server."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import ColumnElement, Table, create_engine, func, select

from service.store import (
    ScoreBatch,
    ScoreRecord,
    ScoreStore,
    StoreUnavailable,
    outcomes_table,
    score_batches_table,
    score_chunks_table,
    score_lead_chunks_table,
    score_rejects_table,
    scores_table,
)
from tests.pg import free_port, running_postgres

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
PASSWORD = "pw-never-in-logs"  # trust auth ignores it; it is only there to prove it never leaks
FIELD_VALUE = "field-value-never-in-logs"


@pytest.fixture()
def store(database_url: str) -> Iterator[ScoreStore]:
    """A started store with a short flush interval, stopped after the test."""
    started = ScoreStore(database_url, flush_interval_s=0.02)
    started.start()
    yield started
    started.stop()


def make_records(n: int, start: int = 0, prefix: str = "lead", t0: datetime = T0) -> list[ScoreRecord]:
    """Scores with float64 probabilities that a float32 or text round trip would change, one second apart."""
    probabilities = np.random.default_rng(start).random(n)
    return [
        ScoreRecord(
            lead_id=f"{prefix}-{start + i}",
            model_version="v1",
            probability=float(p),
            grade="ABCD"[i % 4],
            scored_at=t0 + timedelta(seconds=start + i),
            features={"age": 20 + i % 50, "region": f"r{i % 3}", "income": float(p) * 1e5, "owns_home": i % 2 == 0},
        )
        for i, p in enumerate(probabilities)
    ]


def count_rows(url: str, table: Table, where: ColumnElement[bool] | None = None) -> int:
    """Count with an engine of its own, so what is seen is what was committed."""
    engine = create_engine(url)
    try:
        query = select(func.count()).select_from(table)
        with engine.connect() as conn:
            return int(conn.execute(query if where is None else query.where(where)).scalar_one())
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], Any], timeout_s: float) -> None:
    """Poll for something a background thread will make true."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_flushed_scores_are_all_there_exactly(store: ScoreStore, database_url: str) -> None:
    records = make_records(1_000)
    odd = ScoreRecord(
        "odd", "v2", 1 / 3, "B", datetime(2024, 3, 2, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        {"nested": {"a": [1, 2.5, None]}, "text": "é ü", "big": 2**53, "missing": None},
    )  # fmt: skip
    for chunk in range(0, len(records), 100):
        store.enqueue_records(records[chunk : chunk + 100])
    store.enqueue_records([odd])
    store.flush()

    assert store.stats.written == 1_001 and store.stats.queued == 0
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = {r.lead_id: r for r in conn.execute(select(scores_table))}
    engine.dispose()
    assert len(stored) == 1_001
    logged = store.recent_scores(2_000).set_index("lead_id")
    assert len(logged) == 1_001
    for record in [*records, odd]:
        assert stored[record.lead_id].probability == record.probability  # exact float64, not approximately
        assert logged.loc[record.lead_id, "probability"] == record.probability
        for name, value in record.features.items():
            assert logged.loc[record.lead_id, name] == value
        assert (
            logged.loc[record.lead_id, list(set(logged.columns) & {"age", "nested"} - set(record.features))]
            .isna()
            .all()
        )
    [latest] = store.score_history("odd")
    assert latest["scored_at"] == datetime(2024, 3, 2, 10, 0, tzinfo=UTC)
    assert latest["scored_at"].utcoffset() == timedelta(0)
    assert latest["probability"] == 1 / 3


def test_stop_writes_everything_queued_just_before(store: ScoreStore, database_url: str) -> None:
    for chunk in range(200):
        store.enqueue_records(make_records(100, start=chunk * 100))
    store.stop()

    assert count_rows(database_url, scores_table) == 20_000
    assert store.stats.written == 20_000 and store.stats.failed == 0 and store.stats.dropped == 0


def test_outcomes_latest_wins_history_kept_and_committed(store: ScoreStore, database_url: str) -> None:
    first = store.record_outcome("never-scored", converted=False, value=None, occurred_at=None)
    second = store.record_outcome("never-scored", converted=True, value=1250.5, occurred_at=T0)

    assert (first["revision"], second["revision"]) == (1, 2)
    assert second["reported_at"].tzinfo is not None
    reader = ScoreStore(database_url)  # a new engine: sees only what was committed
    reader.start()
    try:
        latest = reader.latest_outcome("never-scored")
        history = reader.outcome_history("never-scored")
        assert reader.latest_outcome("nobody") is None
    finally:
        reader.stop()
    assert latest is not None
    assert (latest["converted"], latest["value"], latest["occurred_at"], latest["revision"]) == (True, 1250.5, T0, 2)
    assert [h["converted"] for h in history] == [False, True]
    assert [h["revision"] for h in history] == [1, 2]


def test_scored_outcomes_pair_the_latest_score_with_the_latest_outcome(store: ScoreStore) -> None:
    store.enqueue_records(
        [
            ScoreRecord("a", "v1", 0.2, "C", T0, {"age": 30}),
            ScoreRecord("a", "v2", 0.7, "A", T0 + timedelta(hours=2), {"age": 30}),
            ScoreRecord("b", "v1", 0.5, "B", T0 + timedelta(hours=1), {"age": 40}),  # no outcome: left out
            ScoreRecord("d", "v2", 0.9, "A", T0 + timedelta(hours=3), {"age": 50}),
        ]
    )
    store.flush()
    store.record_outcome("a", converted=False, value=None, occurred_at=None)
    store.record_outcome("a", converted=True, value=100.0, occurred_at=T0 + timedelta(days=3))
    store.record_outcome("c", converted=True, value=None, occurred_at=None)  # never scored: left out
    store.record_outcome("d", converted=False, value=None, occurred_at=None)

    frame = store.scored_outcomes()

    assert frame["lead_id"].tolist() == ["d", "a"]  # newest latest-score first
    a = frame.set_index("lead_id").loc["a"]
    assert (a["probability"], a["grade"], a["model_version"]) == (0.7, "A", "v2")
    assert a["converted"] is np.True_ and a["value"] == 100.0
    assert frame["converted"].dtype == bool and str(frame["scored_at"].dt.tz) == "UTC"
    assert store.scored_outcomes(limit=1)["lead_id"].tolist() == ["d"]


def test_recent_scores_are_newest_first_with_a_column_per_field(store: ScoreStore) -> None:
    store.enqueue_records(make_records(50))
    store.flush()

    frame = store.recent_scores(10)

    assert len(frame) == 10
    assert frame["lead_id"].tolist() == [f"lead-{i}" for i in range(49, 39, -1)]
    assert {"age", "region", "income", "owns_home", "probability", "grade", "scored_at"} <= set(frame.columns)
    assert frame["scored_at"].is_monotonic_decreasing and str(frame["scored_at"].dt.tz) == "UTC"
    assert frame["age"].tolist() == [20 + i % 50 for i in range(49, 39, -1)]


def test_stores_started_together_share_one_schema(database_url: str) -> None:
    stores = [ScoreStore(database_url) for _ in range(4)]  # like worker processes booting at once
    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(ScoreStore.start, stores))
    for started in stores:
        started.stop()


def test_workers_opening_a_new_sqlite_file_at_once_all_start(tmp_path: Path) -> None:
    """SQLite can refuse the switch to WAL as locked without waiting; about one start in seven of four failed."""
    for round_ in range(25):
        stores = [ScoreStore(f"sqlite:///{tmp_path / f'new-{round_}.db'}") for _ in range(4)]
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(ScoreStore.start, stores))
        for started in stores:
            started.stop()


def test_two_stores_on_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [ScoreStore(url, batch_size=200, flush_interval_s=0.005) for _ in range(2)]
    for started in stores:
        started.start()

    def serve(worker: int) -> None:
        for request in range(100):
            stores[worker].enqueue_records(
                make_records(100, start=worker * 10_000 + request * 100, prefix=f"w{worker}")
            )
            if request % 10 == 0:
                stores[worker].record_outcome(f"w{worker}-{request}", converted=True, value=None, occurred_at=None)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(serve, [0, 1]))
    for started in stores:
        started.stop()

    assert count_rows(url, scores_table) == 20_000
    assert count_rows(url, outcomes_table) == 20
    assert all(s.stats.failed == 0 for s in stores)


def test_a_bad_record_does_not_sink_its_batch(store: ScoreStore, database_url: str) -> None:
    records = make_records(100)
    records[10] = ScoreRecord("x" * 300, "v1", 0.5, "A", T0, {})
    records[20] = ScoreRecord("nan", "v1", float("nan"), "A", T0, {})
    store.enqueue_records(records)
    store.flush()

    assert (store.stats.written, store.stats.failed, store.stats.rejected) == (98, 2, 2)
    assert "probability" in (store.stats.last_error or "")
    assert count_rows(database_url, scores_table) == 98
    assert {r["lead_id"] for r in store.rejected_scores()} == {"x" * 200, "nan"}


def test_a_refused_score_is_isolated_in_a_logarithmic_number_of_writes(database_url: str) -> None:
    """A score the database refuses costs about 2·log2(n) transactions, not one per score of its write."""
    records = make_records(4_000)
    for bad in (1_234, 3_001):  # lead fields the JSON column cannot hold
        records[bad] = records[bad]._replace(features={"region": 2**70})
    one_write = ScoreStore(database_url, batch_size=4_000, flush_interval_s=0.02)
    one_write.enqueue_records(records)
    one_write.start()
    try:
        one_write.flush()
        rejected = one_write.rejected_scores()
    finally:
        one_write.stop()

    assert (one_write.stats.written, one_write.stats.failed, one_write.stats.rejected) == (3_998, 2, 2)
    assert count_rows(database_url, scores_table) == 3_998
    stored_writes = count_rows(database_url, score_batches_table)
    assert stored_writes <= 2 * 2 * 12, stored_writes  # log2(4,000) < 12; row by row it was 3,998
    assert sorted(r["lead_id"] for r in rejected) == ["lead-1234", "lead-3001"]
    assert all("64-bit" in r["reason"] and r["scored_at"] is not None for r in rejected)
    assert count_rows(database_url, score_rejects_table) == 2


def test_dead_letters_hold_what_the_columns_could_not(store: ScoreStore, database_url: str) -> None:
    """A lead id with NUL is refused on both databases alike; its dead letter shows it escaped."""
    records = make_records(10)
    records[3] = records[3]._replace(lead_id="a\x00b")
    store.enqueue_records(records)
    store.flush()

    assert (store.stats.written, store.stats.rejected) == (9, 1)
    [letter] = store.rejected_scores()
    assert letter["lead_id"] == "a\\x00b" and "NUL" in letter["reason"]
    assert count_rows(database_url, scores_table) == 9


def _write_together(url: str, requests: list[ScoreBatch]) -> tuple[ScoreStore, set[str | None], list[int]]:
    """Queue the requests before the writer starts, so they make one write; what was stored, and the blob sizes."""
    joined = ScoreStore(url, batch_size=1_000, flush_interval_s=0.02)
    for request in requests:
        joined.enqueue(request)
    joined.start()
    joined.flush()
    joined.stop()
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = {row.lead_id for row in conn.execute(select(scores_table.c.lead_id))}
        blobs = conn.execute(select(score_batches_table.c.size).order_by(score_batches_table.c.id)).scalars().all()
    engine.dispose()
    return joined, stored, list(blobs)


def test_batches_written_together_keep_their_own_blobs(database_url: str) -> None:
    requests = [ScoreBatch.of_records(make_records(40 + n, start=100 * n, prefix=f"r{n}")) for n in range(3)]

    joined, stored, blobs = _write_together(database_url, requests)

    assert (joined.stats.written, joined.stats.failed) == (123, 0)
    assert stored == {lead for request in requests for lead in request.lead_ids}
    assert blobs == [40, 41, 42]  # one per request, in order: no lead field copied into a joined column


def test_batches_written_together_lose_only_their_bad_rows(database_url: str) -> None:
    requests = [ScoreBatch.of_records(make_records(50, start=100 * n, prefix=f"r{n}")) for n in range(3)]
    requests[1].lead_ids[7] = "x" * 300  # too long to store
    requests[2].probabilities[49] = float("inf")

    joined, stored, blobs = _write_together(database_url, requests)

    assert (joined.stats.written, joined.stats.failed) == (148, 2)
    assert stored == {lead for request in requests for lead in request.lead_ids} - {"x" * 300, "r2-249"}
    assert sum(blobs) == 148


def test_a_request_stores_its_shared_version_and_time_once(database_url: str) -> None:
    """A request's scores share one model version and time: the blob holds each once, and reads broadcast them."""
    shared_at = T0 + timedelta(days=3)
    request = ScoreBatch.of_records(make_records(30, prefix="req"))
    request = request._replace(model_versions=["v7"] * 30, scored_at=[shared_at] * 30)
    singles = make_records(5, start=100, prefix="one")  # each its own time: kept row by row

    _, stored, _ = _write_together(database_url, [request, ScoreBatch.of_records(singles)])

    assert len(stored) == 35
    engine = create_engine(database_url)
    with engine.connect() as conn:
        blobs = [
            orjson.loads(b)
            for b in conn.execute(select(score_batches_table.c.columns).order_by(score_batches_table.c.id)).scalars()
        ]
    engine.dispose()
    assert (blobs[0]["model_version"], blobs[0]["scored_at"]) == ("v7", shared_at.isoformat())
    assert blobs[1]["scored_at"] == [r.scored_at.isoformat() for r in singles]
    reader = ScoreStore(database_url)
    reader.start()
    try:
        frame = reader.recent_scores(100).set_index("lead_id")
    finally:
        reader.stop()
    assert len(frame) == 35
    assert (frame.loc[request.lead_ids, "model_version"] == "v7").all()
    assert (frame.loc[request.lead_ids, "scored_at"] == shared_at).all()
    assert frame.loc[[r.lead_id for r in singles], "scored_at"].tolist() == [r.scored_at for r in singles]


def test_a_full_queue_counts_what_it_drops(tmp_path: Path) -> None:
    idle = ScoreStore(f"sqlite:///{tmp_path / 'x.db'}", max_queue=10)  # never started: nothing drains the queue

    idle.enqueue_records(make_records(15))
    idle.enqueue(None)  # type: ignore[arg-type]  # a caller bug is logged, not raised into the request

    assert (idle.stats.queued, idle.stats.dropped) == (10, 5)
    assert not idle.ping()
    idle.stop()
    assert idle.stats.failed == 10 and "not written" in (idle.stats.last_error or "")


def test_an_unreachable_server_fails_fast_without_the_password() -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/leadscore"
    started_at = time.monotonic()

    with pytest.raises(StoreUnavailable) as raised:
        ScoreStore(url).start()

    assert time.monotonic() - started_at < 5
    assert PASSWORD not in str(raised.value) and "postgres:***@127.0.0.1" in str(raised.value)


def test_postgres_outage_is_counted_and_recovered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="service.store")
    with running_postgres(tmp_path) as server:  # a server of its own: this test takes it down
        url = server.url.replace("postgres@", f"postgres:{PASSWORD}@")
        store = ScoreStore(url, batch_size=50, flush_interval_s=0.01, retry_delays_s=(0.05, 0.05, 0.1))
        store.start()
        fed = 0
        feeding = threading.Event()

        def feed() -> None:
            nonlocal fed
            while not feeding.is_set():
                store.enqueue_records(make_records(5, start=10_000 + fed, prefix="during"))
                fed += 5
                time.sleep(0.005)

        try:
            store.enqueue_records(make_records(200, prefix="before"))
            store.flush()
            feeder = threading.Thread(target=feed)
            feeder.start()
            server.stop()
            wait_until(lambda: store.stats.retries or store.stats.failed, timeout_s=10)

            started_at = time.monotonic()
            with pytest.raises(StoreUnavailable) as raised:
                store.record_outcome("lead-1", converted=True, value=None, occurred_at=None)
            assert time.monotonic() - started_at < 5
            assert PASSWORD not in str(raised.value)
            assert not store.ping()
            wait_until(lambda: store.stats.failed, timeout_s=10)  # a batch given up on, counted, not lost silently

            server.start()
            feeding.set()
            feeder.join()
            after = make_records(100, prefix="after")
            after[0] = ScoreRecord("after-0", "v1", 0.5, "A", T0, {"note": FIELD_VALUE})
            store.enqueue_records(after)
            store.flush(timeout_s=20)

            assert store.record_outcome("lead-1", converted=True, value=3.0, occurred_at=None)["revision"] == 1
            assert store.ping()
            stats = store.stats
            assert stats.written + stats.failed == 200 + fed + 100 and stats.queued == 0 and stats.dropped == 0
            assert stats.retries > 0 and stats.failed > 0
            assert count_rows(url, scores_table, scores_table.c.lead_id.like("after-%")) == 100
            assert stats.written <= count_rows(url, scores_table) <= stats.written + stats.failed
        finally:
            feeding.set()
            store.stop()
    assert "retry" in caplog.text
    assert PASSWORD not in caplog.text and FIELD_VALUE not in caplog.text


def _history_probabilities(store: ScoreStore, lead_id: str) -> list[float]:
    return [row["probability"] for row in store.score_history(lead_id, limit=1_000)]


def test_lead_lookups_read_the_index_chunks_and_the_unindexed_tail(database_url: str) -> None:
    store = ScoreStore(database_url, batch_size=100, flush_interval_s=0.01, index_every=250)
    store.start()
    try:
        records = []
        for request in range(13):  # ten leads scored again and again, plus one lead per request
            records += [
                ScoreRecord(f"lead-{i}", "v1", (request * 100 + i) / 10_000, "A", T0 + timedelta(minutes=request), {})
                for i in range(10)
            ]
            records += [ScoreRecord(f"once-{request}", "v1", 0.5, "B", T0, {}) for _ in range(90)]
        for start in range(0, len(records), 100):
            store.enqueue_records(records[start : start + 100])
            store.flush()
        chunks = count_rows(database_url, score_chunks_table)
        indexed = count_rows(database_url, score_lead_chunks_table)

        assert chunks >= 3 and 0 < indexed < len(records)  # several chunks made, and a tail still unindexed
        for i in range(10):
            expected = [(request * 100 + i) / 10_000 for request in reversed(range(13))]
            assert _history_probabilities(store, f"lead-{i}") == expected  # all thirteen, newest first, none twice
        assert len(_history_probabilities(store, "once-11")) == 90  # in a chunk
        assert len(_history_probabilities(store, "once-12")) == 90  # in the tail
        store.record_outcome("lead-3", converted=True, value=None, occurred_at=None)
        store.record_outcome("once-0", converted=True, value=None, occurred_at=None)
        assert store.scored_outcomes()["probability"].tolist() == [(12 * 100 + 3) / 10_000, 0.5]
    finally:
        store.stop()


def test_two_writers_index_every_score_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [ScoreStore(url, batch_size=100, flush_interval_s=0.005, index_every=300) for _ in range(2)]
    for started in stores:
        started.start()

    def serve(worker: int) -> None:
        for request in range(40):
            stores[worker].enqueue_records(make_records(50, start=request * 50, prefix=f"w{worker}"))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(serve, [0, 1]))
    for started in stores:  # stop() joins the writers: no chunk is being made while the test reads
        started.stop()
    engine = create_engine(url)
    with engine.connect() as conn:
        chunks = conn.execute(select(score_chunks_table).order_by(score_chunks_table.c.first_id)).all()
        indexed = [row.score_id for row in conn.execute(select(score_lead_chunks_table.c.score_id))]
        newest = conn.execute(select(func.max(scores_table.c.id))).scalar_one()
    engine.dispose()

    assert len(chunks) >= 5
    assert [c.first_id for c in chunks] == [1, *[c.last_id + 1 for c in chunks[:-1]]]  # no gap, no overlap
    assert sorted(indexed) == list(range(1, chunks[-1].last_id + 1))
    assert newest == 4_000


def test_a_database_of_the_earlier_layout_is_refused_by_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scores (id INTEGER PRIMARY KEY, lead_id TEXT, features JSON)")
    engine.dispose()

    with pytest.raises(StoreUnavailable, match="earlier layout"):
        ScoreStore(url).start()


def test_batches_wait_while_the_writer_is_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    store = ScoreStore(url, batch_size=50, flush_interval_s=0.01, max_queue=1_000)  # behind from 100 waiting
    store.start()
    blocker = sqlite3.connect(tmp_path / "busy.db", timeout=1, isolation_level=None)
    try:
        assert store.wait_for_writer(timeout_s=0.1)  # nothing waiting: no wait
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock: the writer cannot write
        store.enqueue_records(make_records(500))

        assert not store.wait_for_writer(timeout_s=0.3)
        blocker.execute("COMMIT")
        assert store.wait_for_writer(timeout_s=10)
        store.flush()
        assert store.stats.catch_up_waits == 2 and store.stats.written == 500 and store.stats.dropped == 0
    finally:
        blocker.close()
        store.stop()


def test_tickets_say_whether_their_scores_were_stored(store: ScoreStore) -> None:
    """What a durable reply waits on: the write holding its scores finished, and whether it stored them all."""
    outcomes: dict[str, bool] = {}
    done = threading.Event()

    def note(name: str) -> Callable[[bool], None]:
        def record(stored: bool) -> None:
            outcomes[name] = stored
            if len(outcomes) == 2:
                done.set()

        return record

    bad_ticket = store.enqueue(make_records(1, start=900)[0]._replace(lead_id="a\x00b"))
    good_ticket = store.enqueue(ScoreBatch.of_records(make_records(5, start=100)))
    assert bad_ticket is not None and good_ticket is not None
    store.when_stored(bad_ticket, note("bad"))
    store.when_stored(good_ticket, note("good"))
    assert done.wait(10)
    store.flush()
    late: list[bool] = []
    store.when_stored(good_ticket, late.append)  # already known: answered at once

    assert outcomes["bad"] is False and late == [outcomes["good"]]
    assert store.stats.rejected == 1
    stopped = ScoreStore(store.safe_url.replace("***", ""))
    assert stopped.enqueue(make_records(1)[0]) is not None  # queued, though not started
    stopped.stop(timeout_s=0.1)
    assert stopped.enqueue(make_records(1)[0]) is None  # a stopped store drops: no ticket
