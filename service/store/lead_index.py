"""The lead-id index: sorted chunks of ``index_every`` scores in ``score_lead_chunks`` (listed in ``score_chunks``),
plus the short unindexed tail after the last chunk."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import BigInteger, Engine, func, insert, literal, select, union_all

from service.store.connection import describe_error
from service.store.locks import SCORE_LOG_LOCK
from service.store.schema import score_chunks_table, score_lead_chunks_table, scores_table

log = logging.getLogger(__name__)

INDEX_EVERY = 100_000  # scores per lead-index chunk
LOOKUP_CHUNK = 500  # lead ids per query when reading many leads' scores


def score_ids_of(lead_ids: list[str]) -> Any:
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


def latest_scores_of(lead_ids: list[str]) -> Any:
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
        .where(s.id.in_(score_ids_of(lead_ids)))
        .subquery()
    )
    return select(ranked).where(ranked.c.rank == 1)


def index_new_scores(engine: Engine, index_every: int, secret: str | None) -> None:
    """Once ``index_every`` scores wait unindexed, add them to the lead index as one chunk sorted by lead id.

    Each chunk lands after the previous ones, so the index only ever grows at its end. Ids must become
    visible in order for the tail (ids after the last chunk) to hold every unindexed score: SQLite has
    one writer at a time, and on PostgreSQL writes and chunks take the same advisory lock.
    """
    chunks, s = score_chunks_table.c, scores_table.c
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(*SCORE_LOG_LOCK)))
            indexed = conn.execute(select(func.coalesce(func.max(chunks.last_id), 0))).scalar_one()
            newest = conn.execute(select(func.coalesce(func.max(s.id), 0))).scalar_one()
            if newest - indexed < index_every:
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
        log.info("score log: lead index not extended this time (%s)", describe_error(exc, secret))


def score_history_query(lead_id: str, limit: int) -> Any:
    """This lead's scores, newest first."""
    s = scores_table.c
    return (
        select(s.model_version, s.probability, s.grade, s.scored_at)
        .where(s.id.in_(score_ids_of([lead_id])))
        .order_by(s.scored_at.desc(), s.id.desc())
        .limit(limit)
    )
