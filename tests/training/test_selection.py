"""Cross-validation: folds that respect time, calibration only where it helps, the lowest log loss wins."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE_SPEC
from training.additive import BinnedLogistic
from training.calibration import choose_calibration, log_loss
from training.data import prepare_leads
from training.folds import FEW_POSITIVES, cv_folds
from training.model import LeadEncoder
from training.selection import select_model
from training.spec import read_spec
from training.synthetic import generate_leads
from training.train import TrainOptions, fit_and_evaluate


def test_time_folds_never_learn_from_later_leads() -> None:
    rng = np.random.default_rng(0)
    time = pd.Series(pd.to_datetime("2025-01-01") + pd.to_timedelta(rng.permutation(1_000), unit="h"))
    y = rng.random(1_000) < 0.2
    folds = cv_folds(y, time, 4)
    assert folds.kind == "time" and len(folds.folds) == 4
    for fold in folds.folds:
        assert time.iloc[fold.train].max() < time.iloc[fold.test].min()
    tests = np.concatenate([fold.test for fold in folds.folds])
    assert len(np.unique(tests)) == len(tests) == 800  # the first block is only learned from


def test_stratified_folds_partition_the_rows_and_repeat_when_positives_are_few() -> None:
    y = np.r_[np.ones(200), np.zeros(1_800)]
    folds = cv_folds(y, None, 5)
    assert folds.repeats > 1 and FEW_POSITIVES > 200
    first = [fold for fold in folds.folds if fold.repeat == 0]
    assert sorted(np.concatenate([f.test for f in first]).tolist()) == list(range(2_000))
    assert all(abs(y[f.test].mean() - 0.1) < 0.01 for f in first)
    many = cv_folds(np.r_[np.ones(1_000), np.zeros(1_000)], None, 5)
    assert many.repeats == 1


def test_calibration_corrects_overconfidence_and_leaves_honest_scores_alone() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(-2.0, 1.0, 20_000)
    y = (rng.random(truth.size) < 1 / (1 + np.exp(-truth))).astype(int)
    groups = np.arange(truth.size) % 5
    overconfident = choose_calibration(3.0 * truth, y, groups)
    assert overconfident.method != "none" and overconfident.slope == pytest.approx(1 / 3, rel=0.1)
    assert overconfident.cross_fitted_log_loss[overconfident.method] < overconfident.cross_fitted_log_loss["none"]
    honest = choose_calibration(truth, y, groups)
    assert honest.cross_fitted_log_loss[honest.method] <= honest.cross_fitted_log_loss["none"]
    assert abs(honest.slope - 1.0) < 0.05 and abs(honest.intercept) < 0.05


def test_additive_model_learns_step_functions_and_is_exact() -> None:
    rng = np.random.default_rng(3)
    n = 8_000
    x = rng.uniform(0, 100, n)
    code = rng.integers(0, 4, n).astype(float)
    x[rng.random(n) < 0.1] = np.nan
    logit = -2 + 1.5 * (x > 50) + np.array([0.0, 1.0, -1.0, 0.0])[code.astype(int)] + 0.8 * np.isnan(x)
    y = (rng.random(n) < 1 / (1 + np.exp(-np.nan_to_num(logit, nan=-1.2)))).astype(int)
    matrix = np.column_stack([x, code])
    model = BinnedLogistic(["numeric", "categorical"], C=1.0).fit(matrix, y)
    low, high = model.raw_score(np.array([[20.0, 0.0]])), model.raw_score(np.array([[80.0, 0.0]]))
    assert high - low == pytest.approx(1.5, abs=0.35)
    assert model.tables_[1][1] > model.tables_[1][0] > model.tables_[1][2]
    rows = matrix[:500]
    contributions = model.raw_contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), model.raw_score(rows), atol=1e-12)
    rows = np.vstack([rows, [[20.0, 9.0], [20.0, -1.0], [-50.0, 2.0], [500.0, np.nan]]])
    assert [model.raw_one(row.tolist()) for row in rows] == model.raw_score(rows).tolist()
    unseen = model.raw_score(np.array([[20.0, 9.0]]))[0] - model.raw_score(np.array([[20.0, np.nan]]))[0]
    assert unseen == 0.0


def test_small_matrices_are_scored_at_once_with_the_same_bits_as_field_by_field() -> None:
    rng = np.random.default_rng(5)
    n = 3_000
    matrix = np.column_stack(
        [
            rng.uniform(0, 100, n),  # quantile bins and a trend
            rng.integers(0, 5, n).astype(float),  # few distinct numbers: one level each
            rng.integers(0, 4, n).astype(float),  # a category
            rng.integers(0, 2, n).astype(float),  # a boolean
            np.full(n, 7.0),  # a constant: no cuts, no trend
        ]
    )
    matrix[rng.random(matrix.shape) < 0.1] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(2 - matrix[:, 0] / 50 - np.nan_to_num(matrix[:, 2])))).astype(int)
    model = BinnedLogistic(["numeric", "numeric", "categorical", "boolean", "numeric"]).fit(matrix, y)
    rows = matrix[:200].copy()
    rows[0] = [-1e9, -3.0, -1.0, 2.0, 1e9]  # beyond every cut, codes outside the tables
    rows[1] = [*model.cuts_[0][:2], 2.5, 0.5, np.nan]  # exactly on cuts, fractional codes
    assert np.array_equal(model.levels(rows), model.levels_by_field(rows))
    assert np.array_equal(model._field_parts(rows), model.field_parts_by_field(rows))
    assert model.raw_score(rows).tolist() == [model.raw_one(row.tolist()) for row in rows]
    assert np.array_equal(model.raw_score(matrix[:200]), model.raw_score(matrix)[:200])  # at once vs by field
    loaded = pickle.loads(pickle.dumps(model))  # as a bundle stores it: the lookup arrays are rebuilt, not kept
    assert "lookup_" not in vars(loaded) and "lookup_" in vars(model)
    assert np.array_equal(loaded.raw_score(rows), model.raw_score(rows))


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray, list[str], list[int], pd.Series]:
    table = prepare_leads(generate_leads(n=5_000, seed=11), read_spec(SAMPLE_SPEC))
    encoder = LeadEncoder(table.kinds).fit(table.features)
    kinds = list(table.kinds.values())
    return encoder.transform(table.features), table.converted.astype(int), kinds, encoder.categorical_indices_, table


def test_the_lowest_out_of_fold_log_loss_wins(sample) -> None:
    matrix, y, kinds, categorical, _ = sample
    folds = cv_folds(y, None, 3, repeats=1)
    selection = select_model(matrix, y, folds, kinds, categorical)
    assert set(selection.candidates) >= {"lightgbm", "logistic"}
    best = min(c.cross_fitted_log_loss for c in selection.candidates.values())
    assert selection.chosen.cross_fitted_log_loss == best
    report = selection.report()
    assert report["chosen"] == selection.chosen.name
    assert {"roc_auc", "log_loss", "ece"} <= set(report["metrics"])
    assert all(figure["sd"] > 0 for figure in report["metrics"].values())
    # the decision's figure is a proper out-of-fold log loss: a constant base rate is clearly worse
    assert best < log_loss(y, np.full(len(y), np.log(y.mean() / (1 - y.mean())))) - 0.01


def test_cross_validated_figures_reach_metrics_and_summary(sample) -> None:
    *_, table = sample
    fitted = fit_and_evaluate(table, TrainOptions(folds=3, families=("logistic",)))
    cv = fitted.bundle.metrics["cv"]
    assert cv["fold_count"] >= 3 and cv["chosen"] == "logistic"
    assert cv["metrics"]["roc_auc"]["mean"] > 0.75
    calibration = fitted.bundle.metrics["calibration"]
    assert calibration["method"] in {"none", "temperature", "platt"}
    assert {"out_of_fold_ece_before", "out_of_fold_ece_after"} <= set(calibration)
    assert "development (cross-validated)" in fitted.bundle.split
    assert fitted.paired is not None and len(fitted.paired.tests) == cv["fold_count"]


def test_one_fold_keeps_the_single_split(sample) -> None:
    *_, table = sample
    fitted = fit_and_evaluate(table, TrainOptions(folds=1))
    assert "early-stopping" in fitted.bundle.split and "cv" not in fitted.bundle.metrics
    assert fitted.bundle.metrics["calibration"]["method"] == "platt"
    assert fitted.paired is None
