"""Pruning by age and erasing one lead, on a SQLite file and a real PostgreSQL 15 server: searched in the raw tables."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import Engine, create_engine, insert, inspect, select, text

from service.store import (
    ScoreBatch,
    ScoreRecord,
    ScoreStore,
    erase_lead,
    open_score_log,
    outcomes_table,
    prune,
    score_batches_table,
    score_lead_chunks_table,
    scores_table,
)

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=1)
CUTOFF = NOW - timedelta(days=180)
TARGET = "erase-me-7"
TARGET_VALUE = "target-field-3f9a1c"  # a lead field only the lead to erase has


@pytest.fixture()
def store(database_url: str) -> Iterator[ScoreStore]:
    """A started store that makes a lead-index chunk every 10 scores, so both chunks and the tail hold leads."""
    started = ScoreStore(database_url, flush_interval_s=0.02, index_every=10)
    started.start()
    yield started
    started.stop()


@pytest.fixture()
def engine(database_url: str, store: ScoreStore) -> Iterator[Engine]:
    """A second connection to the same score log, as `leadscore log` opens it from another process."""
    opened = open_score_log(database_url)
    yield opened
    opened.dispose()


def batch(lead_ids: list[str], at: datetime | list[datetime], fields: dict[str, list] | None = None) -> ScoreBatch:
    n = len(lead_ids)
    times = at if isinstance(at, list) else [at] * n
    features = fields or {"region": [f"r-{lead}" for lead in lead_ids], "age": list(range(30, 30 + n))}
    return ScoreBatch(lead_ids, ["v1"] * n, [0.1 + i / 100 for i in range(n)], ["A"] * n, times, features)


def write(store: ScoreStore, *batches: ScoreBatch) -> None:
    for each in batches:
        store.enqueue(each)
        store.flush()


def wait_for_index(url: str, lead_id: str) -> None:
    """The writer extends the lead index after its writes; wait until this lead is in a chunk."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if raw_rows(url, score_lead_chunks_table.name, f"lead_id = '{lead_id}'"):
            return
        time.sleep(0.02)
    raise AssertionError(f"{lead_id} never reached the lead index")


def raw_rows(url: str, table: str, where: str = "1 = 1") -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} WHERE {where}"))]
    finally:
        engine.dispose()


def everything_stored(url: str, but: tuple[str, ...] = ()) -> str:
    """Every value of every column of every table in the database (but these) as text, blobs as bytes and decoded."""
    engine = create_engine(url)
    parts: list[str] = []
    try:
        with engine.connect() as conn:
            for table in set(inspect(conn).get_table_names()) - set(but):
                for row in conn.execute(text(f"SELECT * FROM {table}")):
                    for value in row:
                        if isinstance(value, bytes | memoryview):
                            raw = bytes(value)
                            parts += [raw.decode("utf-8", "replace"), repr(orjson.loads(raw))]
                        else:
                            parts.append(str(value))
    finally:
        engine.dispose()
    return "\n".join(parts)


