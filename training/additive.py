"""Regularised logistic regression in which every field is a lookup table: exactly additive, fast to serve.

Each field of the encoded lead matrix becomes one level per row: a numeric field's quantile bin, a
category's code, a boolean's value, or the field's own "missing" level (so missing is learned, not
imputed). The model is an L2-penalised logistic regression on the one-hot levels, which makes the
log-odds a sum of one table entry per field: per-field reasons are exact, and serving is a lookup.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from training.calibrated import LogOddsModel

DEFAULT_BINS = 12
# a numeric field with at most this many distinct values keeps one level per value (codes, counts, bands)
DISTINCT_AS_LEVELS = 24


def numeric_cuts(values: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Cut points between levels: midpoints of the distinct values when few, else unique inner quantiles."""
    present = np.unique(values[~np.isnan(values)])
    if len(present) <= 1:
        return np.empty(0)
    if len(present) <= DISTINCT_AS_LEVELS:
        return (present[:-1] + present[1:]) / 2
    quantiles = np.quantile(values[~np.isnan(values)], np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


class BinnedLogistic(LogOddsModel, ClassifierMixin, BaseEstimator):
    """Logistic regression on per-field levels; ``tables_[j][level]`` is field j's part of the log-odds."""

    def __init__(self, kinds: list[str] | None = None, C: float = 1.0, bins: int = DEFAULT_BINS) -> None:  # noqa: N803
        self.kinds = kinds
        self.C = C
        self.bins = bins

    # ------------------------------------------------------------------ levels

    def _learn_levels(self, X: np.ndarray) -> None:  # noqa: N803
        kinds = self.kinds or ["numeric"] * X.shape[1]
        self.cuts_: list[np.ndarray | None] = []
        self.sizes_: list[int] = []
        for j, kind in enumerate(kinds):
            column = X[:, j]
            if kind == "numeric":
                cuts = numeric_cuts(column, self.bins)
                self.cuts_.append(cuts)
                self.sizes_.append(len(cuts) + 2)  # bins, then missing
            else:
                present = column[~np.isnan(column)]
                top = int(present.max()) + 1 if len(present) else 0
                self.cuts_.append(None)
                self.sizes_.append(max(top, 2 if kind == "boolean" else 1) + 1)  # codes, then missing
        self.offsets_ = np.concatenate([[0], np.cumsum(self.sizes_)[:-1]]).astype(np.int64)

    def levels(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """(n, fields) level index per field; missing, and codes unseen in training, take the missing level."""
        out = np.empty(X.shape, dtype=np.int64)
        for j, cuts in enumerate(self.cuts_):
            column = X[:, j]
            missing = np.isnan(column)
            if cuts is not None:
                level = np.searchsorted(cuts, np.where(missing, 0.0, column), side="right")
            else:
                level = np.where(missing, 0, column).astype(np.int64)
                missing = missing | (level < 0) | (level >= self.sizes_[j] - 1)
            out[:, j] = np.where(missing, self.sizes_[j] - 1, level)
        return out

    def level_one(self, j: int, value: float) -> int:
        """One field's level for one value, with scalar arithmetic (the single-lead serving path)."""
        last = self.sizes_[j] - 1
        if value != value:  # NaN
            return last
        cuts = self.cuts_list_[j]
        if cuts is not None:
            return bisect.bisect_right(cuts, value)
        level = int(value)
        return level if 0 <= level < last else last

    def one_hot(self, levels: np.ndarray) -> sparse.csr_matrix:
        n, fields = levels.shape
        columns = (levels + self.offsets_).ravel()
        indptr = np.arange(0, n * fields + 1, fields)
        return sparse.csr_matrix((np.ones(n * fields), columns, indptr), shape=(n, int(sum(self.sizes_))))

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, y: np.ndarray) -> BinnedLogistic:  # noqa: N803
        levels = self.learn_levels(X)
        return self.set_weights(self.penalised_fit(self.one_hot(levels), y), levels)

    def learn_levels(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Learn each field's levels from these rows and return the rows' levels."""
        self._learn_levels(X)
        return self.levels(X)

    def penalised_fit(self, one_hot: sparse.csr_matrix, y: np.ndarray, warm: LogisticRegression | None = None):
        """The L2-penalised fit on one-hot levels; ``warm`` continues from an earlier fit (a path over C)."""
        fit = warm or LogisticRegression(max_iter=2000, tol=1e-5, warm_start=True)
        fit.set_params(C=self.C)
        return fit.fit(one_hot, y)

    def set_weights(self, fit: LogisticRegression, levels: np.ndarray) -> BinnedLogistic:
        """Turn a fit's coefficients into one table per field, centred on the training rows' mean."""
        coef = fit.coef_[0]
        self.tables_ = [coef[o : o + s].copy() for o, s in zip(self.offsets_, self.sizes_, strict=True)]
        self.bias_ = float(fit.intercept_[0])
        # reasons are measured from the average lead of the training data, as tree contributions are
        self.centers_ = np.array([table[levels[:, j]].mean() for j, table in enumerate(self.tables_)])
        self.cuts_list_ = [None if c is None else c.tolist() for c in self.cuts_]
        self.table_lists_ = [t.tolist() for t in self.tables_]
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(self.sizes_)
        self.slope_, self.intercept_ = 1.0, 0.0
        return self

    # ------------------------------------------------------------------ scoring

    def raw_score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Uncalibrated log-odds: the bias plus one table entry per field."""
        levels = self.levels(np.asarray(X, dtype=float))
        total = np.full(len(levels), self.bias_)
        for j, table in enumerate(self.tables_):
            total += table[levels[:, j]]
        return total

    def raw_one(self, row: list[float]) -> float:
        """The same sum for one row given as a list, with scalar arithmetic only."""
        total = self.bias_
        for j, table in enumerate(self.table_lists_):
            total += table[self.level_one(j, row[j])]
        return total

    def raw_contributions(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """(n, fields + 1): each field's table entry less its training mean, then the base value."""
        levels = self.levels(np.asarray(X, dtype=float))
        out = np.empty((len(levels), len(self.tables_) + 1))
        for j, table in enumerate(self.tables_):
            out[:, j] = table[levels[:, j]] - self.centers_[j]
        out[:, -1] = self.bias_ + float(self.centers_.sum())
        return out

    def level_table(self, j: int) -> list[dict[str, Any]]:
        """Field j's levels as readable bounds with their log-odds part (for notebooks and reviews)."""
        cuts = self.cuts_[j]
        rows: list[dict[str, Any]] = []
        for level, weight in enumerate(self.tables_[j]):
            if level == len(self.tables_[j]) - 1:
                label = "missing"
            elif cuts is None:
                label = f"code {level}"
            else:
                low = -math.inf if level == 0 else cuts[level - 1]
                high = math.inf if level == len(cuts) else cuts[level]
                label = f"[{low:g}, {high:g})"
            rows.append({"level": label, "log_odds": float(weight)})
        return rows

