"""Retention and erasure: remove what is older than a cutoff, or everything about one lead, from every table that
holds it, leaving the rest readable by every reader.

A lead's fields live inside ``score_batches`` blobs shared with other leads: those rows are rewritten without the
removed scores (deleted once empty). Each rewrite is its own short transaction that score writes wait for
(``score_log_transaction``), so the writer keeps going between them; the blobs are searched outside any lock,
then read again under it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, Table, bindparam, delete, exists, func, inspect, select, text, update

from service.store.connection import StoreUnavailable, build_engine, database_url, describe_error, redact_url
from service.store.encoding import blob_times, keep_scores
from service.store.lead_index import score_ids_of
from service.store.locks import score_log_transaction
from service.store.rejects import printable
from service.store.schema import (
    LEAD_ID_LENGTH,
    as_utc,
    outcomes_table,
    score_batches_table,
    score_chunks_table,
    score_lead_chunks_table,
    score_rejects_table,
    scores_table,
)

BATCHES_PER_PAGE = 64  # score_batches rows read at a time
SCORE_IDS_PER_DELETE = 50_000  # scores rows looked at per pruning transaction

KeepRule = Callable[[dict[str, Any], int], list[int]]  # decoded blob, its size -> positions to keep


@dataclass(frozen=True)
class BatchEdits:
    """What rewriting the ``score_batches`` blobs removed."""

    fields: int = 0  # scores whose lead fields were removed from blobs
    rewritten: int = 0  # rows rewritten without them
    deleted: int = 0  # rows deleted, nothing left in them


@dataclass(frozen=True)
class PruneCounts:
    scores: int
    batches: BatchEdits
    index_entries: int
    index_chunks: int
    dead_letters: int
    outcomes: int | None  # None: outcomes were kept


@dataclass(frozen=True)
class ErasureCounts:
    scores: int
    batches: BatchEdits
    index_entries: int
    outcomes: int
    dead_letters: int

    @property
    def found(self) -> bool:
        return any((self.scores, self.batches.fields, self.index_entries, self.outcomes, self.dead_letters))

    def to_dict(self) -> dict[str, int]:
        return {
            "scores": self.scores,
            "logged_fields": self.batches.fields,
            "score_batches_rewritten": self.batches.rewritten,
            "score_batches_deleted": self.batches.deleted,
            "index_entries": self.index_entries,
            "outcomes": self.outcomes,
            "dead_letters": self.dead_letters,
        }


def open_score_log(url: str) -> Engine:
    """An engine on an existing score log (no writer, no tables created); StoreUnavailable when there is none."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():  # connecting makes one
        raise StoreUnavailable(f"no score log at {redact_url(parsed)} (no such file)")
    engine = build_engine(parsed)
    try:
        with engine.connect() as conn:
            found = inspect(conn).has_table(scores_table.name)
    except Exception as exc:
        engine.dispose()
        raise StoreUnavailable(
            f"cannot open the score database at {redact_url(parsed)} ({describe_error(exc, parsed.password)})"
        ) from exc
    if not found:
        engine.dispose()
        raise StoreUnavailable(f"no score log at {redact_url(parsed)} (it has no scores table)")
    return engine


# ---- pruning ---------------------------------------------------------------------------------------------------


def prune(engine: Engine, cutoff: datetime, outcomes: bool = False) -> PruneCounts:
    """Remove every score made before ``cutoff``: its row, its lead fields in the blobs, its index entries; and
    the dead letters from before it. Outcomes reported before it only when ``outcomes`` is true."""
    cutoff = as_utc(cutoff)

    def newer(columns: dict[str, Any], size: int) -> list[int]:
        return [i for i, at in enumerate(blob_times(columns, size)) if at >= cutoff]

    batches = rewrite_batches(engine, newer)
    scores = _prune_scores(engine, cutoff)
    entries, chunks = _prune_index(engine)
    dead_letters = _delete(engine, score_rejects_table, score_rejects_table.c.rejected_at < cutoff)
    removed_outcomes = _delete(engine, outcomes_table, outcomes_table.c.reported_at < cutoff) if outcomes else None
    return PruneCounts(scores, batches, entries, chunks, dead_letters, removed_outcomes)


def _prune_scores(engine: Engine, cutoff: datetime) -> int:
    """Delete the old scores rows a stretch of ids at a time (scored_at has no index; the id is the key)."""
    s = scores_table.c
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(s.id), func.max(s.id))).one()
    removed = 0
    for start in range(first or 1, (last or 0) + 1, SCORE_IDS_PER_DELETE):
        stretch = (s.id >= start) & (s.id < start + SCORE_IDS_PER_DELETE) & (s.scored_at < cutoff)
        with score_log_transaction(engine) as conn:
            removed += conn.execute(delete(scores_table).where(stretch)).rowcount
    return removed


