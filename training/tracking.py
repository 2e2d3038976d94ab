"""MLflow: every training run is logged, and its model registered as the challenger."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from training.bundle import Bundle
from training.errors import LeadscoreError

CHALLENGER, CHAMPION = "challenger", "champion"
BUNDLE_ARTIFACT_DIR = "bundle"
# What the registered model imports to load and score, pinned to the versions that wrote the bundle; the
# leadscore code itself travels with the model (code_paths).
MODEL_REQUIREMENTS = (
    "mlflow",
    "cloudpickle",
    "scikit-learn",
    "lightgbm",
    "lleaves",
    "llvmlite",
    "numpy",
    "pandas",
    "scipy",
    "joblib",
    "pyarrow",
    "PyYAML",
    "pydantic",
)


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
        if name == "settings":  # a candidate's settings are parameters, not measurements
            continue
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
    """Log params, metrics, reports, plots and the bundle; register the bundle as a pyfunc model, the challenger."""
    import mlflow

    experiment_id = connect(tracking_uri, experiment, artifact_root)
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=bundle.version) as run:
            mlflow.set_tags({"leadscore.bundle_version": bundle.version, "leadscore.dataset": bundle.spec["name"]})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(flat_metrics(bundle.metrics))
            mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_DIR)
            info = log_pyfunc_model(bundle, bundle_dir, example, registered_name)
        client = mlflow.MlflowClient()
        version = str(info.registered_model_version)
        client.set_model_version_tag(registered_name, version, "leadscore.bundle_version", bundle.version)
        client.set_registered_model_alias(registered_name, CHALLENGER, version)
    except LeadscoreError:
        raise
    except Exception as exc:
        raise LeadscoreError(f"MLflow logging failed ({tracking_uri}): {_first_line(exc)}") from None
    return TrackedRun(run.info.run_id, experiment_id, registered_name, version, tracking_uri)


def log_pyfunc_model(bundle: Bundle, bundle_dir: Path, example: pd.DataFrame, registered_name: str | None = None):
    """The bundle as the run's pyfunc model: what `mlflow.pyfunc.load_model`, Spark and `mlflow models serve` load."""
    import mlflow.pyfunc

    from service.pyfunc import BUNDLE_ARTIFACT, LeadscoreModel, model_signature

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=LeadscoreModel(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        code_paths=code_paths(),
        signature=model_signature(bundle),
        input_example=example.head(5),
        registered_model_name=registered_name,
        pip_requirements=model_requirements(bundle),
    )


def save_pyfunc_model(bundle_dir: Path, path: Path, typed: bool = False) -> Path:
    """The same pyfunc model written to a folder, for a bundle that was never registered (Spark scoring)."""
    import mlflow.pyfunc

    from service.pyfunc import BUNDLE_ARTIFACT, LeadscoreModel, model_signature
    from training.bundle import load_bundle

    quiet_mlflow()
    bundle = load_bundle(bundle_dir)
    mlflow.pyfunc.save_model(
        str(path),
        python_model=LeadscoreModel(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        code_paths=code_paths(),
        signature=model_signature(bundle, typed),
        pip_requirements=model_requirements(bundle),
    )
    return path


def code_paths() -> list[str]:
    """The training and service packages, shipped inside the model so it loads without leadscore installed."""
    import service
    import training

    return [str(Path(package.__file__).parent) for package in (training, service)]


def model_requirements(bundle: Bundle) -> list[str]:
    """Pinned: the pickled estimators load only with the library versions that wrote them."""
    pins = []
    for name in MODEL_REQUIREMENTS:
        version = bundle.versions.get(name) or _installed(name)
        if version and version != "unknown":
            pins.append(f"{name}=={version}")
    return pins


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


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
