"""Model choice by cross-validation: candidates judged on out-of-fold log loss, then refit on every development row.

Candidates:
- LightGBM over a small fixed grid of regularisation settings, each with its number of trees chosen on the
  folds' mean log loss (``lightgbm.cv``). A fixed grid, not a randomised or time-budgeted search: the result
  is the same on any machine and at any load, and a few distinct settings leave little room to fit the
  noise of small folds. The grid shrinks as tables grow (``search_budget``), where defaults already do well.
- The additive logistic model (``training.additive``), its L2 strength chosen on the same folds.
- A blend of the two in log-odds space, its weights fitted on their out-of-fold log-odds.
Each single family gets the calibration map ``training.calibration`` chooses; the blend's weights and intercept
are its calibration. Every figure that decides is cross-fitted, so no candidate is judged on what it was fitted to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.linear_model import LogisticRegression

from training.additive import BinnedLogistic
from training.calibration import CalibrationChoice, choose_calibration, cross_fitted_log_odds, log_loss
from training.evaluate import classification_metrics
from training.folds import Folds
from training.model import DEFAULT_BOOSTER_PARAMS, CalibratedBlend, CalibratedBooster

# Distinct regularisation regimes, most generally useful first (the budget keeps a prefix).
LIGHTGBM_GRID: list[dict[str, Any]] = [
    {},  # DEFAULT_BOOSTER_PARAMS: shallow trees, moderate regularisation
    {"num_leaves": 3, "min_child_samples": 80, "reg_lambda": 5.0, "cat_smooth": 30.0, "learning_rate": 0.04},
    {"num_leaves": 15, "min_child_samples": 20, "colsample_bytree": 0.7, "reg_alpha": 0.5},
    {"num_leaves": 31, "min_child_samples": 50, "reg_lambda": 10.0, "subsample": 0.7, "colsample_bytree": 0.4},
]
LOGISTIC_C_GRID = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
# numeric fields as a linear trend only (1), or also in up to 12 quantile bins (one level per value when few)
LOGISTIC_BINS = (1, 12)
EARLY_STOPPING_ROUNDS = 100
CV_THREADS = 1
MAX_TREES = 3000
FOLD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    return None


@dataclass(frozen=True)
class SearchBudget:
    lightgbm_settings: int
    logistic_c: list[float]

    def describe(self) -> str:
        return f"{self.lightgbm_settings} LightGBM setting(s), {len(self.logistic_c)} logistic strengths"


def search_budget(rows: int) -> SearchBudget:
    """Fewer settings as tables grow: large tables leave less to gain from regularisation and cost more per fit."""
    if rows <= 50_000:
        return SearchBudget(len(LIGHTGBM_GRID), LOGISTIC_C_GRID)
    if rows <= 250_000:
        return SearchBudget(2, LOGISTIC_C_GRID[2:])
    return SearchBudget(1, LOGISTIC_C_GRID[3:5])


@dataclass
class OutOfFold:
    """One candidate's out-of-fold raw log-odds: per fold, and averaged per row over repeats."""

    name: str
    settings: dict[str, Any]
    per_fold: list[np.ndarray]  # raw log-odds of fold.test, fold by fold
    raw: np.ndarray  # per predicted row (``Folds.predicted`` order), mean over repeats
    raw_log_loss: float  # mean over folds, uncalibrated


@dataclass
class Candidate:
    """A family as it would be served: its out-of-fold scores, calibration, and cross-fitted figures."""

    name: str
    oof: OutOfFold
    slope: float
    intercept: float
    calibration: str
    cross_fitted_log_loss: float
    cross_fitted_auc: float
    fold_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration_losses: dict[str, float] = field(default_factory=dict)
    weights: tuple[float, float] | None = None
    cross_fitted: np.ndarray | None = None  # calibrated out-of-fold log-odds, each map fitted on the other folds

    def summary(self) -> dict[str, Any]:
        return {
            "log_loss": self.cross_fitted_log_loss,
            "roc_auc": self.cross_fitted_auc,
            "calibration": self.calibration,
            "settings": self.oof.settings,
            "folds": self.fold_metrics,
            **({"weights": list(self.weights)} if self.weights else {}),
        }