def _prune_index(engine: Engine) -> tuple[int, int]:
    """Delete the index entries of scores no longer stored, a chunk per transaction, then every chunk left empty
    but the newest (where it ends, the unindexed tail begins)."""
    s, chunks, entries = scores_table.c, score_chunks_table.c, score_lead_chunks_table.c
    with engine.connect() as conn:
        listed = conn.execute(select(chunks.first_id).order_by(chunks.first_id)).scalars().all()
    removed_entries = removed_chunks = 0
    for chunk in listed:
        with score_log_transaction(engine) as conn:
            gone = ~exists().where(s.id == entries.score_id)
            removed_entries += conn.execute(
                delete(score_lead_chunks_table).where(entries.chunk == chunk, gone)
            ).rowcount
            newest = conn.execute(select(func.max(chunks.first_id))).scalar_one()
            empty = not conn.execute(select(exists().where(entries.chunk == chunk))).scalar_one()
            if empty and chunk != newest:
                removed_chunks += conn.execute(delete(score_chunks_table).where(chunks.first_id == chunk)).rowcount
    return removed_entries, removed_chunks


def _delete(engine: Engine, table: Table, where: ColumnElement[bool]) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(table).where(where)).rowcount


# ---- erasure ---------------------------------------------------------------------------------------------------


def erase_lead(engine: Engine, lead_id: str) -> ErasureCounts:
    """Remove everything stored about one lead: its scores, its lead fields inside shared blobs, its index
    entries, its outcome reports and its dead letters. Other leads' data is left as it was."""

    def others(columns: dict[str, Any], size: int) -> list[int]:
        return [i for i, lead in enumerate(columns["lead_id"]) if lead != lead_id]

    s, chunks, entries = scores_table.c, score_chunks_table.c, score_lead_chunks_table.c
    with score_log_transaction(engine) as conn:
        # the blobs holding the scores deleted here are those written so far; later ones hold later scores
        written = conn.execute(select(func.coalesce(func.max(score_batches_table.c.id), 0))).scalar_one()
        scores = conn.execute(delete(scores_table).where(s.id.in_(score_ids_of([lead_id])))).rowcount
        in_chunks = entries.chunk.in_(select(chunks.first_id))  # probes each chunk's part of the primary key
        index_entries = conn.execute(
            delete(score_lead_chunks_table).where(in_chunks, entries.lead_id == lead_id)
        ).rowcount
        outcomes = conn.execute(delete(outcomes_table).where(outcomes_table.c.lead_id == lead_id)).rowcount
        dead_letters = conn.execute(
            delete(score_rejects_table).where(score_rejects_table.c.lead_id == printable(lead_id, LEAD_ID_LENGTH))
        ).rowcount
    batches = rewrite_batches(engine, others, _blob_mentions(engine, lead_id), through=written)
    return ErasureCounts(scores, batches, index_entries, outcomes, dead_letters)


def _blob_mentions(engine: Engine, lead_id: str) -> ColumnElement[bool]:
    """Blobs whose bytes hold the lead id as the JSON text the writer wrote, searched by the database itself;
    each match is decoded and checked (the id could also appear inside another lead's field)."""
    needle = bindparam("needle", orjson.dumps(lead_id), type_=score_batches_table.c.columns.type)
    if engine.dialect.name == "sqlite":
        return text("instr(columns, :needle) > 0").bindparams(needle)  # type: ignore[return-value]
    return text("position(:needle in columns) > 0").bindparams(needle)  # type: ignore[return-value]


# ---- rewriting blobs -------------------------------------------------------------------------------------------


def rewrite_batches(
    engine: Engine, keep: KeepRule, where: ColumnElement[bool] | None = None, through: int | None = None
) -> BatchEdits:
    """Rewrite every ``score_batches`` row (or those ``where`` selects) up to id ``through`` (default: the newest
    now) so it holds only the scores ``keep`` names; delete a row left empty. Rows are found outside any lock,
    then each page's changes are made in one short transaction that reads them again first."""
    fields = rewritten = deleted = 0
    for page in _pages(engine, where, through):
        changing = [row.id for row in page if len(keep(orjson.loads(row.columns), row.size)) < row.size]
        if not changing:
            continue
        b = score_batches_table.c
        with score_log_transaction(engine) as conn:
            for row in conn.execute(select(b.id, b.size, b.columns).where(b.id.in_(changing))).all():
                kept = keep(columns := orjson.loads(row.columns), row.size)
                if len(kept) == row.size:
                    continue
                fields += row.size - len(kept)
                if kept:
                    conn.execute(
                        update(score_batches_table)
                        .where(b.id == row.id)
                        .values(size=len(kept), columns=keep_scores(columns, kept))
                    )
                    rewritten += 1
                else:
                    conn.execute(delete(score_batches_table).where(b.id == row.id))
                    deleted += 1
    return BatchEdits(fields, rewritten, deleted)


def _pages(engine: Engine, where: ColumnElement[bool] | None, through: int | None) -> Iterator[list[Any]]:
    """The blobs up to id ``through`` (default: those written before the call; the writer's later ones are not
    waited for), in id order, a page at a time, each page read in its own short read."""
    b = score_batches_table.c
    last = through
    if last is None:
        with engine.connect() as conn:
            last = conn.execute(select(func.coalesce(func.max(b.id), 0))).scalar_one()
    after = 0
    while after < last:
        query = select(b.id, b.size, b.columns).where(b.id > after, b.id <= last).order_by(b.id).limit(BATCHES_PER_PAGE)
        with engine.connect() as conn:
            page = conn.execute(query if where is None else query.where(where)).all()
        if not page:
            return
        yield page
        after = page[-1].id
