"""Cross-validation folds over the rows a model may learn from: time-ordered when the table has a time column.

With a time column the folds are expanding windows: the rows are cut, in creation order, into k + 1 blocks;
fold i learns from blocks 0..i and predicts block i + 1, so no fold learns from leads created after the ones
it predicts (block 0 is never predicted). Without one they are stratified k-fold, repeated with new shuffles
when positives are few, so choices made on them rest on more than one cut of a small table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

FEW_POSITIVES = 1_000
REPEATS_WHEN_FEW = 3


@dataclass(frozen=True)
class Fold:
    """Positions (into the rows given to ``cv_folds``) to learn from and to predict; ``repeat`` numbers shuffles."""

    train: np.ndarray
    test: np.ndarray
    repeat: int = 0


@dataclass(frozen=True)
class Folds:
    kind: str  # "time" or "stratified"
    folds: list[Fold]
    repeats: int

    @property
    def predicted(self) -> np.ndarray:
        """Positions that get at least one out-of-fold prediction, in order."""
        return np.unique(np.concatenate([fold.test for fold in self.folds]))

    def describe(self) -> str:
        k = len(self.folds) // self.repeats
        if self.kind == "time":
            return f"{k} time-ordered expanding-window folds"
        repeated = f", repeated {self.repeats} times" if self.repeats > 1 else ""
        return f"{k}-fold stratified cross-validation{repeated}"


def repeats_for(positives: int, time_ordered: bool) -> int:
    """Small tables get repeated shuffles (time-ordered folds have only one order)."""
    return 1 if time_ordered or positives >= FEW_POSITIVES else REPEATS_WHEN_FEW


def cv_folds(y: np.ndarray, time: pd.Series | None, k: int, seed: int = 0, repeats: int | None = None) -> Folds:
    """k folds over these rows; ``repeats`` defaults to ``repeats_for`` the number of positives."""
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    y = np.asarray(y).astype(int)
    if time is not None:
        return Folds("time", _expanding_windows(time, k), 1)
    repeats = repeats or repeats_for(int(y.sum()), time_ordered=False)
    folds = [
        Fold(np.sort(train), np.sort(test), repeat)
        for repeat in range(repeats)
        for train, test in StratifiedKFold(k, shuffle=True, random_state=seed + 1000 * repeat).split(y, y)
    ]
    return Folds("stratified", folds, repeats)


def _expanding_windows(time: pd.Series, k: int) -> list[Fold]:
    order = np.argsort(time.to_numpy(), kind="stable")
    blocks = np.array_split(order, k + 1)
    return [Fold(np.sort(np.concatenate(blocks[: i + 1])), np.sort(blocks[i + 1])) for i in range(k)]