@dataclass
class Selection:
    chosen: Candidate
    candidates: dict[str, Candidate]
    folds: Folds
    budget: SearchBudget
    seconds: float
    y: np.ndarray  # the development outcomes the folds index

    def report(self) -> dict[str, Any]:
        """metrics.json's ``cv`` part."""
        return {
            "folds": self.folds.describe(),
            "fold_count": len(self.folds.folds),
            "repeats": self.folds.repeats,
            "search": self.budget.describe(),
            "chosen": self.chosen.name,
            "chosen_by": "out-of-fold log loss (cross-fitted calibration)",
            "metrics": self.chosen.fold_metrics,
            "calibration": {
                "method": self.chosen.calibration,
                "slope": self.chosen.slope,
                "intercept": self.chosen.intercept,
                "cross_fitted_log_loss": self.chosen.calibration_losses,
            },
            "candidates": {name: candidate.summary() for name, candidate in self.candidates.items()},
            "seconds": self.seconds,
        }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fold_metrics(y: np.ndarray, folds: Folds, per_fold: list[np.ndarray], slope: float, intercept: float) -> dict:
    """Mean and sd over folds of each headline metric, for the calibrated out-of-fold probabilities."""
    values: dict[str, list[float]] = {name: [] for name in FOLD_METRICS}
    for fold, raw in zip(folds.folds, per_fold, strict=True):
        figures = classification_metrics(y[fold.test], _sigmoid(slope * raw + intercept))
        for name in FOLD_METRICS:
            if figures[name] is not None:
                values[name].append(float(figures[name]))
    return {
        name: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
        for name, v in values.items()
        if v
    }


def _average_over_repeats(folds: Folds, per_fold: list[np.ndarray], n: int) -> np.ndarray:
    total, count = np.zeros(n), np.zeros(n)
    for fold, raw in zip(folds.folds, per_fold, strict=True):
        total[fold.test] += raw
        count[fold.test] += 1
    return (total / np.maximum(count, 1))[folds.predicted]


def _mean_fold_log_loss(y: np.ndarray, folds: Folds, per_fold: list[np.ndarray]) -> float:
    return float(np.mean([log_loss(y[f.test], raw) for f, raw in zip(folds.folds, per_fold, strict=True)]))


def fold_groups(folds: Folds) -> np.ndarray:
    """For each predicted row, the fold (of the first repeat) that predicted it: the cross-fitting groups."""
    groups = np.full(max(int(f.test.max()) for f in folds.folds) + 1, -1)
    for number, fold in enumerate(folds.folds):
        if fold.repeat == 0:
            groups[fold.test] = number
    return groups[folds.predicted]


# ------------------------------------------------------------------ LightGBM


def _native_params(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    params = {**DEFAULT_BOOSTER_PARAMS, **settings, "random_state": seed}
    params.pop("n_estimators")
    # one thread: fold models are small, and OpenMP threads that wait on each other on a busy machine
    # cost up to 10x (measured: 3.8 s on one thread against 45 s on two, under load)
    return {**params, "metric": "binary_logloss", "num_threads": CV_THREADS}


def lightgbm_out_of_fold(
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    folds: Folds,
    settings: dict[str, Any],
    categorical: list[int],
    seed: int,
    progress: Progress = _silent,
) -> OutOfFold:
    """All folds trained in step; the number of trees is where the folds' mean log loss is lowest."""
    data = lgb.Dataset(X, y, categorical_feature=categorical or "auto", free_raw_data=False)
    result = lgb.cv(
        _native_params(settings, seed),
        data,
        num_boost_round=MAX_TREES,
        folds=[(fold.train, fold.test) for fold in folds.folds],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False), _every_trees(progress, len(folds.folds))],
        return_cvbooster=True,
    )
    boosters = result["cvbooster"]
    trees = int(boosters.best_iteration)
    per_fold = [
        booster.predict(X[fold.test], raw_score=True, num_iteration=trees)
        for booster, fold in zip(boosters.boosters, folds.folds, strict=True)
    ]
    return OutOfFold(
        "lightgbm",
        {**settings, "n_estimators": trees},
        per_fold,
        _average_over_repeats(folds, per_fold, len(y)),
        _mean_fold_log_loss(y, folds, per_fold),
    )


