"""Shared fixtures: generated leads with a planted signal, and one real training run per session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from training.bundle import Bundle, load_bundle
from training.cli import app
from training.settings import get_training_settings
from training.synthetic import generate_leads

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SPEC = REPO / "data/specs/sample.yaml"
CARAVAN_SPEC = REPO / "data/specs/caravan.yaml"


@dataclass(frozen=True)
class TrainingEnv:
    """A models folder and an MLflow store of their own."""

    root: Path

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        return {"LEADSCORE_MODELS_DIR": str(self.models_dir), "LEADSCORE_MLFLOW_TRACKING_URI": self.tracking_uri}

    def cli(self, *args: str):
        """Run `leadscore ...` in this environment, as a user would."""
        get_training_settings.cache_clear()
        try:
            return CliRunner().invoke(app, list(args), env=self.env())
        finally:
            get_training_settings.cache_clear()


@dataclass(frozen=True)
class Trained:
    env: TrainingEnv
    bundle_dir: Path
    bundle: Bundle
    stdout: str


def caravan_path() -> Path:
    import ISLP

    return Path(os.path.dirname(ISLP.__file__)) / "data" / "Caravan.csv"


@pytest.fixture(scope="session")
def sample_leads() -> pd.DataFrame:
    return generate_leads(n=20_000, seed=0)


@pytest.fixture(scope="session")
def sample_csv(tmp_path_factory: pytest.TempPathFactory, sample_leads: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("data") / "leads.csv"
    sample_leads.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Trained:
    """One real `leadscore train` on 20,000 generated leads, with a real MLflow store."""
    env = TrainingEnv(tmp_path_factory.mktemp("trained"))
    result = env.cli("train", "--data", str(sample_csv), "--spec", str(SAMPLE_SPEC))
    assert result.exit_code == 0, result.output
    bundle_dir = (env.models_dir / "champion").resolve()
    return Trained(env, bundle_dir, load_bundle(bundle_dir), result.stdout)


@pytest.fixture()
def training_env(tmp_path: Path) -> TrainingEnv:
    return TrainingEnv(tmp_path)
