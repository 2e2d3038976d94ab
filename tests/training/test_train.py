"""A real training run on leads with a planted signal: the model must find what was planted."""

from __future__ import annotations

import json

import matplotlib.image
import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE_SPEC, Trained
from training.data import prepare_leads
from training.profile import Profile
from training.spec import read_spec
from training.split import split_holdout, split_leads
from training.synthetic import NOISE_FIELDS

HOLDOUT_KEYS = {"roc_auc", "pr_auc", "brier", "log_loss", "ece"}


def test_summary_tells_the_analyst_everything(trained: Trained) -> None:
    out = trained.stdout
    for fragment in (
        "ROC AUC",
        "PR AUC",
        "Brier",
        "top drivers:",
        "best customers share:",
        "time-aware",
        str(trained.bundle_dir),
        "MLflow: run",
        "promoted to champion",
        "chosen by 5 time-ordered expanding-window folds on out-of-fold log loss",
        "cross-validation: ROC AUC",
        "out-of-fold ECE",
    ):
        assert fragment in out, fragment


def test_metrics_json_is_machine_readable(trained: Trained) -> None:
    metrics = json.loads((trained.bundle_dir / "metrics.json").read_text())
    assert set(metrics) >= HOLDOUT_KEYS
    assert len(metrics["lift_by_decile"]) == 10
    assert metrics["lift_by_decile"][0]["lift"] > 2.5
    assert set(metrics["baselines"]["logistic_regression"]) >= HOLDOUT_KEYS
    assert metrics["baselines"]["base_rate"]["roc_auc"] == pytest.approx(0.5)


def test_model_is_useful_and_close_to_the_linear_ceiling(trained: Trained) -> None:
    """The planted logit is additive, so logistic regression is near-ideal: the trees must keep up with it."""
    metrics = trained.bundle.metrics
    assert metrics["roc_auc"] > 0.78
    assert metrics["roc_auc"] >= metrics["baselines"]["logistic_regression"]["roc_auc"] - 0.02
    assert metrics["brier"] < metrics["baselines"]["base_rate"]["brier"]


def test_calibrated_probabilities_are_honest(trained: Trained) -> None:
    calibration = trained.bundle.metrics["calibration"]
    assert trained.bundle.metrics["ece"] <= 0.03
    assert calibration["ece_after"] == trained.bundle.metrics["ece"]
    assert {"ece_before", "brier_before", "brier_after"} <= set(calibration)


def test_planted_drivers_lead_the_importance(trained: Trained) -> None:
    importance = trained.bundle.importance
    by_permutation = [row["field"] for row in importance[:5]]
    by_contribution = [row["field"] for row in sorted(importance, key=lambda r: -r["mean_abs_contribution"])[:5]]
    for ranking in (by_permutation, by_contribution):
        assert "owns_home" in ranking
        assert "contact_role" in ranking


def test_noise_fields_rank_in_the_bottom_half(trained: Trained) -> None:
    ranking = [row["field"] for row in trained.bundle.importance]
    for noise in NOISE_FIELDS:
        assert ranking.index(noise) >= len(ranking) // 2, noise


def test_profile_puts_home_ownership_first(trained: Trained) -> None:
    profile = Profile.from_dict(trained.bundle.profile)
    top = profile.traits[0]
    assert (top.field, top.value) == ("owns_home", "yes")
    assert top.lift >= 2
    assert (top.question, top.answer) == ("Do you own your home?", "Yes")
    assert json.loads((trained.bundle_dir / "profile.json").read_text()) == trained.bundle.profile


def test_pii_and_excluded_fields_never_become_features(trained: Trained) -> None:
    spec = read_spec(SAMPLE_SPEC)
    fields = set(trained.bundle.fields)
    assert not fields & (set(spec.pii) | set(spec.exclude) | {spec.target, spec.id, spec.time, spec.value})


def test_time_split_never_predicts_the_past(sample_leads: pd.DataFrame) -> None:
    table = prepare_leads(sample_leads, read_spec(SAMPLE_SPEC))
    split = split_leads(table.converted, table.time)
    assert split.kind == "time"
    training = np.concatenate([split.fit, split.early_stopping, split.calibration])
    assert table.time.iloc[training].max() <= table.time.iloc[split.holdout].min()
    assert len(split.holdout) == pytest.approx(0.2 * len(sample_leads), abs=1)
    assert table.time.iloc[split.fit].max() <= table.time.iloc[split.calibration].min()


