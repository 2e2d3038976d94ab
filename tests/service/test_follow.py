"""Following the champion: the default interval, the model card's champion, and what promote says."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.follow import champion_pointer
from service.settings import ServiceSettings
from tests.conftest import AppFactory, ModelsFolder, Trained
from training.cli import app
from training.settings import get_training_settings


def _cli(models_folder: ModelsFolder, *args: str, interval: str | None = None) -> str:
    env = {"LEADSCORE_MODELS_DIR": str(models_folder.root), "LEADSCORE_RELOAD_INTERVAL_S": interval}
    get_training_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, list(args), env=env)
    finally:
        get_training_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def test_the_service_follows_the_champion_every_5_seconds_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADSCORE_RELOAD_INTERVAL_S", raising=False)
    assert ServiceSettings(_env_file=None).reload_interval_s == 5


def test_the_model_card_names_a_champion_not_yet_served(make_client: AppFactory, models_folder: ModelsFolder) -> None:
    client = make_client(reload_interval_s=0)
    card = client.get("/v1/model").json()
    assert card["champion_version"] == models_folder.first and card["serving_champion"] is True
    assert card["champion_notice"] is None
    models_folder.point_champion_at(models_folder.second)
    card = client.get("/v1/model").json()
    assert card["version"] == models_folder.first
    assert card["champion_version"] == models_folder.second and card["serving_champion"] is False
    assert f"serving {models_folder.first}, champion {models_folder.second}" in card["champion_notice"]
    assert "restart" in card["champion_notice"]
    page_model = client.get("/v1/dashboard").json()["model"]
    assert page_model["champion_notice"] == card["champion_notice"]


def test_the_page_shows_the_notice(client: TestClient) -> None:
    page = client.get("/dashboard").text
    script = client.get("/dashboard/assets/dashboard.js").text
    assert 'id="champion-notice"' in page and "champion_notice" in script


def test_a_broken_champion_link_does_not_fail_the_model_card(
    make_client: AppFactory, models_folder: ModelsFolder
) -> None:
    client = make_client(reload_interval_s=0)
    models_folder.champion.unlink()
    models_folder.champion.symlink_to("no-such-version", target_is_directory=True)
    reply = client.get("/v1/model")
    assert reply.status_code == 200
    assert reply.json()["champion_version"] is None and reply.json()["version"] == models_folder.first


def test_polling_serves_a_new_champion_without_an_admin_key(
    make_client: AppFactory, models_folder: ModelsFolder
) -> None:
    client = make_client(reload_interval_s=0.1, admin_keys=[])
    models_folder.point_champion_at(models_folder.second)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and client.get("/readyz").json()["model_version"] != models_folder.second:
        time.sleep(0.05)
    assert client.get("/readyz").json()["model_version"] == models_folder.second


def test_the_registry_champion_is_read_from_the_alias_without_downloading(trained: Trained, tmp_path: Path) -> None:
    settings = ServiceSettings(
        _env_file=None,
        model_uri="models:/leadscore@champion",
        mlflow_tracking_uri=trained.env.tracking_uri,
        model_dir=tmp_path / "cache" / "champion",
    )
    pointer = champion_pointer(settings)
    assert pointer is not None and pointer.version == trained.bundle.version
    assert not (tmp_path / "cache").exists()


def test_promote_and_rollback_say_when_a_running_service_serves_the_champion(models_folder: ModelsFolder) -> None:
    promoted = _cli(models_folder, "promote", models_folder.second, interval="5")
    assert f"following {models_folder.root / 'champion'} serves it within 5 s (LEADSCORE_RELOAD_INTERVAL_S)" in promoted
    _cli(models_folder, "promote", models_folder.first, interval="5")
    rolled_back = _cli(models_folder, "rollback", interval="0")
    assert "serves it after a restart or POST /v1/admin/reload" in rolled_back


def test_the_train_summary_says_when_a_running_service_serves_the_new_champion(trained: Trained) -> None:
    assert "promoted to champion" in trained.stdout
    assert "a running `leadscore serve` following " in trained.stdout and "serves it " in trained.stdout


def test_polling_follows_the_registry_alias(
    make_client: AppFactory, trained: Trained, second_bundle_dir: Path, tmp_path: Path
) -> None:
    import mlflow

    from tests.e2e.test_replicas import register
    from training.registry import promote

    models_dir, tracking_uri = tmp_path / "registered", f"sqlite:///{tmp_path / 'mlflow.db'}"
    models_dir.mkdir()
    previous_uri = mlflow.get_tracking_uri()
    try:
        first, second = (
            register(models_dir, source, tracking_uri) for source in (trained.bundle_dir, second_bundle_dir)
        )
    finally:
        mlflow.set_tracking_uri(previous_uri)
    promote(models_dir, first, "first champion")
    client = make_client(
        model_uri="models:/leadscore@champion",
        mlflow_tracking_uri=tracking_uri,
        model_dir=tmp_path / "replica" / "champion",
        reload_interval_s=0.2,
    )
    assert client.get("/readyz").json()["model_version"] == first
    promote(models_dir, second, "second champion")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and client.get("/readyz").json()["model_version"] != second:
        time.sleep(0.05)
    assert client.get("/readyz").json()["model_version"] == second
    card = client.get("/v1/model").json()
    assert card["champion_version"] == second and card["serving_champion"] is True