def assert_consistent(url: str) -> None:
    """The blobs and the narrow rows hold the same scores, and every blob's columns are as long as its size."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            blob_leads: Counter[str | None] = Counter()
            for size, blob in conn.execute(select(score_batches_table.c.size, score_batches_table.c.columns)):
                columns = orjson.loads(blob)
                assert len(columns["lead_id"]) == len(columns["probability"]) == len(columns["grade"]) == size
                assert all(len(values) == size for values in columns["features"].values())
                for name in ("model_version", "scored_at"):
                    assert not isinstance(columns[name], list) or len(columns[name]) == size
                blob_leads.update(columns["lead_id"])
            row_leads = Counter(conn.execute(select(scores_table.c.lead_id)).scalars())
    finally:
        engine.dispose()
    assert blob_leads == row_leads


def test_erasing_a_lead_leaves_nothing_of_it_and_its_batch_mates_intact(
    store: ScoreStore, engine: Engine, database_url: str
) -> None:
    mates = ["keep-1", "keep-2", "keep-3"]
    fields = {"region": ["north", TARGET_VALUE, "south", "east"], "age": [31, 32, 33, 34]}
    write(store, batch([mates[0], TARGET, mates[1], mates[2]], OLD, fields))
    write(store, batch([f"other-{i}" for i in range(8)], OLD))  # 12 scores: the first index chunk
    wait_for_index(database_url, TARGET)
    singles = [
        ScoreRecord(TARGET, "v2", 0.9, "B", RECENT, {"region": TARGET_VALUE, "age": 32}),  # in the unindexed tail
        ScoreRecord("keep-4", "v2", 0.4, "C", RECENT, {"region": "west", "age": 40}),
        ScoreRecord(TARGET, "v2", 0.5, "B" * 20, RECENT, {"region": TARGET_VALUE}),  # refused: a dead letter
    ]
    write(store, ScoreBatch.of_records(singles))
    store.record_outcome(TARGET, converted=False, value=None, occurred_at=None)
    store.record_outcome(TARGET, converted=True, value=99.0, occurred_at=None)
    store.record_outcome("keep-1", converted=True, value=10.0, occurred_at=None)
    before = {lead: store.score_history(lead) for lead in [*mates, "keep-4"]}
    assert len(store.score_history(TARGET)) == 2 and store.rejected_scores()[0]["lead_id"] == TARGET
    assert TARGET in everything_stored(database_url) and TARGET_VALUE in everything_stored(database_url)

    erased = erase_lead(engine, TARGET)

    assert erased.to_dict() == {
        "scores": 2,
        "logged_fields": 2,
        "score_batches_rewritten": 2,  # the shared batch, and the single scores written with keep-4
        "score_batches_deleted": 0,
        "index_entries": 1,
        "outcomes": 2,
        "dead_letters": 1,
    }
    stored = everything_stored(database_url)
    assert TARGET not in stored and TARGET_VALUE not in stored
    assert {lead: store.score_history(lead) for lead in before} == before
    recent = store.recent_scores(100)
    assert sorted(recent["lead_id"]) == sorted([*mates, "keep-4", *(f"other-{i}" for i in range(8))])
    assert recent.set_index("lead_id").loc[["keep-1", "keep-2", "keep-3"], "region"].tolist() == [
        "north",
        "south",
        "east",
    ]
    assert recent.set_index("lead_id").loc["keep-3", "probability"] == pytest.approx(0.13)
    assert store.scored_outcomes()["lead_id"].tolist() == ["keep-1"]
    assert_consistent(database_url)


def test_erasing_a_lead_nothing_is_stored_about_changes_nothing(
    store: ScoreStore, engine: Engine, database_url: str
) -> None:
    write(store, batch(["keep-1", "keep-2"], RECENT, {"note": ["keep", "keep"]}))
    store.record_outcome("keep-1", converted=True, value=None, occurred_at=None)
    before = everything_stored(database_url)
    erased = erase_lead(engine, "keep")  # in every blob (as a field value), but no lead of that id
    assert not erased.found and erased.batches.rewritten == 0
    assert everything_stored(database_url) == before


def test_pruning_removes_old_scores_everywhere_and_keeps_the_rest_readable(
    store: ScoreStore, engine: Engine, database_url: str
) -> None:
    old_leads = [f"gone-{i}-x" for i in range(12)]  # no id is a part of another
    write(store, batch(old_leads, OLD, {"note": [f"old-note-{i}" for i in range(12)]}))  # one chunk, all old
    wait_for_index(database_url, "gone-0-x")
    mixed = ["gone-mixed-x", "new-mixed"]  # one request whose scores straddle the cutoff
    write(store, batch(mixed, [OLD, RECENT], {"note": ["old-note-mixed", "new-note-mixed"]}))
    write(store, batch([f"new-{i}" for i in range(11)], RECENT))  # a second chunk
    wait_for_index(database_url, "new-0")
    write(store, batch(["new-tail"], RECENT))
    store.record_outcome("gone-3-x", converted=True, value=None, occurred_at=None)
    store.record_outcome("new-2", converted=False, value=None, occurred_at=None)
    with engine.begin() as conn:  # an outcome reported long ago
        conn.execute(insert(outcomes_table), {"lead_id": "gone-4-x", "converted": False, "reported_at": OLD})
    new_leads = ["new-mixed", *(f"new-{i}" for i in range(11)), "new-tail"]
    before = {lead: store.score_history(lead) for lead in new_leads}

    removed = prune(engine, CUTOFF)

    assert (removed.scores, removed.batches.fields, removed.index_entries) == (13, 13, 13)
    assert (removed.batches.deleted, removed.batches.rewritten, removed.outcomes) == (1, 1, None)
    assert removed.index_chunks == 1  # the old chunk; the newest always stays
    stored = everything_stored(database_url, but=(outcomes_table.name,))  # outcomes are kept unless asked
    assert not [lead for lead in [*old_leads, "gone-mixed-x"] if lead in stored]
    assert "old-note" not in stored and "new-note-mixed" in stored
    assert {lead: store.score_history(lead) for lead in new_leads} == before
    assert sorted(store.recent_scores(1_000)["lead_id"]) == sorted(new_leads)
    assert set(store.scored_outcomes()["lead_id"]) == {"new-2"}  # gone-3-x's outcome is kept, its score is not
    assert len(raw_rows(database_url, outcomes_table.name)) == 3
    assert_consistent(database_url)

    write(store, batch([f"later-{i}" for i in range(10)], NOW))  # the index keeps growing after a prune
    wait_for_index(database_url, "later-0")
    assert len(store.score_history("later-3")) == 1 and len(store.score_history("new-tail")) == 1

    assert prune(engine, CUTOFF, outcomes=True).outcomes == 1  # only the outcome reported before the cutoff
    assert len(raw_rows(database_url, outcomes_table.name)) == 2 and "gone-4-x" not in everything_stored(database_url)


def test_prune_and_erase_while_the_writer_runs_lose_no_other_scores(
    store: ScoreStore, engine: Engine, database_url: str
) -> None:
    write(store, *(batch([f"old-{j}-{i}" for i in range(50)], OLD) for j in range(4)))
    write(store, batch([TARGET, "keep-1"], RECENT, {"region": [TARGET_VALUE, "north"]}))
    fed: list[int] = []
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            n = len(fed)
            store.enqueue(batch([*(f"live-{n}-{i}" for i in range(20)), "busy"], NOW))  # busy: scored all along
            fed.append(20)
            time.sleep(0.002)

    feeder = threading.Thread(target=feed)
    feeder.start()
    while not fed:
        time.sleep(0.001)
    try:
        removed = prune(engine, CUTOFF)
        erased = erase_lead(engine, TARGET)
        erase_lead(engine, "busy")  # its scores written meanwhile stay, in the blobs and the rows alike
    finally:
        stop.set()
        feeder.join()
    store.flush()

    assert removed.scores == 200 and erased.scores == 1
    stats = store.stats
    assert stats.failed == 0 and stats.dropped == 0
    live = raw_rows(database_url, scores_table.name, "lead_id LIKE 'live-%'")
    assert len(live) == sum(fed) == len({row[1] for row in live})
    assert TARGET_VALUE not in everything_stored(database_url)
    assert_consistent(database_url)


def test_opening_a_score_log_that_is_not_there_says_so(tmp_path) -> None:
    from service.store import StoreUnavailable

    missing = tmp_path / "missing.db"
    with pytest.raises(StoreUnavailable, match=r"no score log at sqlite:///.*missing\.db"):
        open_score_log(f"sqlite:///{missing}")
    assert not missing.exists()
