"""Regularised logistic regression in which every field has its own part of the log-odds: exactly additive.

Each field of the encoded lead matrix becomes one level per row: a numeric field's quantile bin, a
category's code, a boolean's value, or the field's own "missing" level (so missing is learned, not
imputed); a numeric field also gets a linear trend (its value clipped to the training range and
standardised), so a smooth effect needs no many small steps on little data. The model is an L2-penalised
logistic regression on both, so the log-odds are a sum of one part per field: per-field reasons are exact,
and serving is a lookup and a multiply per field.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from training.calibrated import LogOddsModel

DEFAULT_BINS = 12
# a numeric field with at most this many distinct values keeps one level per value (codes, counts, bands)
DISTINCT_AS_LEVELS = 24
# up to this many rows every field is looked up in a few whole-matrix NumPy calls (one lead's hypothetical
# answers, a small batch): field by field, NumPy's per-call cost would outweigh the work twentyfold
AT_ONCE_ROWS = 256


def numeric_cuts(values: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Cut points between levels: midpoints of the distinct values when few, else unique inner quantiles."""
    present = np.unique(values[~np.isnan(values)])
    if len(present) <= 1:
        return np.empty(0)
    if len(present) <= DISTINCT_AS_LEVELS and bins > 1:
        return (present[:-1] + present[1:]) / 2
    quantiles = np.quantile(values[~np.isnan(values)], np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


class BinnedLogistic(LogOddsModel, ClassifierMixin, BaseEstimator):
    """Logistic regression on per-field levels, plus a linear trend for numbers; each field's part of the
    log-odds is ``tables_[j][level] + trends_[j] * standardised value``."""

    def __init__(self, kinds: list[str] | None = None, C: float = 1.0, bins: int = DEFAULT_BINS) -> None:  # noqa: N803
        self.kinds = kinds
        self.C = C
        self.bins = bins

    # ------------------------------------------------------------------ design

    def _learn_levels(self, X: np.ndarray) -> None:  # noqa: N803
        kinds = self.kinds or ["numeric"] * X.shape[1]
        self.cuts_: list[np.ndarray | None] = []
        self.sizes_: list[int] = []
        self.scales_: list[tuple[float, float, float, float] | None] = []  # low, high, mean, sd
        for j, kind in enumerate(kinds):
            column = X[:, j]
            if kind == "numeric":
                cuts = numeric_cuts(column, self.bins)
                self.cuts_.append(cuts)
                self.sizes_.append(len(cuts) + 2)  # bins, then missing
                self.scales_.append(_trend_scale(column))
            else:
                present = column[~np.isnan(column)]
                top = int(present.max()) + 1 if len(present) else 0
                self.cuts_.append(None)
                self.sizes_.append(max(top, 2 if kind == "boolean" else 1) + 1)  # codes, then missing
                self.scales_.append(None)
        self.offsets_ = np.concatenate([[0], np.cumsum(self.sizes_)[:-1]]).astype(np.int64)
        self.trend_fields_ = [j for j, scale in enumerate(self.scales_) if scale is not None]
        self.lookup_ = None

    def levels(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """(n, fields) level index per field; missing, and codes unseen in training, take the missing level."""
        if len(X) <= AT_ONCE_ROWS:
            return self._lookup().levels(X)
        return self.levels_by_field(X)

    def levels_by_field(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """``levels`` one field at a time: for many rows, where the all-at-once comparison would be large."""
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

    def trend(self, j: int, column: np.ndarray) -> np.ndarray:
        """Field j's values clipped to its training range (0.5th-99.5th percentile) and standardised; 0 if missing."""
        low, high, mean, sd = self.scales_[j]
        return np.nan_to_num((np.clip(column, low, high) - mean) / sd, nan=0.0)

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

    def design(self, X: np.ndarray) -> sparse.csr_matrix:  # noqa: N803
        """The regression's inputs: one-hot levels of every field, then the trends of numeric fields."""
        levels = self.levels(X)
        n, fields = levels.shape
        columns = (levels + self.offsets_).ravel()
        indptr = np.arange(0, n * fields + 1, fields)
        width = int(sum(self.sizes_))
        one_hot = sparse.csr_matrix((np.ones(n * fields), columns, indptr), shape=(n, width))
        if not self.trend_fields_:
            return one_hot
        trends = np.column_stack([self.trend(j, X[:, j]) for j in self.trend_fields_])
        return sparse.hstack([one_hot, sparse.csr_matrix(trends)], format="csr")

    def learn(self, X: np.ndarray) -> sparse.csr_matrix:  # noqa: N803
        """Learn each field's levels and trend scale from these rows; return their design."""
        self._learn_levels(X)
        return self.design(X)

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, y: np.ndarray) -> BinnedLogistic:  # noqa: N803
        return self.set_weights(self.penalised_fit(self.learn(X), y), X)

    def penalised_fit(self, design: sparse.csr_matrix, y: np.ndarray, warm: LogisticRegression | None = None):
        """The L2-penalised fit; ``warm`` continues from an earlier fit (a path over C)."""
        fit = warm or LogisticRegression(max_iter=2000, tol=1e-4, warm_start=True)
        fit.set_params(C=self.C)
        return fit.fit(design, y)

    def set_weights(self, fit: LogisticRegression, X: np.ndarray) -> BinnedLogistic:  # noqa: N803
        """Turn a fit's coefficients into per-field tables and trends, centred on the training rows' mean."""
        coef = fit.coef_[0]
        self.tables_ = [coef[o : o + s].copy() for o, s in zip(self.offsets_, self.sizes_, strict=True)]
        self.trends_ = np.zeros(len(self.sizes_))
        self.trends_[self.trend_fields_] = coef[int(sum(self.sizes_)) :]
        self.bias_ = float(fit.intercept_[0])
        self.lookup_ = None
        self.cuts_list_ = [None if c is None else c.tolist() for c in self.cuts_]
        self.table_lists_ = [t.tolist() for t in self.tables_]
        self.trend_lists_ = [
            None if scale is None else (*scale, float(self.trends_[j])) for j, scale in enumerate(self.scales_)
        ]
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(self.sizes_)
        self.slope_, self.intercept_ = 1.0, 0.0
        # reasons are measured from the average lead of the training data, as tree contributions are
        self.centers_ = self._field_parts(X).mean(axis=0)
        self.base_ = self.bias_ + float(self.centers_.sum())
        self.center_lists_ = self.centers_.tolist()
        return self

    def __getstate__(self) -> dict:
        """Pickled without the lookup arrays: a bundle holds only the fitted model, and they are rebuilt on use."""
        state = dict(super().__getstate__())
        state.pop("lookup_", None)
        return state

    def _lookup(self) -> _Lookup:
        """The fitted levels and weights as whole-field arrays; built on first use (bundles saved before it
        existed have none)."""
        lookup = getattr(self, "lookup_", None)
        if lookup is None or (lookup.tables is None and hasattr(self, "tables_")):
            lookup = self.lookup_ = _Lookup.of(self)
        return lookup

    # ------------------------------------------------------------------ scoring

    def _field_parts(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """(n, fields): each field's part of the log-odds."""
        X = np.asarray(X, dtype=float)  # noqa: N806
        if len(X) <= AT_ONCE_ROWS:
            return self._lookup().parts(X)
        return self.field_parts_by_field(X)

    def field_parts_by_field(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """``_field_parts`` one field at a time (for many rows)."""
        X = np.asarray(X, dtype=float)  # noqa: N806
        levels = self.levels_by_field(X)
        parts = np.empty(levels.shape)
        for j, table in enumerate(self.tables_):
            parts[:, j] = table[levels[:, j]]
            if self.scales_[j] is not None:
                parts[:, j] += self.trends_[j] * self.trend(j, X[:, j])
        return parts

    def raw_score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Uncalibrated log-odds: the bias plus each field's part, added field by field in order (as ``raw_one``
        does, so the same bits)."""
        parts = self._field_parts(X)
        terms = np.empty((len(parts), parts.shape[1] + 1))
        terms[:, 0] = self.bias_
        terms[:, 1:] = parts
        return np.cumsum(terms, axis=1)[:, -1]  # an accumulation adds left to right; a sum may pair terms up

    def raw_one(self, row: list[float]) -> float:
        """The same sum for one row given as a list, with scalar arithmetic only, in the same order of
        additions (so the same bits). One loop, no call per field: the calls cost as much as a tree ensemble's
        whole fast path."""
        total = self.bias_
        fields = zip(row, self.cuts_list_, self.table_lists_, self.sizes_, self.trend_lists_)  # noqa: B905 (hot path)
        for value, cuts, table, size, trend in fields:
            if value != value:  # NaN: the missing level, no trend
                total += table[size - 1]
                continue
            if cuts is not None:
                part = table[bisect.bisect_right(cuts, value)]
            else:
                level = int(value)
                part = table[level if 0 <= level < size - 1 else size - 1]
            if trend is not None:
                low, high, mean, sd, weight = trend
                part += weight * ((min(max(value, low), high) - mean) / sd)
            total += part
        return total

    def _part_one(self, j: int, value: float) -> float:
        part = self.table_lists_[j][self.level_one(j, value)]
        trend = self.trend_lists_[j]
        if trend is not None:
            low, high, mean, sd, weight = trend
            part += weight * ((min(max(value, low), high) - mean) / sd if value == value else 0.0)
        return part

    def raw_contributions_one(self, row: list[float]) -> list[float]:
        """``raw_contributions`` of one row given as a list, with scalar arithmetic only."""
        centers = self.center_lists_
        return [*(self._part_one(j, value) - centers[j] for j, value in enumerate(row)), self.base_]

    def raw_contributions(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """(n, fields + 1): each field's part less its training mean, then the base value."""
        parts = self._field_parts(X)
        out = np.empty((len(parts), parts.shape[1] + 1))
        out[:, :-1] = parts - self.centers_
        out[:, -1] = self.base_
        return out


@dataclass(frozen=True)
class _Lookup:
    """A fitted BinnedLogistic's cuts, tables and trends as arrays over all fields, for ``levels`` and the field
    parts in a few whole-matrix operations with the same arithmetic, element by element, as field by field."""

    cuts: np.ndarray  # (fields, most cuts): each numeric field's cuts, padded with NaN (never <= a value)
    categories: np.ndarray  # columns of categories and booleans: their code is the level
    missing: np.ndarray  # (fields,) each field's missing level
    offsets: np.ndarray  # (fields,) where each field's table starts in ``tables``
    tables: np.ndarray | None  # every field's table, end to end; None before the fit
    trend_fields: np.ndarray
    lows: np.ndarray
    highs: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, model: BinnedLogistic) -> _Lookup:
        widest = max((len(c) for c in model.cuts_ if c is not None), default=0)
        cuts = np.full((len(model.cuts_), widest), np.nan)
        for j, field_cuts in enumerate(model.cuts_):
            if field_cuts is not None:
                cuts[j, : len(field_cuts)] = field_cuts
        trend_fields = np.array(model.trend_fields_, dtype=np.int64)
        scales = np.array([model.scales_[j] for j in model.trend_fields_], dtype=float).reshape(-1, 4)
        fitted = hasattr(model, "tables_")
        return cls(
            cuts=cuts,
            categories=np.array([j for j, c in enumerate(model.cuts_) if c is None], dtype=np.int64),
            missing=np.array(model.sizes_, dtype=np.int64) - 1,
            offsets=np.asarray(model.offsets_, dtype=np.int64),
            tables=np.concatenate(model.tables_) if fitted else None,
            trend_fields=trend_fields,
            lows=scales[:, 0],
            highs=scales[:, 1],
            means=scales[:, 2],
            sds=scales[:, 3],
            weights=np.asarray(model.trends_, dtype=float)[trend_fields] if fitted else np.empty(0),
        )

    def levels(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """As ``BinnedLogistic.levels_by_field``: a number's level counts the cuts at or below it (a right-side
        search), a category's is its code; missing and codes outside the table take the missing level."""
        missing = np.isnan(X)
        filled = np.where(missing, 0.0, X)
        level = np.count_nonzero(self.cuts <= filled[:, :, None], axis=2)
        codes = filled[:, self.categories].astype(np.int64)
        level[:, self.categories] = codes
        missing[:, self.categories] |= (codes < 0) | (codes >= self.missing[self.categories])
        return np.where(missing, self.missing, level)

    def parts(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """As ``BinnedLogistic.field_parts_by_field``: each field's table entry, plus its weighted trend."""
        parts = self.tables[self.levels(X) + self.offsets]
        if len(self.trend_fields):
            values = X[:, self.trend_fields]
            trend = (np.clip(values, self.lows, self.highs) - self.means) / self.sds
            # NaN (missing) to 0 as nan_to_num does; a clipped value over a positive sd is never infinite, and
            # nan_to_num's own checks cost more than all the rest of the trend
            trend = np.where(np.isnan(trend), 0.0, trend)
            parts[:, self.trend_fields] += self.weights * trend
        return parts


def _trend_scale(column: np.ndarray) -> tuple[float, float, float, float] | None:
    """Clipping bounds, mean and sd of a numeric field's present values; None when it does not vary."""
    present = column[~np.isnan(column)]
    if len(present) < 2:
        return None
    low, high = (float(v) for v in np.quantile(present, [0.005, 0.995]))
    clipped = np.clip(present, low, high)
    sd = float(clipped.std())
    return (low, high, float(clipped.mean()), sd) if sd > 0 else None
