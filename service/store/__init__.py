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

One module per concern: ``records`` (scores in memory), ``schema`` (the tables), ``connection`` (URLs, engines,
errors, SQLite's pragmas), ``locks`` (who waits for whom), ``encoding`` (scores as rows and blobs),
``writer`` (``ScoreStore`` and its writer thread), ``lead_index``, ``outcomes``, ``rejects`` (dead letters),
``reading`` (frames for monitoring) and ``retention`` (pruning and erasure); the tables are documented for
analysts in docs/score-log.md.
"""

from service.store.connection import StoreUnavailable, build_engine, database_url, describe_error, redact_url
from service.store.lead_index import INDEX_EVERY
from service.store.records import ScoreBatch, ScoreRecord, ScoreWrite, concatenate
from service.store.rejects import REJECTS_KEPT
from service.store.retention import BatchEdits, ErasureCounts, PruneCounts, erase_lead, open_score_log, prune
from service.store.schema import (
    LayoutError,
    as_utc,
    metadata,
    outcomes_table,
    score_batches_table,
    score_chunks_table,
    score_lead_chunks_table,
    score_rejects_table,
    scores_table,
)
from service.store.writer import ScoreStore, StoreStats

__all__ = [
    "INDEX_EVERY",
    "REJECTS_KEPT",
    "BatchEdits",
    "ErasureCounts",
    "LayoutError",
    "PruneCounts",
    "ScoreBatch",
    "ScoreRecord",
    "ScoreStore",
    "ScoreWrite",
    "StoreStats",
    "StoreUnavailable",
    "as_utc",
    "build_engine",
    "concatenate",
    "database_url",
    "describe_error",
    "erase_lead",
    "metadata",
    "open_score_log",
    "outcomes_table",
    "prune",
    "redact_url",
    "score_batches_table",
    "score_chunks_table",
    "score_lead_chunks_table",
    "score_rejects_table",
    "scores_table",
]
