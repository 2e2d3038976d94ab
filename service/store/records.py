"""Scores in memory, as requests queue them for the score log: one record, or a batch as columns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple


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


def size_of(queued: ScoreBatch | ScoreRecord) -> int:
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


def as_write(queued: Sequence[ScoreBatch | ScoreRecord]) -> ScoreWrite:
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
