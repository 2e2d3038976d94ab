"""A real service follows the champion: a promotion by the CLI is served without a restart or an admin call."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from tests.conftest import ModelsFolder
from tests.e2e.conftest import ServerFactory
from training.cli import app
from training.settings import get_training_settings

POLL_S = 0.3


def _promote(models_folder: ModelsFolder, version: str) -> str:
    get_training_settings.cache_clear()
    try:
        env = {"LEADSCORE_MODELS_DIR": str(models_folder.root), "LEADSCORE_RELOAD_INTERVAL_S": str(POLL_S)}
        result = CliRunner().invoke(app, ["promote", version], env=env)
    finally:
        get_training_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def _served_within(server, version: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    with server.client() as client:
        while time.monotonic() < deadline:
            if client.get("/readyz").json().get("model_version") == version:
                return True
            time.sleep(0.05)
    return False


def test_a_promotion_by_the_cli_is_served_within_the_interval(
    start_server: ServerFactory, models_folder: ModelsFolder
) -> None:
    server = start_server(models_folder.champion, env={"LEADSCORE_RELOAD_INTERVAL_S": str(POLL_S)})
    output = _promote(models_folder, models_folder.second)
    assert f"serves it within {POLL_S:g} s (LEADSCORE_RELOAD_INTERVAL_S)" in output
    assert _served_within(server, models_folder.second, 10 * POLL_S + 2), server.log_text()[-2000:]
    with server.client() as client:
        assert client.post("/v1/leads/score", json={}).json()["model_version"] == models_folder.second
        card = client.get("/v1/model").json()
    assert card["champion_version"] == models_folder.second and card["serving_champion"] is True


def test_a_corrupt_champion_is_refused_by_polling_and_the_old_model_keeps_serving(
    start_server: ServerFactory, models_folder: ModelsFolder
) -> None:
    server = start_server(models_folder.champion, env={"LEADSCORE_RELOAD_INTERVAL_S": str(POLL_S)})
    payload = models_folder.root / models_folder.second / "bundle.joblib"
    data = bytearray(payload.read_bytes())
    data[100] ^= 0xFF
    payload.write_bytes(bytes(data))
    models_folder.point_champion_at(models_folder.second)
    time.sleep(4 * POLL_S)
    with server.client() as client:
        assert client.get("/readyz").json()["model_version"] == models_folder.first
        card = client.get("/v1/model").json()
    assert card["serving_champion"] is False and card["champion_version"] == models_folder.second
    assert server.log_text().count("checksum mismatch") == 1, "a refused bundle is not reloaded on every check"
