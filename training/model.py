"""The fitted pipeline: raw lead fields in, calibrated conversion probability out.

Everything that turns a lead into model input lives in ``LeadEncoder``, inside the pipeline that is
pickled into the bundle, so the service can never compute a feature differently from training.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from training.calibrated import LogOddsModel
from training.data import FALSE_WORDS, TRUE_WORDS
from training.placeholders import mask_placeholders, placeholder_keys

BOOLEAN_CODES = {**dict.fromkeys(TRUE_WORDS, 1.0), **dict.fromkeys(FALSE_WORDS, 0.0)}

# Chosen on measured facts (see the training issue notes in README): LightGBM fits faster than
# scikit-learn's HistGradientBoosting at the same AUC and gives exact per-lead contributions natively.
DEFAULT_BOOSTER_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "n_estimators": 2000,
    "num_leaves": 7,  # shallow trees: lead signals are mostly additive (5-fold AUC measured in README)
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "cat_smooth": 10.0,
    "min_data_per_group": 50,
    "max_cat_threshold": 32,
    "random_state": 0,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}


def category_text(column: pd.Series) -> pd.Series:
    """Categories as text, so 33, 33.0 and "33" are one level whether read from a file or JSON."""
    if pd.api.types.is_bool_dtype(column):
        return column.map({True: "true", False: "false"})
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=float)
        text = pd.Series(values, index=column.index).map(_number_text)
        return text.where(~np.isnan(values))
    if pd.api.types.is_string_dtype(column) and not pd.api.types.is_object_dtype(column):
        return column.str.strip()
    return column.map(one_category_text)


def _number_text(value: float) -> str:
    return str(int(value)) if np.isfinite(value) and value == int(value) else repr(value)


def one_category_text(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | np.number):
        return _number_text(float(value))
    return str(value).strip()


def category_codes(column: pd.Series, levels: list[str]) -> np.ndarray:
    """Each value's position in the levels, read as ``category_text`` reads it; NaN when missing or unseen.

    Levels are ``category_text``'s texts, so a value of an object column found among them as it is needs no
    normalising: it is looked up by hash, and only the rest (numbers, untrimmed text, unseen levels) is
    normalised first, as the service's scorer does lead by lead.
    """
    if not pd.api.types.is_object_dtype(column):
        return _codes(pd.Categorical(category_text(column), categories=levels).codes)
    codes = pd.Index(levels, dtype=object).get_indexer(column)
    rest = np.flatnonzero((codes < 0) & column.notna().to_numpy())
    if len(rest):
        codes[rest] = pd.Categorical(category_text(column.iloc[rest]), categories=levels).codes
    return _codes(codes)


def _codes(codes: np.ndarray) -> np.ndarray:
    return np.where(codes < 0, np.nan, codes).astype(float)


def boolean_values(column: pd.Series) -> np.ndarray:
    """1.0 / 0.0 / NaN from real booleans, 0/1, or words such as yes/no and true/false."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype(float).to_numpy()
    return column.map(lambda v: BOOLEAN_CODES.get(str(v).strip().lower(), np.nan)).to_numpy(dtype=float)


