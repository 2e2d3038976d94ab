"""Service settings from the environment (LEADSCORE_*), built once and swappable in tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Where the model and the score log live, who may call, and the service's limits."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", env_file=".env", extra="ignore")

    model_dir: Path = Path("models/champion")
    model_uri: str | None = None  # e.g. models:/leadscore@champion: load the champion from the MLflow registry
    allow_model_outside_models_dir: bool = False  # the champion link may lead out of the models folder
    mlflow_tracking_uri: str = "sqlite:///mlflow.db"
    database_url: str = "sqlite:///leadscore.db"
    api_keys: Annotated[list[str], NoDecode] = []
    admin_keys: Annotated[list[str], NoDecode] = []
    max_batch: int = 10_000
    # large batches scored at once per worker process: their work is Python under the GIL, so more threads only
    # take turns at it, and the switching costs throughput (see the serving figures in docs/performance.md)
    batch_threads: Annotated[int, Field(ge=1)] = 1
    max_body_bytes: int = 16 * 1024 * 1024
    max_string_length: int = 200
    top_reasons: int = 3
    # how often the champion link (or registry alias) is checked, and a new champion loaded; 0: never
    reload_interval_s: Annotated[float, Field(ge=0)] = 5.0
    monitoring_window: int = 5_000
    score_log_batch: int = 4_000  # scores per write at most: under load, four 1,000-lead batches share a commit
    score_log_flush_s: float = 0.2
    # queued: the reply goes out once the score is queued (see the README for what a crash can lose);
    # durable: the reply waits until the score's write has committed, and is a 503 if it did not store it
    score_log_mode: Literal["queued", "durable"] = "queued"
    durable_wait_s: float = 30.0
    # who may read /openapi.json, /docs and /redoc (the lead schema and its category lists), and /metrics (traffic):
    # open: anyone; key: a scoring or admin key; loopback-or-key: callers on this machine, others with a key; off
    docs_access: Literal["open", "key", "off"] = "open"
    metrics_access: Literal["open", "key", "loopback-or-key"] = "loopback-or-key"

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """Keys come as one comma-separated variable: LEADSCORE_API_KEYS=key1,key2."""
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def open_access(self) -> bool:
        """No scoring keys configured: the local `make run` default, loopback only."""
        return not self.api_keys


@lru_cache
def get_service_settings() -> ServiceSettings:
    return ServiceSettings()


class ScoreLogSettings(BaseSettings):
    """The score log's location alone, read as the service reads it, for commands that need nothing else (so
    another setting's bad value stays the service's to report)."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", env_file=".env", extra="ignore")

    database_url: str = ServiceSettings.model_fields["database_url"].default
