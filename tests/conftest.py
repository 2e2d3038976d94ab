"""Shared fixtures: leads with a planted signal, one real training run, models folders and the real app."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.pg import PostgresServer, running_postgres
from training.bundle import Bundle, load_bundle, save_bundle
from training.cli import app
from training.data import prepare_leads
from training.settings import get_training_settings
from training.spec import read_spec
from training.synthetic import generate_leads
from training.train import fit_and_evaluate

REPO = Path(__file__).resolve().parents[1]
# compiled trees are cached per machine; tests (and the servers they start) use a cache of their own
os.environ["LEADSCORE_CACHE_DIR"] = tempfile.mkdtemp(prefix="leadscore-test-cache-")
SAMPLE_SPEC = REPO / "data/specs/sample.yaml"
CARAVAN_SPEC = REPO / "data/specs/caravan.yaml"
SCORING_KEY = "scoring-key-0123456789"
ADMIN_KEY = "admin-key-9876543210"


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


@dataclass(frozen=True)
class ModelsFolder:
    """A models folder holding two real bundles and a champion link, as training leaves it."""

    root: Path
    first: str
    second: str

    @property
    def champion(self) -> Path:
        return self.root / "champion"

    def point_champion_at(self, version: str) -> None:
        staging = self.root / ".champion.next"
        staging.unlink(missing_ok=True)
        staging.symlink_to(version, target_is_directory=True)
        os.replace(staging, self.champion)


@pytest.fixture(scope="session")
def second_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different real model (other data, other seed): what a retrain produces."""
    table = prepare_leads(generate_leads(n=6_000, seed=77), read_spec(SAMPLE_SPEC))
    fitted = fit_and_evaluate(table)
    target = tmp_path_factory.mktemp("second") / fitted.bundle.version
    save_bundle(fitted.bundle, target)
    shutil.rmtree(fitted.plots_dir, ignore_errors=True)
    return target


@pytest.fixture()
def models_folder(tmp_path: Path, trained: Trained, second_bundle_dir: Path) -> ModelsFolder:
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(trained.bundle_dir, root / trained.bundle.version)
    shutil.copytree(second_bundle_dir, root / second_bundle_dir.name)
    folder = ModelsFolder(root, trained.bundle.version, second_bundle_dir.name)
    folder.point_champion_at(folder.first)
    return folder


AppFactory = Callable[..., TestClient]


@pytest.fixture()
def make_client(tmp_path: Path, models_folder: ModelsFolder) -> Iterator[AppFactory]:
    """Start the real app (lifespan included) over a real SQLite score log, settings overridden per test."""
    from service.app import create_app
    from service.settings import ServiceSettings

    clients: list[TestClient] = []

    def make(fast_lane: bool = True, **overrides: object) -> TestClient:
        defaults = {
            "model_dir": models_folder.champion,
            "database_url": f"sqlite:///{tmp_path / 'scores.db'}",
            "api_keys": [SCORING_KEY],
            "admin_keys": [ADMIN_KEY],
            "score_log_flush_s": 0.02,
        }
        settings = ServiceSettings(**(defaults | overrides))
        client = TestClient(create_app(settings, fast_lane=fast_lane), headers={"X-API-Key": SCORING_KEY})
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture()
def client(make_client: AppFactory) -> TestClient:
    return make_client()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL 15 for the session, started only if a PostgreSQL test runs."""
    with running_postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database per test: a new SQLite file, or a new database on the session's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leadscore.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database(f"test_{uuid.uuid4().hex[:16]}")
