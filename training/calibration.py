"""Choosing the calibration map on out-of-fold predictions: none, temperature or Platt, whichever predicts best.

Every map is linear in the log-odds (``slope * z + intercept``), so the model's exact reasons survive it.
A map is judged by cross-fitting: fitted on the other folds' out-of-fold scores, scored by log loss on the
fold left out, so a two-parameter map cannot win by fitting the noise it is judged on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression

METHODS = ("none", "temperature", "platt")
_CLIP = 1e-15


@dataclass(frozen=True)
class CalibrationChoice:
    method: str
    slope: float
    intercept: float
    cross_fitted_log_loss: dict[str, float]


def log_loss(y: np.ndarray, z: np.ndarray) -> float:
    """Mean log loss of log-odds z, computed stably."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_map(method: str, z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of one calibration method fitted to log-odds z and outcomes y."""
    if method == "none":
        return 1.0, 0.0
    if method == "temperature":
        found = minimize_scalar(lambda s: log_loss(y, s * z), bounds=(0.05, 20.0), method="bounded")
        return float(found.x), 0.0
    if method == "platt":
        fit = LogisticRegression(C=1e6, max_iter=1000).fit(z.reshape(-1, 1), y)
        return float(fit.coef_[0, 0]), float(fit.intercept_[0])
    raise ValueError(f"unknown calibration method {method!r}; one of {', '.join(METHODS)}")


def cross_fitted_log_odds(method: str, z: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's log-odds mapped by the method fitted on the other groups."""
    out = np.empty_like(z)
    for group in np.unique(groups):
        held = groups == group
        slope, intercept = fit_map(method, z[~held], y[~held])
        out[held] = slope * z[held] + intercept
    return out


def choose_calibration(z: np.ndarray, y: np.ndarray, groups: np.ndarray) -> CalibrationChoice:
    """The method with the lowest cross-fitted log loss ("none" unless another is strictly better), refitted
    on all out-of-fold scores."""
    losses = {method: log_loss(y, cross_fitted_log_odds(method, z, y, groups)) for method in METHODS}
    best = min(METHODS, key=lambda method: (losses[method], METHODS.index(method)))
    slope, intercept = fit_map(best, z, y)
    return CalibrationChoice(best, slope, intercept, losses)