def test_without_time_the_split_is_stratified(sample_leads: pd.DataFrame) -> None:
    table = prepare_leads(sample_leads, read_spec(SAMPLE_SPEC).model_copy(update={"time": None}))
    split = split_leads(table.converted, None)
    assert split.kind == "stratified"
    rate = table.converted.mean()
    assert table.converted[split.holdout].mean() == pytest.approx(rate, abs=0.005)
    parts = [split.fit, split.early_stopping, split.calibration, split.holdout]
    assert sum(len(p) for p in parts) == len(table.converted)
    assert len(np.unique(np.concatenate(parts))) == len(table.converted)


def test_the_seed_never_changes_which_leads_are_held_out(sample_leads: pd.DataFrame) -> None:
    table = prepare_leads(sample_leads, read_spec(SAMPLE_SPEC).model_copy(update={"time": None}))
    first, other = split_leads(table.converted, None, seed=0), split_leads(table.converted, None, seed=5)
    assert np.array_equal(first.holdout, other.holdout)
    assert not np.array_equal(first.calibration, other.calibration)
    assert np.array_equal(split_holdout(table.converted, None).holdout, first.holdout)


def test_grades_follow_sales_capacity(trained: Trained) -> None:
    grades = trained.bundle.grades
    assert grades["names"] == ["A", "B", "C", "D"]
    thresholds = list(grades["thresholds"].values())
    assert thresholds == sorted(thresholds, reverse=True)
    table = {row["grade"]: row for row in grades["table"]}
    assert table["A"]["share_of_leads"] == pytest.approx(0.10, abs=0.02)
    assert table["A"]["expected_conversion"] > table["B"]["expected_conversion"] > table["D"]["expected_conversion"]
    precision = trained.bundle.metrics["grades"]
    assert precision["A"]["precision"] > precision["C"]["precision"]
    assert precision["A"]["recall"] < precision["C"]["recall"]


def test_reference_statistics_cover_every_field(trained: Trained) -> None:
    reference = trained.bundle.reference
    assert set(reference["fields"]) == set(trained.bundle.fields)
    for name, stats in reference["fields"].items():
        assert sum(stats["shares"]) == pytest.approx(1.0), name
    quantiles = reference["scores"]["quantiles"]
    assert quantiles == sorted(quantiles) and len(quantiles) == 1001


def test_schema_describes_the_real_fields(trained: Trained) -> None:
    schema = {f.name: f for f in trained.bundle.schema}
    assert schema["lead_source"].kind == "categorical" and "referral" in schema["lead_source"].categories
    assert schema["owns_home"].kind == "boolean"
    assert schema["pages_viewed"].kind == "numeric" and schema["pages_viewed"].minimum == 0


def test_plots_are_real_images(trained: Trained) -> None:
    for name in ("roc", "calibration", "gain", "importance"):
        image = matplotlib.image.imread(trained.bundle_dir / "plots" / f"{name}.png")
        assert image.shape[0] > 200 and image.shape[1] > 200


def test_mlflow_has_the_run_the_model_and_the_aliases(trained: Trained) -> None:
    sidecar = json.loads((trained.bundle_dir / "bundle.json").read_text())
    registered = sidecar["mlflow"]
    client = mlflow.MlflowClient(trained.env.tracking_uri)
    run = client.get_run(registered["run_id"])
    assert run.data.metrics["roc_auc"] == pytest.approx(trained.bundle.metrics["roc_auc"])
    assert "logistic_regression.roc_auc" in run.data.metrics
    cv_auc = trained.bundle.metrics["cv"]["metrics"]["roc_auc"]
    assert run.data.metrics["cv.metrics.roc_auc.mean"] == pytest.approx(cv_auc["mean"])
    assert run.data.metrics["cv.metrics.roc_auc.sd"] == pytest.approx(cv_auc["sd"])
    assert run.data.params["model_family"] == trained.bundle.metrics["model_family"]
    assert run.data.tags["leadscore.bundle_version"] == trained.bundle.version
    assert run.data.tags["leadscore.promotion"] == "promoted"
    artifacts = {a.path for a in client.list_artifacts(registered["run_id"], "bundle/plots")}
    assert "bundle/plots/roc.png" in artifacts
    model = client.get_registered_model("leadscore")
    assert str(model.aliases["challenger"]) == registered["registered_version"]
    assert str(model.aliases["champion"]) == registered["registered_version"]


def test_registered_model_loads_and_scores_like_the_bundle(trained: Trained, sample_leads: pd.DataFrame) -> None:
    mlflow.set_tracking_uri(trained.env.tracking_uri)
    loaded = mlflow.pyfunc.load_model("models:/leadscore@champion")
    rows = sample_leads.head(50)
    expected = trained.bundle.predict_proba(rows[trained.bundle.fields])
    np.testing.assert_allclose(loaded.predict(rows)["probability"], expected, rtol=0, atol=1e-12)
