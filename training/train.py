"""Training, end to end: lead table + spec → calibrated, explained, profiled bundle → MLflow → champion."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.bundle import Bundle, library_versions, new_version, now_iso, save_bundle
from training.calibrated import LogOddsModel
from training.data import LeadTable, prepare_leads, read_table, redact_passwords
from training.evaluate import (
    calibration_curve_points,
    classification_metrics,
    lift_by_decile,
    precision_recall_at,
    write_plots,
)
from training.explain import global_importance
from training.folds import cv_folds
from training.grades import grade_names, grade_table, grade_thresholds
from training.leakage import DEFAULT_THRESHOLD, screen_for_leakage
from training.model import CalibratedBooster, LeadEncoder, build_pipeline, model_family
from training.partial import fit_unknown_offsets
from training.placeholders import PlaceholderSuggestion
from training.profile import Profile, best_customers, profile_best_customers
from training.questions import answer_statistics
from training.reference import reference_statistics
from training.registry import GateDecision, PairedFolds, paired_gate, promote, quality_gate, record_registration
from training.schema import input_schema
from training.selection import Selection, refit, select_model
from training.settings import TrainingSettings
from training.spec import DatasetSpec, read_spec
from training.split import Split, split_holdout, split_leads
from training.timeproxy import THRESHOLD as TIME_PROXY_THRESHOLD
from training.timeproxy import time_proxies
from training.tracking import TrackedRun, log_training_run
from training.wording import Wording

EXAMPLE_ROWS = 20
DEFAULT_FOLDS = 5
FAMILIES = ("lightgbm", "logistic", "blend")
FAMILY_NAMES = {
    "lightgbm": "LightGBM",
    "logistic": "additive logistic regression",
    "blend": "blend of LightGBM and additive logistic regression",
}

Progress = Callable[[str], None]


def stderr_progress() -> Progress:
    """Numbered steps with elapsed seconds, on stderr so stdout stays the summary."""
    start = time.perf_counter()

    def report(step: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {step}", file=sys.stderr, flush=True)

    return report


def _silent(_: str) -> None:
    return None


@dataclass(frozen=True)
class TrainOptions:
    min_per_class: int = 40
    leakage_threshold: float = DEFAULT_THRESHOLD
    seed: int = 0
    booster_params: dict[str, Any] = field(default_factory=dict)
    auc_margin: float = 0.01
    ece_margin: float = 0.01
    folds: int = DEFAULT_FOLDS  # 1: a single split (fit / early stopping / Platt calibration), LightGBM only
    families: tuple[str, ...] = FAMILIES


@dataclass
class FittedModel:
    """What fitting learned, plus the holdout it was judged on (needed by the quality gate)."""

    bundle: Bundle
    holdout: pd.DataFrame
    y_holdout: np.ndarray
    split: Split
    plots_dir: Path
    params: dict[str, Any]
    paired: PairedFolds | None = None  # the challenger's fold-by-fold predictions, for the paired quality gate


@dataclass
class ModelFit:
    """The fitted encoder and served model, how it was chosen, and the encoded rows it learned from."""

    encoder: LeadEncoder
    model: LogOddsModel
    selection: Selection | None
    development: tuple[np.ndarray, np.ndarray]


@dataclass
class TrainResult:
    bundle: Bundle
    bundle_dir: Path
    tracked: TrackedRun
    gate: GateDecision | None
    promoted: bool
    rows: int
    notes: list[str]
    placeholder_suggestions: list[PlaceholderSuggestion] = field(default_factory=list)


def logistic_baseline(encoder: LeadEncoder) -> Pipeline:
    """The simple model a gain is measured against: one-hot categories, imputed and scaled numbers."""
    categorical = encoder.categorical_indices_
    other = [i for i in range(len(encoder.feature_names_in_)) if i not in categorical]
    prepare = ColumnTransformer(
        [
            (
                "cat",
                Pipeline(
                    [
                        ("fill", SimpleImputer(strategy="constant", fill_value=-1)),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", min_frequency=20)),
                    ]
                ),
                categorical,
            ),
            (
                "num",
                Pipeline([("fill", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]),
                other,
            ),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=2000, C=1.0))])


def fit_calibrated(
    table: LeadTable,
    fit: np.ndarray,
    early_stopping: np.ndarray,
    calibration: np.ndarray | None,
    booster_params: dict[str, Any],
) -> tuple[LeadEncoder, CalibratedBooster, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Learn the encoding and the trees on the fitting rows, stop early on others, calibrate on a third set.

    Also returns the encoded (matrix, labels) of the fitting and early-stopping rows, for the baseline.
    """
    features, y = table.features, table.converted.astype(int)
    encoder = LeadEncoder(table.kinds, missing_values=table.missing_values).fit(features.iloc[fit])

    def part(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return encoder.transform(features.iloc[rows]), y[rows]

    parts = {"fit": part(fit), "early_stopping": part(early_stopping)}
    model = CalibratedBooster(booster_params, encoder.categorical_indices_).fit(
        *parts["fit"],
        eval_set=parts["early_stopping"],
        calibration_set=part(calibration) if calibration is not None else None,
    )
    return encoder, model, parts


def cross_validated_auc(table: LeadTable, options: TrainOptions = TrainOptions(), folds: int = 5) -> list[float]:
    """ROC AUC per fold of the model cross-validation chooses (one shuffle of stratified or time-ordered folds)."""
    encoder = LeadEncoder(table.kinds, missing_values=table.missing_values).fit(table.features)
    matrix, y = encoder.transform(table.features), table.converted.astype(int)
    splits = cv_folds(y, table.time, folds, options.seed, repeats=1)
    kinds = [table.kinds[name] for name in encoder.feature_names_in_]
    selection = select_model(matrix, y, splits, kinds, encoder.categorical_indices_, options.seed, options.families)
    chosen = selection.chosen
    return [
        float(roc_auc_score(y[fold.test], chosen.slope * raw + chosen.intercept))
        for fold, raw in zip(splits.folds, chosen.oof.per_fold, strict=True)
    ]


def fit_cross_validated(table: LeadTable, split: Split, options: TrainOptions, progress: Progress) -> ModelFit:
    """Choose family, settings and calibration on out-of-fold predictions; refit on every development row."""
    features, y = table.features, table.converted.astype(int)
    development = split.fit
    encoder = LeadEncoder(table.kinds, missing_values=table.missing_values).fit(features.iloc[development])
    matrix, y_dev = encoder.transform(features.iloc[development]), y[development]
    time = table.time.iloc[development].reset_index(drop=True) if table.time is not None else None
    folds = cv_folds(y_dev, time, options.folds, options.seed)
    progress(f"cross-validation: {folds.describe()} over {len(development):,} development leads")
    kinds = [table.kinds[name] for name in encoder.feature_names_in_]
    grid = [options.booster_params] if options.booster_params else None  # None: the size-scaled search budget
    selection = select_model(
        matrix, y_dev, folds, kinds, encoder.categorical_indices_, options.seed, options.families, progress, grid
    )
    chosen = selection.chosen
    progress(
        f"chosen: {FAMILY_NAMES[chosen.name]} (out-of-fold log loss {chosen.cross_fitted_log_loss:.4f}); "
        f"refitting on all {len(development):,} development leads"
    )
    model = refit(selection, matrix, y_dev, kinds, encoder.categorical_indices_, options.seed)
    return ModelFit(encoder, model, selection, (matrix, y_dev))


def fit_single_split(table: LeadTable, split: Split, options: TrainOptions, progress: Progress) -> ModelFit:
    """``--folds 1``: LightGBM stopped early on one slice and Platt-calibrated on another (for very large tables)."""
    progress(f"fitting gradient-boosted trees on {len(split.fit):,} leads")
    encoder, model, parts = fit_calibrated(
        table, split.fit, split.early_stopping, split.calibration, options.booster_params
    )
    matrix = np.vstack([parts["fit"][0], parts["early_stopping"][0]])
    return ModelFit(encoder, model, None, (matrix, np.concatenate([parts["fit"][1], parts["early_stopping"][1]])))


def fit_and_evaluate(
    table: LeadTable, options: TrainOptions = TrainOptions(), progress: Progress = _silent
) -> FittedModel:
    """Split, screen, choose and fit, evaluate, explain and profile; returns an unsaved bundle."""
    y = table.converted.astype(int)
    features = table.features
    if options.folds >= 2:
        split = split_holdout(table.converted, table.time)
    else:
        split = split_leads(table.converted, table.time, options.seed)
    progress(f"split: {split.describe()}")
    training_rows = split.development

    progress("leakage screen: single-field ROC AUC of every feature on the holdout")
    leakage = screen_for_leakage(
        features.iloc[training_rows],
        y[training_rows],
        features.iloc[split.holdout],
        y[split.holdout],
        table.kinds,
        options.leakage_threshold,
        table.spec.allow_leaky,
    )

    fitted = (fit_cross_validated if options.folds >= 2 else fit_single_split)(table, split, options, progress)
    encoder, model = fitted.encoder, fitted.model
    pipeline = build_pipeline(encoder, model)
    holdout_matrix, y_holdout = encoder.transform(features.iloc[split.holdout]), y[split.holdout]

    progress("evaluating on the holdout against a logistic-regression baseline")
    p_model = model.predict_proba(holdout_matrix)[:, 1]
    p_raw = model.predict_proba_uncalibrated(holdout_matrix)
    baseline = logistic_baseline(encoder).fit(*fitted.development)
    p_baseline = baseline.predict_proba(holdout_matrix)[:, 1]
    p_constant = np.full(len(y_holdout), y[training_rows].mean())
    grades_spec = table.spec.grades
    names = grade_names(grades_spec)
    thresholds = grade_thresholds(p_model, grades_spec)
    metrics = _metrics(y_holdout, p_model, p_raw, p_baseline, p_constant, thresholds, fitted, split)

    progress("explaining: permutation importance and exact per-lead contributions")
    holdout = features.iloc[split.holdout].reset_index(drop=True)
    importance = global_importance(pipeline, holdout, y_holdout, options.seed)

    progress("profiling the best customers")
    wording = Wording.from_spec(table.spec, table.kinds, time_proxies(features, table.kinds, table.time))
    profile = profile_best_customers(features, table.kinds, pd.Series(table.converted), table.value, wording=wording)

    plots_dir = Path(tempfile.mkdtemp(prefix="leadscore-plots-"))
    write_plots(
        y_holdout,
        {"model": p_model, "model_uncalibrated": p_raw, "logistic_baseline": p_baseline, "base_rate": p_constant},
        "model",
        [(row["field"], row["permutation_auc_drop"]) for row in importance],
        plots_dir,
    )
    examples = holdout.head(EXAMPLE_ROWS).astype(object).where(holdout.head(EXAMPLE_ROWS).notna(), None)
    example_frame = pd.DataFrame(examples.to_dict("records"), columns=list(table.kinds))
    bundle = Bundle(
        version=new_version(),
        created_at=now_iso(),
        spec=table.spec.model_dump(),
        pipeline=pipeline,
        schema=input_schema(features, table.kinds, encoder, table.spec.description),
        metrics=metrics,
        importance=importance,
        profile=profile.to_dict(),
        grades={
            "by": grades_spec.by,
            "names": names,
            "thresholds": thresholds,
            "table": grade_table(y_holdout, p_model, thresholds, names),
        },
        reference={
            **reference_statistics(features.iloc[training_rows], table.kinds, encoder, p_model),
            "answers": _answer_statistics(table, training_rows, encoder, fitted, options.seed),
        },
        examples=examples.to_dict("records"),
        example_probabilities=pipeline.predict_proba(example_frame)[:, 1].tolist(),
        leakage=leakage,
        notes=list(table.notes),
        split=split.describe(),
        versions=library_versions(),
        wording=wording,
    )
    params = _run_params(table, split, fitted, options)
    paired = _paired_folds(features.iloc[split.fit].reset_index(drop=True), fitted) if fitted.selection else None
    return FittedModel(bundle, holdout, y_holdout, split, plots_dir, params, paired)


def _answer_statistics(
    table: LeadTable, rows: np.ndarray, encoder: LeadEncoder, fitted: ModelFit, seed: int
) -> dict[str, Any]:
    """What the development leads answered, for the next-question ranking (training.questions), and the
    log-odds offsets that make a partly known lead's probability honest (training.partial)."""
    converted = pd.Series(table.converted).iloc[rows].reset_index(drop=True)
    value = None if table.value is None else table.value.iloc[rows].reset_index(drop=True)
    best = best_customers(converted, value)
    statistics = answer_statistics(table.features.iloc[rows], table.kinds, encoder, best)
    matrix, y = fitted.development
    statistics["unknown_offsets"] = fit_unknown_offsets(matrix, y, lambda m: fitted.model.predict_proba(m)[:, 1], seed)
    return statistics


def _paired_folds(development: pd.DataFrame, fitted: ModelFit) -> PairedFolds:
    """The chosen candidate's calibrated out-of-fold probabilities per fold, for comparing with the champion."""
    selection = fitted.selection
    assert selection is not None
    chosen = selection.chosen
    return PairedFolds(
        development,
        selection.y,
        [fold.test for fold in selection.folds.folds],
        [1.0 / (1.0 + np.exp(-(chosen.slope * raw + chosen.intercept))) for raw in chosen.oof.per_fold],
    )


def _run_params(table: LeadTable, split: Split, fitted: ModelFit, options: TrainOptions) -> dict[str, Any]:
    """What the MLflow run records as parameters: the data, the split, and the chosen model's settings."""
    model, selection = fitted.model, fitted.selection
    params: dict[str, Any] = {
        "dataset": table.spec.name,
        "rows": len(table.converted),
        "features": len(table.kinds),
        "split": split.kind,
        "folds": options.folds,
        "model_family": model_family(model),
        "calibration": selection.chosen.calibration if selection else "platt",
        "seed": options.seed,
    }
    if selection is not None:
        settings = selection.chosen.oof.settings
        flat = (
            settings
            if selection.chosen.name != "blend"
            else {
                **{f"lightgbm.{k}": v for k, v in settings["lightgbm"].items()},
                **{f"logistic.{k}": v for k, v in settings["logistic"].items()},
            }
        )
        params.update({f"model.{k}": v for k, v in flat.items()})
    if isinstance(model, CalibratedBooster):
        params["best_iteration"] = model.best_iteration_
        params.update({f"booster.{k}": v for k, v in {**model.params_used_, **options.booster_params}.items()})
    return params


def _metrics(
    y: np.ndarray,
    p_model: np.ndarray,
    p_raw: np.ndarray,
    p_baseline: np.ndarray,
    p_constant: np.ndarray,
    thresholds: dict[str, float],
    fitted: ModelFit,
    split: Split,
) -> dict[str, Any]:
    """metrics.json: the model's holdout figures at the top, cross-validation, baselines and details beneath."""
    model, selection = fitted.model, fitted.selection
    model_figures = classification_metrics(y, p_model)
    uncalibrated = classification_metrics(y, p_raw)
    calibration: dict[str, Any] = {
        "method": selection.chosen.calibration if selection else "platt",
        "slope": model.slope_,
        "intercept": model.intercept_,
        "ece_before": uncalibrated["ece"],
        "ece_after": model_figures["ece"],
        "brier_before": uncalibrated["brier"],
        "brier_after": model_figures["brier"],
    }
    metrics: dict[str, Any] = {
        **model_figures,
        "model_family": model_family(model),
        "uncalibrated": uncalibrated,
        "baselines": {
            "logistic_regression": classification_metrics(y, p_baseline),
            "base_rate": classification_metrics(y, p_constant),
        },
        "calibration": calibration,
        "lift_by_decile": lift_by_decile(y, p_model),
        "calibration_curve": calibration_curve_points(y, p_model),
        "grades": precision_recall_at(y, p_model, thresholds),
        "split": {
            "kind": split.kind,
            "description": split.describe(),
            "fit": len(split.fit),
            "early_stopping": len(split.early_stopping),
            "calibration": len(split.calibration),
            "holdout": len(split.holdout),
        },
        "best_iteration": _trees_of(model),
    }
    if selection is not None:
        metrics["cv"] = selection.report()
        calibration.update(_out_of_fold_ece(selection))
    return metrics


def _trees_of(model: LogOddsModel) -> int | None:
    trees = getattr(model, "trees", model)
    return int(trees.best_iteration_) if isinstance(trees, CalibratedBooster) else None


def _out_of_fold_ece(selection: Selection) -> dict[str, float]:
    """The calibration decision's evidence: out-of-fold ECE with and without the chosen map."""
    from training.evaluate import expected_calibration_error

    chosen, folds = selection.chosen, selection.folds
    y = selection.y[folds.predicted]
    raw = chosen.oof.raw
    # a blend's weights and intercept are its calibration: it has no separate score before it
    before = 1.0 / (1.0 + np.exp(-(raw + (chosen.intercept if chosen.name == "blend" else 0.0))))
    after = 1.0 / (1.0 + np.exp(-(chosen.slope * raw + chosen.intercept)))
    return {
        "out_of_fold_ece_before": expected_calibration_error(y, before),
        "out_of_fold_ece_after": expected_calibration_error(y, after),
    }


def train(
    data: str | Path,
    spec_path: Path,
    settings: TrainingSettings,
    options: TrainOptions = TrainOptions(),
    output_dir: Path | None = None,
    table_name: str | None = None,
    query: str | None = None,
    sep: str = ",",
    promote_if_better: bool = True,
    force: bool = False,
    progress: Progress = _silent,
) -> TrainResult:
    """The whole `leadscore train`: any failure before the end leaves models/ and the registry untouched."""
    spec = read_spec(spec_path)
    progress(f"reading {redact_passwords(str(data))}")
    raw = read_table(data, table_name, query, sep)
    progress(f"validating {len(raw):,} rows against spec {spec.name!r}")
    table = prepare_leads(raw, spec, options.min_per_class)
    for note in table.notes:
        progress(f"note: {note}")
    models_dir = Path(output_dir or settings.models_dir)
    fitted = fit_and_evaluate(table, options, progress)
    try:
        return _publish(fitted, spec, table, models_dir, settings, options, promote_if_better, force, progress)
    finally:
        shutil.rmtree(fitted.plots_dir, ignore_errors=True)


def _publish(
    fitted: FittedModel,
    spec: DatasetSpec,
    table: LeadTable,
    models_dir: Path,
    settings: TrainingSettings,
    options: TrainOptions,
    promote_if_better: bool,
    force: bool,
    progress: Progress,
) -> TrainResult:
    bundle = fitted.bundle
    bundle_dir = models_dir / bundle.version
    progress(f"writing bundle {bundle_dir}")
    save_bundle(bundle, bundle_dir, {f"plots/{p.name}": p for p in sorted(fitted.plots_dir.glob("*.png"))})
    try:
        store = redact_passwords(settings.mlflow_tracking_uri)
        progress(f"logging to MLflow ({store}) and registering {settings.registered_model_name}")
        tracked = log_training_run(
            bundle,
            bundle_dir,
            fitted.params,
            fitted.holdout.head(100),
            settings.mlflow_tracking_uri,
            settings.experiment,
            settings.registered_model_name,
            settings.mlflow_artifact_root,
        )
    except BaseException:
        shutil.rmtree(bundle_dir, ignore_errors=True)
        raise
    record_registration(
        bundle_dir,
        {
            "run_id": tracked.run_id,
            "experiment_id": tracked.experiment_id,
            "tracking_uri": tracked.tracking_uri,
            "registered_name": tracked.registered_name,
            "registered_version": tracked.registered_version,
        },
    )
    gate, promoted = None, False
    if promote_if_better or force:
        if fitted.paired is not None:
            gate = paired_gate(
                bundle,
                fitted.paired,
                fitted.holdout,
                fitted.y_holdout,
                models_dir,
                options.auc_margin,
                options.ece_margin,
            )
        else:
            gate = quality_gate(
                bundle, fitted.holdout, fitted.y_holdout, models_dir, options.auc_margin, options.ece_margin
            )
        _log_gate(tracked, gate, force)
        if gate.promote or force:
            reason = gate.reason if gate.promote else f"forced: {gate.reason}"
            promote(models_dir, bundle.version, reason)
            promoted = True
    return TrainResult(
        bundle, bundle_dir, tracked, gate, promoted, len(table.converted), table.notes, table.placeholder_suggestions
    )


def _log_gate(tracked: TrackedRun, gate: GateDecision, force: bool) -> None:
    """Record the promotion decision and both scores on the MLflow run."""
    import mlflow

    client = mlflow.MlflowClient(tracked.tracking_uri)
    client.set_tag(tracked.run_id, "leadscore.promotion", "promoted" if gate.promote or force else "refused")
    client.set_tag(tracked.run_id, "leadscore.promotion_reason", gate.reason[:5000])
    for name, value in gate.challenger.items():
        client.log_metric(tracked.run_id, f"gate.challenger.{name}", value)
    for name, value in (gate.champion or {}).items():
        client.log_metric(tracked.run_id, f"gate.champion.{name}", value)


def _placeholder_lines(suggestions: list[PlaceholderSuggestion]) -> list[str]:
    """Values that may mean "not answered": suggested, never acted on."""
    if not suggestions:
        return []
    return [
        "possible placeholders, still used as answers (if one means 'not answered', list it under the spec's "
        "missing_values and retrain):",
        *[f"  {s.field} = {s.value!r} ({s.count:,} leads): {s.reason}" for s in suggestions],
    ]


def time_proxy_lines(wording: Wording | None) -> list[str]:
    """Fields left out of questions because they describe when a lead came in (the spec may still ask them)."""
    if wording is None:
        return []
    unasked = {name: share for name, share in wording.time_proxies.items() if not wording.askable(name)}
    if not unasked:
        return []
    shares = ", ".join(f"{name} ({share:.0%})" for name, share in sorted(unasked.items(), key=lambda kv: -kv[1]))
    return [
        f"not asked, they describe when a lead came in, not who it is (its month explains at least "
        f"{TIME_PROXY_THRESHOLD:.0%} of each; `askable: true` in the spec asks them): {shares}"
    ]


def cross_validation_lines(metrics: dict[str, Any]) -> list[str]:
    """The model choice in a few lines: which family won, its CV figures with their spread, the calibration."""
    cv = metrics.get("cv")
    if not cv:
        before = metrics["calibration"]["ece_before"]
        return [f"model: LightGBM on a single split, Platt-calibrated (holdout ECE before calibration {before:.3f})"]
    figures = cv["metrics"]
    calibration = metrics["calibration"]
    others = ", ".join(f"{name} {candidate['log_loss']:.4f}" for name, candidate in cv["candidates"].items())
    method = calibration["method"]
    losses = cv["calibration"]["cross_fitted_log_loss"]
    applied = (
        "calibration: the blend's weights (fitted out of fold)"
        if cv["chosen"] == "blend"
        else f"calibration: {method} (out-of-fold log loss "
        + ", ".join(f"{name} {loss:.4f}" for name, loss in losses.items())
        + ")"
    )
    return [
        f"model: {FAMILY_NAMES[cv['chosen']]}, chosen by {cv['folds']} on out-of-fold log loss ({others})",
        f"cross-validation: ROC AUC {_mean_sd(figures['roc_auc'])}, log loss {_mean_sd(figures['log_loss'], 4)}, "
        f"ECE {_mean_sd(figures['ece'])}",
        f"{applied}; out-of-fold ECE {calibration['out_of_fold_ece_before']:.3f} before, "
        f"{calibration['out_of_fold_ece_after']:.3f} after",
    ]


def _mean_sd(figure: dict[str, float], digits: int = 3) -> str:
    return f"{figure['mean']:.{digits}f} ± {figure['sd']:.{digits}f}"


def summary_text(result: TrainResult, profile_top: int = 3, drivers_top: int = 5) -> str:
    """The short human summary `leadscore train` prints."""
    m = result.bundle.metrics
    base = m["baselines"]["logistic_regression"]
    top_decile = m["lift_by_decile"][0]
    drivers = ", ".join(row["field"] for row in result.bundle.importance[:drivers_top])
    profile = Profile.from_dict(result.bundle.profile)
    lines = [
        f"trained on {result.rows:,} leads ({int(m['positives'])} converted in the holdout of {int(m['n']):,})",
        f"split: {result.bundle.split}",
        *cross_validation_lines(m),
        f"holdout: ROC AUC {m['roc_auc']:.3f} (baseline {base['roc_auc']:.3f}), PR AUC {m['pr_auc']:.3f}, "
        f"log loss {m['log_loss']:.4f}, Brier {m['brier']:.4f}, ECE {m['ece']:.3f}",
        f"top 10% of leads convert at {top_decile['rate']:.1%} vs {m['base_rate']:.1%} overall "
        f"({top_decile['lift']:.1f}x)",
        f"top drivers: {drivers}",
        "best customers share:",
        *[f"  {t.question} {t.evidence}" for t in profile.traits[:profile_top]],
        *_placeholder_lines(result.placeholder_suggestions),
        *time_proxy_lines(result.bundle.wording),
        f"bundle: {result.bundle_dir}",
        f"MLflow: run {result.tracked.run_id} in {result.tracked.tracking_uri}; registered "
        f"{result.tracked.registered_name} v{result.tracked.registered_version} as challenger",
    ]
    if result.gate is not None:
        verdict = "promoted to champion" if result.promoted else "not promoted"
        lines.append(f"{verdict}: {result.gate.reason}")
        if result.gate.champion:
            mine, theirs = result.gate.challenger, result.gate.champion
            lines.append(
                f"  holdout: new ROC AUC {mine['roc_auc']:.3f} / ECE {mine['ece']:.3f}"
                f" vs champion {theirs['roc_auc']:.3f} / {theirs['ece']:.3f}"
            )
    return "\n".join(lines)