def _every_trees(progress: Progress, fold_count: int, every: int = 250) -> Callable[[Any], None]:
    """A LightGBM callback that reports the folds' mean log loss every ``every`` trees."""

    def report(env: Any) -> None:
        trees = env.iteration + 1
        if trees % every == 0 and env.evaluation_result_list:
            loss = env.evaluation_result_list[0][2]
            progress(f"  {trees} trees in each of {fold_count} folds: mean log loss {loss:.4f}")

    return report


# ------------------------------------------------------------------ logistic


def logistic_out_of_fold(
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    folds: Folds,
    kinds: list[str],
    c_grid: list[float],
    bins_grid: tuple[int, ...] = LOGISTIC_BINS,
) -> OutOfFold:
    """The numeric binning and L2 strength with the lowest mean fold log loss, and its out-of-fold log-odds.

    Per fold and binning, levels are learned once and the strengths fitted weakest first, each fit starting
    from the last.
    """
    raw: dict[tuple[int, float], list[np.ndarray]] = {(b, c): [] for b in bins_grid for c in c_grid}
    for fold in folds.folds:
        for bins in bins_grid:
            model = BinnedLogistic(kinds, bins=bins)
            train_design = model.learn(X[fold.train])
            test_design = model.design(X[fold.test])
            fit = None
            for c in sorted(c_grid):
                model.C = c
                fit = model.penalised_fit(train_design, y[fold.train], fit)
                raw[(bins, c)].append(test_design @ fit.coef_[0] + fit.intercept_[0])
    losses = {key: _mean_fold_log_loss(y, folds, per_fold) for key, per_fold in raw.items()}
    bins, c = min(raw, key=lambda key: losses[key])
    per_fold = raw[(bins, c)]
    return OutOfFold(
        "logistic",
        {"C": c, "bins": bins},
        per_fold,
        _average_over_repeats(folds, per_fold, len(y)),
        losses[(bins, c)],
    )


# ------------------------------------------------------------------ candidates


def calibrated_candidate(oof: OutOfFold, y: np.ndarray, folds: Folds) -> Candidate:
    """A single family with the calibration map that predicts best out of fold."""
    y_oof, groups = y[folds.predicted], fold_groups(folds)
    choice: CalibrationChoice = choose_calibration(oof.raw, y_oof, groups)
    z = cross_fitted_log_odds(choice.method, oof.raw, y_oof, groups)
    return Candidate(
        oof.name,
        oof,
        choice.slope,
        choice.intercept,
        choice.method,
        choice.cross_fitted_log_loss[choice.method],
        _auc(y_oof, z),
        fold_metrics(y, folds, oof.per_fold, choice.slope, choice.intercept),
        choice.cross_fitted_log_loss,
        cross_fitted=z,
    )


