"""Reference statistics of the training data, for drift monitoring and score percentiles."""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np
import pandas as pd

from training.model import LeadEncoder, boolean_values, category_text, numeric_values

_NUMERIC_BINS = 10
_SCORE_QUANTILES = 1001
_EPSILON = 1e-4


def field_reference(column: pd.Series, kind: str, encoder: LeadEncoder) -> dict[str, Any]:
    """Decile bins of a numeric field, or level shares of a categorical/boolean one, plus the missing share."""
    if kind == "numeric":
        values = numeric_values(column)
        finite = values[~np.isnan(values)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, _NUMERIC_BINS + 1)[1:-1])).tolist()
        return {"kind": kind, "edges": edges, "shares": numeric_shares(values, edges)}
    levels = ["false", "true"] if kind == "boolean" else encoder.categories_[column.name]
    return {"kind": kind, "levels": levels, "shares": level_shares(column, kind, levels)}


def numeric_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Share per bin, then the missing share last."""
    present = ~np.isnan(values)
    counts = np.bincount(np.searchsorted(edges, values[present], side="right"), minlength=len(edges) + 1)
    return [*(counts / max(len(values), 1)).tolist(), float((~present).mean()) if len(values) else 0.0]


def level_shares(column: pd.Series, kind: str, levels: list[str]) -> list[float]:
    """Share per level, then unseen levels, then missing."""
    if kind == "boolean":
        codes = boolean_values(column)
        text = pd.Series(np.where(np.isnan(codes), None, np.where(codes == 1.0, "true", "false")), dtype=object)
    else:
        text = category_text(column)
    counts = text.value_counts()
    n = max(len(column), 1)
    known = [float(counts.get(level, 0)) / n for level in levels]
    missing = float(text.isna().sum()) / n
    return [*known, max(0.0, 1.0 - sum(known) - missing), missing]


def score_reference(probabilities: np.ndarray) -> dict[str, list[float]]:
    """Holdout score quantiles (for percentiles) and decile shares (for score drift)."""
    quantiles = np.quantile(probabilities, np.linspace(0, 1, _SCORE_QUANTILES)).tolist()
    edges = np.unique(np.quantile(probabilities, np.linspace(0, 1, 11)[1:-1])).tolist()
    return {"quantiles": quantiles, "edges": edges, "shares": numeric_shares(probabilities, edges)}


def percentile(probabilities: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Percentile (0–100) of each probability among holdout leads."""
    grid = np.asarray(quantiles)
    return 100.0 * np.searchsorted(grid, probabilities, side="right") / len(grid)


def percentile_of(probability: float, quantiles: list[float]) -> float:
    """`percentile` for one probability, without arrays (the single-lead serving path)."""
    return 100.0 * bisect.bisect_right(quantiles, probability) / len(quantiles)


def population_stability_index(expected: list[float], actual: list[float]) -> float:
    """PSI between two share vectors over the same bins; above 0.25 is usually read as real drift."""
    e = np.clip(np.asarray(expected, dtype=float), _EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), _EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def reference_statistics(
    frame: pd.DataFrame, kinds: dict[str, str], encoder: LeadEncoder, holdout_probabilities: np.ndarray
) -> dict[str, Any]:
    """Everything monitoring compares live traffic with."""
    return {
        "rows": len(frame),
        "fields": {name: field_reference(frame[name], kind, encoder) for name, kind in kinds.items()},
        "scores": score_reference(holdout_probabilities),
    }
