"""What every served model family shares: a raw log-odds score, and a monotone linear map that calibrates it.

Calibration is ``slope * raw + intercept`` on the log-odds (Platt scaling, temperature scaling with
``intercept = 0``, or none with ``(1, 0)``), so exact per-field contributions to the raw score, times the
slope, still add up to the calibrated log-odds.
"""

from __future__ import annotations

import math

import numpy as np


class LogOddsModel:
    """Mixin: subclasses provide ``raw_score``, ``raw_contributions`` (base value last), ``slope_``, ``intercept_``."""

    slope_: float
    intercept_: float

    def raw_score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        raise NotImplementedError

    def raw_contributions(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        raise NotImplementedError

    def calibrate(self, slope: float, intercept: float) -> LogOddsModel:
        """Set the calibration map (chosen on out-of-fold predictions by ``training.calibration``)."""
        self.slope_, self.intercept_ = float(slope), float(intercept)
        return self

    def calibrated_probability(self, raw: np.ndarray) -> np.ndarray:
        """The calibration map applied to raw scores, however they were computed."""
        return 1.0 / (1.0 + np.exp(-(self.slope_ * raw + self.intercept_)))

    def calibrated_probability_one(self, raw: float) -> float:
        """The same formula for one score, without array overhead (the single-lead serving path)."""
        return 1.0 / (1.0 + math.exp(-(self.slope_ * raw + self.intercept_)))

    def calibrated_contributions(self, raw_contributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw contributions (base value last) → contributions to the calibrated log-odds, and the base value."""
        return self.slope_ * raw_contributions[:, :-1], self.slope_ * raw_contributions[:, -1] + self.intercept_

    def decision_function(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Calibrated log-odds."""
        return self.slope_ * self.raw_score(X) + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        p = self.calibrated_probability(self.raw_score(X))
        return np.column_stack([1.0 - p, p])

    def predict_proba_uncalibrated(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return 1.0 / (1.0 + np.exp(-self.raw_score(X)))

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """Exact per-field contributions to the calibrated log-odds, and the base value per row."""
        return self.calibrated_contributions(self.raw_contributions(X))