def _stack(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
    return fit.coef_[0], float(fit.intercept_[0])


def blend_candidate(trees: OutOfFold, logistic: OutOfFold, y: np.ndarray, folds: Folds) -> Candidate | None:
    """Weights for both families' log-odds, fitted out of fold; None when either weight is not positive."""
    y_oof, groups = y[folds.predicted], fold_groups(folds)
    both = np.column_stack([trees.raw, logistic.raw])
    weights, intercept = _stack(both, y_oof)
    if (weights <= 0).any():
        return None
    z = np.empty(len(y_oof))
    for group in np.unique(groups):
        held = groups == group
        w, b = _stack(both[~held], y_oof[~held])
        z[held] = both[held] @ w + b
    per_fold = [weights[0] * t + weights[1] * lo for t, lo in zip(trees.per_fold, logistic.per_fold, strict=True)]
    oof = OutOfFold(
        "blend",
        {"lightgbm": trees.settings, "logistic": logistic.settings},
        per_fold,
        both @ weights,
        _mean_fold_log_loss(y, folds, [p + intercept for p in per_fold]),
    )
    return Candidate(
        "blend",
        oof,
        1.0,
        intercept,
        "blend weights",
        log_loss(y_oof, z),
        _auc(y_oof, z),
        fold_metrics(y, folds, per_fold, 1.0, intercept),
        weights=(float(weights[0]), float(weights[1])),
        cross_fitted=z,
    )


def _auc(y: np.ndarray, z: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, z))


def select_model(
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    folds: Folds,
    kinds: list[str],
    categorical: list[int],
    seed: int = 0,
    families: tuple[str, ...] = ("lightgbm", "logistic", "blend"),
    progress: Progress = _silent,
    grid: list[dict[str, Any]] | None = None,
) -> Selection:
    """Every candidate on the same folds; the lowest cross-fitted out-of-fold log loss wins."""
    start = time.perf_counter()
    budget = search_budget(len(y))
    candidates: dict[str, Candidate] = {}
    trees = logistic = None
    if {"lightgbm", "blend"} & set(families):
        settings_to_try = (grid or LIGHTGBM_GRID)[: budget.lightgbm_settings]
        for number, settings in enumerate(settings_to_try, start=1):
            progress(f"cross-validating LightGBM setting {number}/{len(settings_to_try)}: {settings or 'default'}")
            found = lightgbm_out_of_fold(X, y, folds, settings, categorical, seed, progress)
            if trees is None or found.raw_log_loss < trees.raw_log_loss:
                trees = found
        candidates["lightgbm"] = calibrated_candidate(trees, y, folds)
    if {"logistic", "blend"} & set(families):
        progress(
            f"cross-validating the additive logistic model over {len(LOGISTIC_BINS)} binnings "
            f"x {len(budget.logistic_c)} strengths"
        )
        logistic = logistic_out_of_fold(X, y, folds, kinds, budget.logistic_c)
        candidates["logistic"] = calibrated_candidate(logistic, y, folds)
    if "blend" in families and trees is not None and logistic is not None:
        blend = blend_candidate(trees, logistic, y, folds)
        if blend is not None:
            candidates["blend"] = blend
    allowed = {name: c for name, c in candidates.items() if name in families}
    if not allowed:
        raise ValueError(f"no candidate among {families}")
    chosen = min(allowed.values(), key=lambda c: c.cross_fitted_log_loss)
    return Selection(chosen, candidates, folds, budget, time.perf_counter() - start, y)


def refit(
    selection: Selection,
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    kinds: list[str],
    categorical: list[int],
    seed: int = 0,
) -> CalibratedBooster | BinnedLogistic | CalibratedBlend:
    """The chosen candidate refitted on every development row with its chosen settings, then calibrated."""
    chosen = selection.chosen

    def trees(settings: dict[str, Any]) -> CalibratedBooster:
        return CalibratedBooster({**settings, "random_state": seed, "n_jobs": CV_THREADS}, categorical).fit(X, y)

    def logistic(settings: dict[str, Any]) -> BinnedLogistic:
        return BinnedLogistic(kinds, C=settings["C"], bins=settings.get("bins", 12)).fit(X, y)

    if chosen.name == "lightgbm":
        model: Any = trees(chosen.oof.settings)
    elif chosen.name == "logistic":
        model = logistic(chosen.oof.settings)
    else:
        settings = chosen.oof.settings
        model = CalibratedBlend(trees(settings["lightgbm"]), logistic(settings["logistic"]), chosen.weights).fit()
    return model.calibrate(chosen.slope, chosen.intercept)
