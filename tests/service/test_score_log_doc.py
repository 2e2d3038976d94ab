"""The example queries in docs/score-log.md run as written against a real score log, SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from service.store import ScoreBatch, ScoreRecord, ScoreStore

DOC = Path(__file__).resolve().parents[2] / "docs/score-log.md"
LEAD = "L0000042"  # the lead the documented queries name
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def documented_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.DOTALL)


def run(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


@pytest.fixture()
def score_log(database_url: str) -> str:
    """The lead scored three times (twice before an index chunk was made, once after), other leads around it,
    and two outcome reports for it, the second one counting."""
    store = ScoreStore(database_url, flush_interval_s=0.02, index_every=4)
    store.start()
    try:
        first = ScoreBatch([LEAD, "L0000007", "L0000420"], ["v1"] * 3, [0.21, 0.5, 0.6], ["C", "B", "B"], [T0] * 3, {})
        store.enqueue(first)
        store.flush()
        store.enqueue(ScoreRecord(LEAD, "v1", 0.34, "B", T0 + timedelta(days=1), {}))
        store.enqueue(ScoreRecord("L0000007", "v1", 0.51, "B", T0 + timedelta(days=1), {}))
        store.flush()
        store.enqueue(ScoreRecord(LEAD, "v2", 0.77, "A", T0 + timedelta(days=2), {}))  # the unindexed tail
        store.flush()
        store.record_outcome(LEAD, converted=False, value=None, occurred_at=None)
        store.record_outcome(LEAD, converted=True, value=1200.0, occurred_at=T0 + timedelta(days=3))
    finally:
        store.stop()
    assert run(database_url, "SELECT COUNT(*) FROM score_chunks") == [(1,)]
    return database_url


def test_the_doc_has_one_query_per_question() -> None:
    assert len(documented_queries()) == 3


def test_a_leads_scores_both_ways(score_log: str) -> None:
    plain, indexed, _ = documented_queries()
    expected = [("v2", 0.77, "A"), ("v1", 0.34, "B"), ("v1", 0.21, "C")]
    for sql in (plain, indexed):
        rows = run(score_log, sql)
        assert [row[:3] for row in rows] == expected
        assert [str(row[3])[:16] for row in rows] == ["2026-01-07 09:30", "2026-01-06 09:30", "2026-01-05 09:30"]


def test_scores_joined_to_outcomes(score_log: str) -> None:
    *_, joined = documented_queries()
    rows = run(score_log, joined)
    assert [(row[0], row[2], bool(row[5]), row[6]) for row in rows] == [
        (LEAD, 0.77, True, 1200.0),
        (LEAD, 0.34, True, 1200.0),
        (LEAD, 0.21, True, 1200.0),
    ]
