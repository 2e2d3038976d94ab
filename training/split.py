"""Holdout, development and (with a single split) calibration parts: time-aware when the table has a time column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HOLDOUT_SHARE = 0.20
CALIBRATION_SHARE = 0.15
EARLY_STOPPING_SHARE = 0.10


@dataclass(frozen=True)
class Split:
    """Row positions of each part; fit, early-stopping, calibration and holdout never overlap."""

    kind: str  # "time" or "stratified"
    fit: np.ndarray
    early_stopping: np.ndarray
    calibration: np.ndarray
    holdout: np.ndarray
    holdout_from: str | None = None

    @property
    def cross_validated(self) -> bool:
        """All non-holdout rows form one development set that cross-validation divides."""
        return len(self.early_stopping) == 0 and len(self.calibration) == 0

    @property
    def development(self) -> np.ndarray:
        return np.sort(np.concatenate([self.fit, self.early_stopping, self.calibration]))

    def describe(self) -> str:
        if self.cross_validated:
            sizes = f"{len(self.fit):,} development (cross-validated) / {len(self.holdout):,} holdout"
            if self.kind == "time":
                return f"time-aware: holdout = leads created from {self.holdout_from} on ({sizes})"
            return f"stratified random ({sizes}); the spec has no time column"
        sizes = (
            f"{len(self.fit):,} fit / {len(self.early_stopping):,} early-stopping / "
            f"{len(self.calibration):,} calibration / {len(self.holdout):,} holdout"
        )
        if self.kind == "time":
            return f"time-aware: holdout = leads created from {self.holdout_from} on ({sizes})"
        return f"stratified random ({sizes}); the spec has no time column"


def split_leads(converted: np.ndarray, time: pd.Series | None, seed: int = 0) -> Split:
    """Time column: the most recent 20% is the holdout and the next most recent 15% calibrates.

    Without one: stratified random parts. Early-stopping rows are a random slice of the fitting rows.
    """
    rows = np.arange(len(converted))
    if time is not None:
        order = rows[np.argsort(time.to_numpy(), kind="stable")]
        holdout_start = len(rows) - round(len(rows) * HOLDOUT_SHARE)
        cal_start = holdout_start - round(len(rows) * CALIBRATION_SHARE)
        training, calibration, holdout = order[:cal_start], order[cal_start:holdout_start], order[holdout_start:]
        kind, holdout_from = "time", str(time.iloc[holdout].min())
    else:
        training, holdout = _stratified(rows, converted, HOLDOUT_SHARE, seed)
        cal_share = CALIBRATION_SHARE / (1 - HOLDOUT_SHARE)
        training, calibration = _stratified(training, converted[training], cal_share, seed + 1)
        kind, holdout_from = "stratified", None
    fit, early = _stratified(training, converted[training], EARLY_STOPPING_SHARE, seed + 2)
    return Split(kind, np.sort(fit), np.sort(early), np.sort(calibration), np.sort(holdout), holdout_from)


def split_holdout(converted: np.ndarray, time: pd.Series | None, seed: int = 0) -> Split:
    """Development rows (all of them cross-validated) and a holdout: the most recent 20%, or stratified."""
    rows = np.arange(len(converted))
    if time is not None:
        order = rows[np.argsort(time.to_numpy(), kind="stable")]
        holdout_start = len(rows) - round(len(rows) * HOLDOUT_SHARE)
        development, holdout = order[:holdout_start], order[holdout_start:]
        kind, holdout_from = "time", str(time.iloc[holdout].min())
    else:
        development, holdout = _stratified(rows, converted, HOLDOUT_SHARE, seed)
        kind, holdout_from = "stratified", None
    empty = np.array([], dtype=int)
    return Split(kind, np.sort(development), empty, empty, np.sort(holdout), holdout_from)


def _stratified(rows: np.ndarray, labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    keep, take = train_test_split(rows, test_size=share, stratify=labels, random_state=seed)
    return np.asarray(keep), np.asarray(take)
