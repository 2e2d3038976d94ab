"""Scoring without a per-request DataFrame: a fast path derived from the bundle's fitted pipeline.

``Scorer`` reads the fitted ``LeadEncoder``'s category codes and the fitted trees straight out of the
bundle, so it cannot compute a feature differently from training; tests prove its probabilities equal
``pipeline.predict_proba`` and its reasons add up to the calibrated log-odds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np

from training.bundle import Bundle
from training.engine import serving_engine
from training.grades import grade_index, grade_of
from training.model import BOOLEAN_CODES, one_category_text
from training.reference import percentile, percentile_of

NAN = float("nan")
_BOOLEAN_FLOATS = {True: 1.0, False: 0.0}
_WARNING_VALUE_CHARS = 40


@dataclass(frozen=True)
class EncodedLeads:
    matrix: np.ndarray
    warnings: list[list[str]]


@dataclass(frozen=True)
class ScoredColumns:
    """A batch's replies, and what the score log and the metrics read from them, already as columns."""

    results: list[dict[str, Any]]
    lead_ids: list[str | None]
    probabilities: list[float]
    probability_array: np.ndarray
    grades: list[str]
    grade_counts: dict[str, int]
    scored_at: datetime


class Scorer:
    """Everything needed to score a lead, precomputed once per bundle."""

    def __init__(self, bundle: Bundle, top_reasons: int = 3) -> None:
        encoder, model = bundle.pipeline["encode"], bundle.pipeline["model"]
        self.bundle = bundle
        self.version = bundle.version
        self.fields: list[str] = list(encoder.feature_names_in_)
        self.kinds: list[str] = [encoder.kinds[name] for name in self.fields]
        self.codes: dict[str, dict[str, float]] = {
            name: {level: float(code) for code, level in enumerate(levels)}
            for name, levels in encoder.categories_.items()
        }
        self.engine = serving_engine(model, compiled=True, threads=1)
        self.thresholds: dict[str, float] = bundle.grades["thresholds"]
        self.grade_names: list[str] = list(bundle.grades["names"])
        self._grade_array = np.array(self.grade_names, dtype=object)
        self.quantile_list: list[float] = [float(q) for q in bundle.reference["scores"]["quantiles"]]
        self.quantiles = np.asarray(self.quantile_list, dtype=float)
        self.id_field: str | None = bundle.spec.get("id")
        self.read_fields: list[str] = [*self.fields, self.id_field] if self.id_field else list(self.fields)
        self.top_reasons = top_reasons
        self.missing_notes: dict[str, str] = {name: _missing_note(name) for name in self.fields}

    def columns_of(self, leads: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Validated lead dicts as one list per field the scorer reads (the model's fields and the id)."""
        return {name: [lead.get(name) for lead in leads] for name in self.read_fields}

    def encode(self, leads: Sequence[Mapping[str, Any]]) -> EncodedLeads:
        """Leads as validated dicts → the trees' input matrix, with per-lead warnings."""
        if len(leads) == 1:
            row, notes = self._encode_one(leads[0])
            return EncodedLeads(np.array([row], dtype=float), [notes])
        return self.encode_columns(self.columns_of(leads), len(leads))

    def encode_columns(self, columns: Mapping[str, list[Any]], count: int) -> EncodedLeads:
        """One list per field → the trees' input matrix, with per-lead warnings; column by column."""
        matrix = np.empty((count, len(self.fields)), dtype=float)
        warnings: list[list[str]] = [[] for _ in range(count)]
        for j, (name, kind) in enumerate(zip(self.fields, self.kinds, strict=True)):
            values = columns[name]
            if kind == "categorical":
                column = np.fromiter(map(self.codes[name].get, values, repeat(NAN)), dtype=float, count=count)
            elif kind == "numeric":
                column = np.array(values, dtype=float)  # validated floats; numpy reads None as NaN
            else:
                column = _booleans(values)
            # validated values encode to NaN only when missing or, for a category, not found as sent: scanning
            # the array is a fraction of the cost of looking for None in the list
            if np.isnan(column).any():
                self._explain_gaps(name, kind, values, column, warnings)
            matrix[:, j] = column
        return EncodedLeads(matrix, warnings)

    def _explain_gaps(
        self, name: str, kind: str, values: Sequence[Any], column: np.ndarray, warnings: list[list[str]]
    ) -> None:
        """Warn about the missing values of a column; a category sent but not found as it is goes through the
        full text normalisation, which finds its code or warns that the level is unseen."""
        missing = self.missing_notes[name]
        for i in np.flatnonzero(np.isnan(column)).tolist():
            value = values[i]
            if value is None:
                warnings[i].append(missing)
            elif kind == "categorical":
                column[i] = self._normalised_code(name, value, warnings[i])

    def _encode_one(self, lead: Mapping[str, Any]) -> tuple[list[float], list[str]]:
        """One lead, one tight loop: the single-lead hot path."""
        row: list[float] = []
        notes: list[str] = []
        for name, kind in zip(self.fields, self.kinds, strict=True):
            value = lead.get(name)
            if value is None:
                row.append(NAN)
                notes.append(self.missing_notes[name])
            elif kind == "numeric":
                row.append(float(value))
            elif kind == "boolean":
                row.append(1.0 if value is True else 0.0 if value is False else _boolean_word(value))
            else:
                code = self.codes[name].get(value) if value.__class__ is str else None
                row.append(code if code is not None else self._normalised_code(name, value, notes))
        return row, notes

    def _normalised_code(self, name: str, value: Any, notes: list[str]) -> float:
        """The slow path: trimmed text or a number as text; unseen levels are scored as missing, with a warning."""
        text = one_category_text(value)
        code = self.codes[name].get(text)
        if code is None:
            notes.append(f"unseen category {str(text)[:_WARNING_VALUE_CHARS]!r} for {name!r}: scored as missing")
            return NAN
        return code

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        return self.engine.probabilities(matrix)

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact per-field contributions to the calibrated log-odds, and the base value, per lead."""
        return self.engine.contributions(matrix)

    def grades(self, probabilities: np.ndarray) -> tuple[list[str], dict[str, int]]:
        """Each lead's grade, and how many leads got each grade (for the metrics)."""
        index = grade_index(probabilities, self.thresholds)
        counts = np.bincount(index, minlength=len(self.grade_names)).tolist()
        return self._grade_array[index].tolist(), {n: c for n, c in zip(self.grade_names, counts, strict=True) if c}

    def percentiles(self, probabilities: np.ndarray) -> np.ndarray:
        return np.round(percentile(probabilities, self.quantiles), 1)

    def score(self, leads: Sequence[Mapping[str, Any]], reasons: str = "top") -> list[dict[str, Any]]:
        """Scores for validated leads: probability, grade, percentile, reasons ('top', 'all' or 'none')."""
        if len(leads) == 1:
            return [self.score_one(leads[0], reasons)]
        return self.score_columns(self.columns_of(leads), len(leads), reasons).results

    def score_columns(self, columns: Mapping[str, list[Any]], count: int, reasons: str = "top") -> ScoredColumns:
        """Scores for validated leads given as one list per field (see ``columns_of``)."""
        encoded = self.encode_columns(columns, count)
        array = self.probabilities(encoded.matrix)
        probabilities = array.tolist()
        grades, grade_counts = self.grades(array)
        percentiles = self.percentiles(array).tolist()
        lead_ids = _as_text(columns[self.id_field]) if self.id_field else [None] * count
        version, scored_at = self.version, datetime.now(UTC)
        results = [
            _result(lead_id, probability, grade, rank, notes, version, scored_at)
            for lead_id, probability, grade, rank, notes in zip(
                lead_ids, probabilities, grades, percentiles, encoded.warnings, strict=True
            )
        ]
        if reasons != "none":
            self._add_reasons(columns, encoded.matrix, results, everything=reasons == "all")
        return ScoredColumns(results, lead_ids, probabilities, array, grades, grade_counts, scored_at)

    def score_one(self, lead: Mapping[str, Any], reasons: str = "top") -> dict[str, Any]:
        """One lead with scalar arithmetic only: the single-lead hot path, equal to `score` on a batch."""
        row, notes = self._encode_one(lead)
        probability = self.engine.probability_one(row)
        grade = grade_of(probability, self.thresholds, self.grade_names)
        rank = round(percentile_of(probability, self.quantile_list), 1)
        lead_id = lead.get(self.id_field) if self.id_field else None
        lead_id = None if lead_id is None else str(lead_id)
        result = _result(lead_id, probability, grade, rank, notes, self.version, datetime.now(UTC))
        if reasons != "none":
            columns = {name: [lead.get(name)] for name in self.fields}
            self._add_reasons(columns, np.array([row], dtype=float), [result], everything=reasons == "all")
        return result

    def _add_reasons(
        self, columns: Mapping[str, list[Any]], matrix: np.ndarray, results: list[dict[str, Any]], everything: bool
    ) -> None:
        contributions, base = self.contributions(matrix)
        for i in range(len(results)):
            row = contributions[i]
            if everything:
                chosen = np.argsort(-np.abs(row), kind="stable")
            else:
                order = np.argsort(row, kind="stable")
                positives = [j for j in order[::-1][: self.top_reasons] if row[j] > 0]
                negatives = [j for j in order[: self.top_reasons] if row[j] < 0]
                chosen = positives + negatives
            results[i]["reasons"] = [
                {"field": self.fields[j], "value": columns[self.fields[j]][i], "contribution": float(row[j])}
                for j in chosen
            ]
            results[i]["base_value"] = float(base[i])


def _result(
    lead_id: str | None, probability: float, grade: str, rank: float, notes: list[str], version: str, at: datetime
) -> dict[str, Any]:
    """One lead's reply, reasons still to come."""
    return {
        "lead_id": lead_id,
        "probability": probability,
        "grade": grade,
        "percentile": rank,
        "reasons": None,
        "base_value": None,
        "warnings": notes,
        "model_version": version,
        "scored_at": at,
    }


def _booleans(values: list[Any]) -> np.ndarray:
    """Validated booleans (validation has turned the accepted words into true/false) as 1/0, missing as NaN,
    as the pipeline's encoder does; looked up in C."""
    return np.fromiter(map(_BOOLEAN_FLOATS.get, values, repeat(NAN)), dtype=float, count=len(values))


def _as_text(values: list[Any]) -> list[str | None]:
    """Lead ids as text: integer ids are echoed as strings, as the score log stores them."""
    return [value if value.__class__ is str or value is None else str(value) for value in values]


def _missing_note(name: str) -> str:
    return f"missing field {name!r}: scored as missing"


def _boolean_word(value: Any) -> float:
    if value is None:
        return NAN
    code = BOOLEAN_CODES.get(str(value).strip().lower())
    return NAN if code is None else code