def numeric_values(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


class LeadEncoder(TransformerMixin, BaseEstimator):
    """Raw lead fields → the numeric matrix the trees read; categories become codes, unseen ones missing.

    ``missing_values`` maps a field to the texts that mean "not answered" there (the spec's placeholders,
    such as a form's `Select`): they are missing values, in training and in every lead scored later.
    """

    def __init__(
        self,
        kinds: dict[str, str] | None = None,
        max_levels: int = 1000,
        missing_values: dict[str, list[str]] | None = None,
    ) -> None:
        self.kinds = kinds
        self.max_levels = max_levels
        self.missing_values = missing_values

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("missing_values", None)  # bundles written before placeholders existed
        super().__setstate__(state)

    def placeholders(self, name: str) -> frozenset[str]:
        """The field's placeholders as they are compared (see ``placeholder_key``); empty when it has none."""
        return placeholder_keys((self.missing_values or {}).get(name, []))

    def fit(self, X: pd.DataFrame, y: Any = None) -> LeadEncoder:  # noqa: N803 (scikit-learn's name)
        kinds = self.kinds or {}
        self.feature_names_in_ = np.array(list(kinds), dtype=object)
        self.categories_ = {
            name: self._levels(self.without_placeholders(name, X[name]))
            for name, kind in kinds.items()
            if kind == "categorical"
        }
        self.categorical_indices_ = [i for i, kind in enumerate(kinds.values()) if kind == "categorical"]
        return self

    def _levels(self, column: pd.Series) -> list[str]:
        counts = category_text(column).value_counts()
        return [str(level) for level in counts.index[: self.max_levels]]

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        out = np.empty((len(X), len(self.feature_names_in_)), dtype=float)
        for j, (name, kind) in enumerate((self.kinds or {}).items()):
            column = X[name] if name in X.columns else pd.Series(np.nan, index=X.index, dtype=float)
            out[:, j] = self._encode(name, kind, column)
        return out

    def without_placeholders(self, name: str, column: pd.Series) -> pd.Series:
        """The column with the field's placeholders as missing values."""
        values = (self.missing_values or {}).get(name)
        return mask_placeholders(column, values)[0] if values else column

    def _encode(self, name: str, kind: str, column: pd.Series) -> np.ndarray:
        column = self.without_placeholders(name, column)
        if kind == "numeric":
            return numeric_values(column)
        if kind == "boolean":
            return boolean_values(column)
        return category_codes(column, self.categories_[name])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_


class CalibratedBooster(LogOddsModel, ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees whose raw score is mapped to calibrated log-odds by ``slope_ * raw + intercept_``.

    The map is monotone and linear in the log-odds, so the trees' exact per-lead contributions, multiplied by
    ``slope_``, add up to the calibrated log-odds.
    """

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        categorical_indices: list[int] | None = None,
        early_stopping_rounds: int = 100,
    ) -> None:
        self.params = params
        self.categorical_indices = categorical_indices
        self.early_stopping_rounds = early_stopping_rounds

    def fit(
        self,
        X: np.ndarray,  # noqa: N803
        y: np.ndarray,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        calibration_set: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> CalibratedBooster:
        """With ``eval_set``, stop early on it; without, fit exactly ``params['n_estimators']`` trees."""
        params = {**DEFAULT_BOOSTER_PARAMS, **(self.params or {})}
        model = lgb.LGBMClassifier(**params)
        callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)] if eval_set else None
        model.fit(
            X,
            y,
            eval_X=(eval_set[0],) if eval_set else None,
            eval_y=(eval_set[1],) if eval_set else None,
            eval_metric="binary_logloss",
            categorical_feature=self.categorical_indices or "auto",
            callbacks=callbacks,
        )
        self.booster_ = model.booster_
        self.params_used_ = params
        self.best_iteration_ = int(model.best_iteration_ or model.n_estimators)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        self.slope_, self.intercept_ = 1.0, 0.0
        if calibration_set is not None:
            self.slope_, self.intercept_ = platt_scale(self.raw_score(calibration_set[0]), calibration_set[1])
        return self

    def raw_score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """The trees' uncalibrated log-odds."""
        return self.booster_.predict(X, raw_score=True, num_iteration=self.best_iteration_)

    def raw_contributions(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """(n, features + 1): exact contributions to the raw score (TreeSHAP), base value last."""
        return self.booster_.predict(X, pred_contrib=True, num_iteration=self.best_iteration_)


class CalibratedBlend(LogOddsModel, ClassifierMixin, BaseEstimator):
    """Trees and the additive logistic model averaged in log-odds space: ``w_trees * raw_trees + w_logistic *
    raw_logistic``, then calibrated. Its reasons are the same weighted sum of both families' exact reasons."""

    def __init__(self, trees: CalibratedBooster, logistic: Any, weights: tuple[float, float] = (0.5, 0.5)) -> None:
        self.trees = trees
        self.logistic = logistic
        self.weights = weights

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None) -> CalibratedBlend:  # noqa: N803
        """Both parts come fitted; the blend only records what serving needs."""
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = self.trees.n_features_in_
        self.slope_, self.intercept_ = 1.0, 0.0
        return self

    def raw_score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        w_trees, w_logistic = self.weights
        return w_trees * self.trees.raw_score(X) + w_logistic * self.logistic.raw_score(X)

    def predict_proba_uncalibrated(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """A blend's weights and intercept are its calibration: there is no separate uncalibrated score."""
        return self.predict_proba(X)[:, 1]

    def raw_contributions(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        w_trees, w_logistic = self.weights
        return w_trees * self.trees.raw_contributions(X) + w_logistic * self.logistic.raw_contributions(X)


def model_family(model: Any) -> str:
    """The served model's family, as reports and the service name it."""
    if isinstance(model, CalibratedBlend):
        return "blend"
    if isinstance(model, CalibratedBooster):
        return "lightgbm"
    return "logistic"


def platt_scale(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit p = sigmoid(a * raw + b) by unpenalised logistic regression."""
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def build_pipeline(encoder: LeadEncoder, model: CalibratedBooster) -> Pipeline:
    """Join the fitted parts into the one object that is pickled, logged to MLflow, and served."""
    return Pipeline([("encode", encoder), ("model", model)])
