"""MLflow: every training run is logged, and its model registered as the challenger."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training.bundle import Bundle
from training.errors import LeadscoreError

CHALLENGER, CHAMPION = "challenger", "champion"
BUNDLE_ARTIFACT_DIR = "bundle"
# MLflow stores scikit-learn models with skops, which loads only types declared safe.
SKOPS_TRUSTED_TYPES = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "training.additive.BinnedLogistic",
    "training.model.CalibratedBlend",
    "training.model.CalibratedBooster",
    "training.model.LeadEncoder",
]


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    registered_name: str
    registered_version: str
    tracking_uri: str


def default_artifact_root(tracking_uri: str) -> str | None:
    """Keep artifacts beside a SQLite store (MLflow would otherwise use ./mlruns of the current folder)."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        return (database.resolve().parent / "mlruns").as_uri()
    return None


def quiet_mlflow() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def connect(tracking_uri: str, experiment: str, artifact_root: str | None = None) -> str:
    """Point MLflow at the store and return the experiment id, creating it where artifacts belong."""
    import mlflow

    quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        location = artifact_root or default_artifact_root(tracking_uri)
        return mlflow.create_experiment(experiment, artifact_location=location)
    except Exception as exc:
        raise LeadscoreError(f"cannot use MLflow tracking store {tracking_uri}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Holdout figures as MLflow metric names: roc_auc, logistic_regression.brier, calibration.ece_before, ..."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{prefix}{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{name}".replace("baselines.", "")] = float(value)
    return flat


def log_training_run(
    bundle: Bundle,
    bundle_dir: Path,
    params: dict[str, Any],
    example: pd.DataFrame,
    tracking_uri: str,
    experiment: str,
    registered_name: str,
    artifact_root: str | None = None,
) -> TrackedRun:
    """Log params, metrics, reports, plots, the bundle and the pipeline; register it as challenger."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    experiment_id = connect(tracking_uri, experiment, artifact_root)
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=bundle.version) as run:
            mlflow.set_tags({"leadscore.bundle_version": bundle.version, "leadscore.dataset": bundle.spec["name"]})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(flat_metrics(bundle.metrics))
            mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_DIR)
            example = _nullable_numbers(example)
            signature = infer_signature(example, bundle.predict_proba(example))
            info = mlflow.sklearn.log_model(
                bundle.pipeline,
                name="model",
                signature=signature,
                input_example=example.head(5),
                registered_model_name=registered_name,
                pip_requirements=_pip_requirements(bundle),
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
            )
        client = mlflow.MlflowClient()
        version = str(info.registered_model_version)
        client.set_model_version_tag(registered_name, version, "leadscore.bundle_version", bundle.version)
        client.set_registered_model_alias(registered_name, CHALLENGER, version)
    except LeadscoreError:
        raise
    except Exception as exc:
        raise LeadscoreError(f"MLflow logging failed ({tracking_uri}): {_first_line(exc)}") from None
    return TrackedRun(run.info.run_id, experiment_id, registered_name, version, tracking_uri)


def _nullable_numbers(example: pd.DataFrame) -> pd.DataFrame:
    """Integers become floats in the signature: any lead field may be missing at scoring time."""
    integers = [c for c in example.columns if pd.api.types.is_integer_dtype(example[c])]
    return example.astype(dict.fromkeys(integers, "float64"))


def _pip_requirements(bundle: Bundle) -> list[str]:
    names = ("scikit-learn", "lightgbm", "numpy", "pandas")
    return [f"{name}=={bundle.versions[name]}" for name in names if bundle.versions.get(name, "unknown") != "unknown"]


def set_alias(tracking_uri: str, registered_name: str, alias: str, version: str) -> None:
    import mlflow

    quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.MlflowClient().set_registered_model_alias(registered_name, alias, version)
    except Exception as exc:
        raise LeadscoreError(
            f"could not set MLflow alias {alias!r} on {registered_name} v{version}: {_first_line(exc)}"
        ) from None
