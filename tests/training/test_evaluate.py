"""Holdout evaluation: metrics match their definitions, deciles survive ties, charts are real PNGs."""

import json
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from training.evaluate import (
    calibration_curve_points,
    classification_metrics,
    evaluate_scores,
    expected_calibration_error,
    lift_by_decile,
    plot_calibration,
    plot_gain,
    plot_importance,
    plot_roc,
    precision_recall_at,
    write_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from the very probabilities that are scored: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return rng.binomial(1, p), p


def _rare_leads(n: int = 2_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """About 10% converters with a score that carries real but imperfect signal."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(rng.normal(-2.6, 1.2, n))))
    return rng.binomial(1, p), p


def _assert_plain_json(value: object) -> None:
    """Reports go to JSON as they are: no numpy scalars, no NaN."""
    json.dumps(value, allow_nan=False)
    if isinstance(value, dict):
        for item in value.values():
            _assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain_json(item)
    else:
        assert value is None or type(value) in (int, float, str, bool), type(value)


def _assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 0  # something was drawn, not a blank canvas


# ---------------------------------------------------------------- calibration


def test_ece_is_near_zero_for_calibrated_scores() -> None:
    y, p = _calibrated(n=50_000, seed=0)
    assert expected_calibration_error(y, p) < 0.02


def test_ece_is_large_for_overconfident_scores() -> None:
    y, p = _calibrated(n=50_000, seed=0)
    assert expected_calibration_error(y, p**0.3) > 0.1


def test_ece_matches_hand_computation() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.12, 0.55, 0.58, 0.95])
    # bins: [0, .1) -> {.05}; [.1, .2) -> {.15, .12}; [.5, .6) -> {.55, .58}; [.9, 1] -> {.95}
    by_hand = (1 * abs(0 - 0.05) + 2 * abs(0.5 - 0.135) + 2 * abs(1 - 0.565) + 1 * abs(0 - 0.95)) / 6
    assert expected_calibration_error(y, p) == pytest.approx(by_hand)
    assert expected_calibration_error(y, p) == pytest.approx(2.6 / 6)


def test_ece_puts_probability_one_in_the_last_bin() -> None:
    assert expected_calibration_error(np.array([1, 1]), np.array([1.0, 0.95]), bins=10) == pytest.approx(0.025)


def test_calibration_points_cover_every_lead_and_rise_with_the_score() -> None:
    y, p = _rare_leads()
    points = calibration_curve_points(y, p, bins=10)
    assert len(points) == 10
    assert sum(pt["count"] for pt in points) == y.size
    assert all(pt["count"] > 0 for pt in points)
    predicted = [pt["mean_predicted"] for pt in points]
    assert predicted == sorted(predicted)
    assert [pt["bin"] for pt in points] == list(range(1, 11))
    _assert_plain_json(points)


def test_calibration_points_drop_empty_bins_when_scores_tie() -> None:
    y = np.array([0, 1, 0, 0, 1, 0, 0, 1])
    p = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.6])
    points = calibration_curve_points(y, p, bins=10)
    assert [(pt["mean_predicted"], pt["observed_rate"], pt["count"]) for pt in points] == [
        (pytest.approx(0.1), pytest.approx(2 / 6), 6),
        (pytest.approx(0.6), pytest.approx(0.5), 2),
    ]


def test_calibration_points_refuse_an_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="strategy"):
        calibration_curve_points(np.array([0, 1]), np.array([0.2, 0.8]), strategy="kmeans")


# ---------------------------------------------------------------- summary metrics


def test_classification_metrics_agree_with_sklearn() -> None:
    y, p = _rare_leads()
    metrics = classification_metrics(y, p)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p))
    assert metrics["log_loss"] == pytest.approx(log_loss(y, p))
    assert metrics["ece"] == pytest.approx(expected_calibration_error(y, p))
    assert metrics["base_rate"] == pytest.approx(y.mean())
    assert (metrics["n"], metrics["positives"]) == (y.size, int(y.sum()))
    assert 0.6 < metrics["roc_auc"] < 0.95  # the planted signal is real but imperfect
    _assert_plain_json(metrics)


def test_one_class_outcomes_give_no_auc_instead_of_an_error() -> None:
    metrics = classification_metrics(np.zeros(20, dtype=int), np.linspace(0, 0.5, 20))
    assert metrics["roc_auc"] is None and metrics["pr_auc"] is None
    assert metrics["positives"] == 0
    _assert_plain_json(metrics)


def test_log_loss_stays_finite_for_a_certain_miss() -> None:
    metrics = classification_metrics(np.array([1, 0]), np.array([0.0, 0.0]))
    assert metrics["log_loss"] == pytest.approx(-np.log(1e-15) / 2)


def test_evaluate_scores_compares_the_model_with_its_baselines() -> None:
    y, p = _rare_leads()
    constant = np.full(y.size, 0.11)
    report = evaluate_scores(y, {"model": p, "base_rate": constant})
    assert list(report) == ["model", "base_rate"]
    assert report["base_rate"]["roc_auc"] == pytest.approx(0.5)
    assert report["model"]["roc_auc"] > report["base_rate"]["roc_auc"]
    assert report["model"]["brier"] < report["base_rate"]["brier"]
    _assert_plain_json(report)


def test_evaluate_scores_names_the_bad_score() -> None:
    with pytest.raises(ValueError, match="y and logistic_baseline differ in length"):
        evaluate_scores(np.array([0, 1, 0]), {"model": np.array([0.1, 0.9, 0.2]), "logistic_baseline": np.ones(2)})


# ---------------------------------------------------------------- deciles and grades


def test_deciles_split_every_lead_into_ten_groups() -> None:
    y, p = _rare_leads(n=1_003)
    deciles = lift_by_decile(y, p)
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["leads"] for d in deciles) == y.size
    assert {d["leads"] for d in deciles} <= {100, 101}
    assert sum(d["converted"] for d in deciles) == y.sum()
    assert deciles[-1]["cumulative_gain"] == pytest.approx(1.0)
    assert deciles[-1]["cumulative_leads_share"] == pytest.approx(1.0)
    assert deciles[-1]["cumulative_lift"] == pytest.approx(1.0)
    weighted = sum(d["leads"] * d["lift"] for d in deciles) / y.size
    assert weighted == pytest.approx(1.0)
    assert deciles[0]["lift"] > 1 > deciles[-1]["lift"]
    _assert_plain_json(deciles)


@pytest.mark.parametrize("base_rate", [0.05, 0.15])
def test_perfect_ranking_puts_converters_in_the_top_decile(base_rate: float) -> None:
    n = 1_000
    y = np.zeros(n, dtype=int)
    y[: int(n * base_rate)] = 1
    rng = np.random.default_rng(3)
    order = rng.permutation(n)
    y, p = y[order], (0.5 * y + rng.uniform(0, 0.4, n))[order]  # every converter outscores every non-converter
    top = lift_by_decile(y, p)[0]
    assert top["cumulative_gain"] == pytest.approx(min(1.0, 0.1 / base_rate))
    assert top["rate"] == pytest.approx(min(1.0, base_rate / 0.1))
    assert top["lift"] == pytest.approx(top["rate"] / base_rate)


def test_constant_scores_still_give_ten_full_deciles() -> None:
    y = np.array([1] * 30 + [0] * 170)  # converters first: row order must not fake a lift
    deciles = lift_by_decile(y, np.full(y.size, 0.15))
    assert [d["leads"] for d in deciles] == [20] * 10
    assert deciles[0]["converted"] < 20


def test_deciles_need_at_least_ten_leads() -> None:
    with pytest.raises(ValueError, match="at least 10 leads"):
        lift_by_decile(np.array([0, 1, 0]), np.array([0.1, 0.9, 0.2]))


def test_no_converters_give_no_lift_rather_than_nan() -> None:
    deciles = lift_by_decile(np.zeros(20, dtype=int), np.linspace(0, 1, 20))
    assert all(d["lift"] is None and d["cumulative_gain"] is None for d in deciles)
    _assert_plain_json(deciles)


def test_precision_and_recall_at_grade_cuts_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.05, 0.01])
    report = precision_recall_at(y, p, {"A+": 0.95, "A": 0.6, "B": 0.4, "C": 0.15})
    assert report["A+"] == {"threshold": 0.95, "share_of_leads": 0.0, "precision": None, "recall": 0.0}
    assert report["A"] == pytest.approx({"threshold": 0.6, "share_of_leads": 0.2, "precision": 1.0, "recall": 0.5})
    # p == threshold counts as reaching the grade
    assert report["B"] == pytest.approx({"threshold": 0.4, "share_of_leads": 0.4, "precision": 0.75, "recall": 0.75})
    assert report["C"] == pytest.approx({"threshold": 0.15, "share_of_leads": 0.6, "precision": 0.5, "recall": 0.75})
    assert list(report) == ["A+", "A", "B", "C"]
    _assert_plain_json(report)


def test_grade_threshold_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="grade 'A'"):
        precision_recall_at(np.array([0, 1]), np.array([0.2, 0.8]), {"A": 1.5})


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        (np.array([0, 1, 0]), np.array([0.1, 0.2]), "differ in length"),
        (np.array([], dtype=int), np.array([]), "empty"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "NaN or infinite"),
        (np.array([0, 1]), np.array([0.1, np.inf]), "NaN or infinite"),
        (np.array([0, 1]), np.array([-0.1, 0.5]), r"\[0, 1\]"),
        (np.array([0, 1]), np.array([0.5, 1.2]), r"\[0, 1\]"),
        (np.array([0, 2]), np.array([0.5, 0.5]), "only 0"),
        (np.array([[0, 1]]), np.array([0.5, 0.5]), "1-D"),
        (np.array(["no", "yes"]), np.array([0.5, 0.5]), "dtype"),
    ],
)
def test_bad_inputs_are_refused_with_one_line(y: np.ndarray, p: np.ndarray, message: str) -> None:
    for evaluate in (classification_metrics, expected_calibration_error, calibration_curve_points, lift_by_decile):
        with pytest.raises(ValueError, match=message) as err:
            evaluate(y, p)
        assert "\n" not in str(err.value)


def test_bin_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error(np.array([0, 1]), np.array([0.2, 0.8]), bins=0)


# ---------------------------------------------------------------- plots


@pytest.fixture(scope="module")
def holdout() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    y, p = _rare_leads()
    rng = np.random.default_rng(2)
    uncalibrated = np.clip(p**0.6, 0, 1)
    baseline = np.clip(p + rng.normal(0, 0.05, p.size), 0, 1)
    scores = {
        "model": p,
        "model_uncalibrated": uncalibrated,
        "logistic_baseline": baseline,
        "base_rate": np.full(p.size, 0.1),
    }
    return y, scores


IMPORTANCE = [(f"feature_{i:02d}", 1.0 / (i + 1)) for i in range(25)] + [("owns_home", 3.0)]


def test_roc_plot_is_a_png(tmp_path: Path, holdout: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    y, scores = holdout
    _assert_png(plot_roc(y, scores, tmp_path / "roc.png"))


def test_calibration_plot_is_a_png(tmp_path: Path, holdout: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    y, scores = holdout
    _assert_png(plot_calibration(y, scores, tmp_path / "calibration.png"))


def test_gain_plot_is_a_png(tmp_path: Path, holdout: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    y, scores = holdout
    _assert_png(plot_gain(y, scores["model"], tmp_path / "nested" / "gain.png"))


def test_importance_plot_is_a_png(tmp_path: Path) -> None:
    _assert_png(plot_importance(IMPORTANCE, tmp_path / "importance.png", title="What drives conversion"))
    _assert_png(plot_importance([], tmp_path / "empty.png"))


def test_roc_plot_refuses_a_one_class_holdout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both converted and unconverted"):
        plot_roc(np.zeros(10, dtype=int), {"model": np.linspace(0, 1, 10)}, tmp_path / "roc.png")


def test_write_plots_writes_all_four(tmp_path: Path, holdout: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    y, scores = holdout
    out_dir = tmp_path / "run" / "plots"
    written = write_plots(y, scores, "model", IMPORTANCE, out_dir)
    assert set(written) == {"roc", "calibration", "gain", "importance"}
    assert sorted(p.name for p in out_dir.iterdir()) == ["calibration.png", "gain.png", "importance.png", "roc.png"]
    for path in written.values():
        assert path.parent == out_dir
        _assert_png(path)


def test_write_plots_refuses_an_unknown_model_key(tmp_path: Path, holdout: tuple[np.ndarray, dict]) -> None:
    y, scores = holdout
    with pytest.raises(ValueError, match="'champion' is not among the scores"):
        write_plots(y, scores, "champion", IMPORTANCE, tmp_path)


def test_repeated_plotting_leaves_no_figures_open(tmp_path: Path, holdout: tuple[np.ndarray, dict]) -> None:
    y, scores = holdout
    before = plt.get_fignums()
    for i in range(3):
        write_plots(y, scores, "model", IMPORTANCE, tmp_path / str(i))
    assert plt.get_fignums() == before
