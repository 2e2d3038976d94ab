"""Why the model scores as it does: exact per-lead contributions and global importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

IMPORTANCE_ROWS = 10_000
CONTRIBUTION_ROWS = 2_000  # exact contributions cost ~0.4 ms a lead; 2,000 give a stable mean


def lead_contributions(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-field contributions to each lead's calibrated log-odds, and the base value; they add up exactly."""
    return pipeline["model"].contributions(pipeline["encode"].transform(frame))


def _sample(frame: pd.DataFrame, y: np.ndarray, rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    if len(frame) <= rows:
        return frame, y
    take = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
    return frame.iloc[take], y[take]


def global_importance(
    pipeline: Pipeline, holdout: pd.DataFrame, y: np.ndarray, seed: int = 0, rows: int = IMPORTANCE_ROWS
) -> list[dict[str, float | str]]:
    """Permutation importance (holdout ROC AUC lost when a field is shuffled) and mean |contribution|.

    Each field is exactly one column of the encoded matrix, so shuffling encoded columns is shuffling
    fields; it spares re-encoding the holdout for every field and repeat.
    """
    frame, labels = _sample(holdout, y, rows, seed)
    fields = list(pipeline["encode"].feature_names_in_)
    encoded = pipeline["encode"].transform(frame)
    permuted = permutation_importance(
        pipeline["model"], encoded, labels, scoring="roc_auc", n_repeats=3, random_state=seed, n_jobs=1
    )
    contributions, _ = lead_contributions(pipeline, frame.iloc[:CONTRIBUTION_ROWS])
    mean_abs = np.abs(contributions).mean(axis=0)
    table = [
        {
            "field": name,
            "permutation_auc_drop": float(permuted.importances_mean[i]),
            "permutation_std": float(permuted.importances_std[i]),
            "mean_abs_contribution": float(mean_abs[i]),
        }
        for i, name in enumerate(fields)
    ]
    return sorted(table, key=lambda row: -row["permutation_auc_drop"])
