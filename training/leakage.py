"""The leakage screen: a field that alone predicts the outcome too well was probably recorded after it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from training.errors import LeadscoreError
from training.model import boolean_values, category_text, numeric_values

DEFAULT_THRESHOLD = 0.90
_BINS = 20
_SMOOTHING = 20.0


def single_field_auc(train: pd.Series, y_train: np.ndarray, test: pd.Series, y_test: np.ndarray, kind: str) -> float:
    """Holdout ROC AUC of a one-field model: the training conversion rate of the field's bin or level."""
    train_keys, test_keys = _bin_keys(train, test, kind)
    prior = y_train.mean()
    stats = pd.DataFrame({"key": train_keys, "y": y_train}).groupby("key", dropna=False)["y"].agg(["sum", "count"])
    rate = (stats["sum"] + _SMOOTHING * prior) / (stats["count"] + _SMOOTHING)
    scores = pd.Series(test_keys).map(rate).fillna(prior).to_numpy(dtype=float)
    if len(np.unique(y_test)) < 2:
        return 0.5
    return float(roc_auc_score(y_test, scores))


def _bin_keys(train: pd.Series, test: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Missing is a level of its own: a field that is only filled in after a sale leaks through missingness."""
    if kind == "numeric":
        train_v, test_v = numeric_values(train), numeric_values(test)
        finite = train_v[~np.isnan(train_v)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, _BINS + 1)[1:-1])) if len(finite) else np.array([])
        return _digitize(train_v, edges), _digitize(test_v, edges)
    if kind == "boolean":
        return _missing_key(boolean_values(train)), _missing_key(boolean_values(test))
    return (
        category_text(train).fillna("<missing>").to_numpy(dtype=object),
        category_text(test).fillna("<missing>").to_numpy(dtype=object),
    )


def _digitize(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), -1, np.searchsorted(edges, values, side="right"))


def _missing_key(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), -1, values)


def screen_for_leakage(
    train: pd.DataFrame,
    y_train: np.ndarray,
    holdout: pd.DataFrame,
    y_holdout: np.ndarray,
    kinds: dict[str, str],
    threshold: float = DEFAULT_THRESHOLD,
    allowed: list[str] | tuple[str, ...] = (),
) -> dict[str, float]:
    """Single-field holdout AUC of every feature; stop when any not explicitly allowed reaches the threshold."""
    aucs = {
        name: single_field_auc(train[name], y_train, holdout[name], y_holdout, kind) for name, kind in kinds.items()
    }
    leaky = {name: auc for name, auc in aucs.items() if auc >= threshold and name not in allowed}
    if leaky:
        listed = ", ".join(f"{name} (ROC AUC {auc:.3f})" for name, auc in sorted(leaky.items(), key=lambda kv: -kv[1]))
        raise LeadscoreError(
            f"leakage screen: {listed} alone predict(s) the outcome too well (threshold {threshold:.2f}); "
            f"if only known after the outcome, add to the spec's exclude list; if known before, list under allow_leaky"
        )
    return dict(sorted(aucs.items(), key=lambda kv: -kv[1]))
