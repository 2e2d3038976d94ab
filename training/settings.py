"""Settings from the environment (LEADSCORE_*), built once and swappable in tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainingSettings(BaseSettings):
    """Where models, bundles and the MLflow store live."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", env_file=".env", extra="ignore")

    models_dir: Path = Path("models")
    mlflow_tracking_uri: str = "sqlite:///mlflow.db"
    mlflow_artifact_root: str | None = None  # default: an mlruns/ folder beside a SQLite store
    registered_model_name: str = "leadscore"
    experiment: str = "leadscore"


@lru_cache
def get_training_settings() -> TrainingSettings:
    return TrainingSettings()
