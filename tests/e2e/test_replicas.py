"""Two `leadscore serve` replicas on one PostgreSQL score log and one MLflow registry behave as one service."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import Trained
from tests.e2e.conftest import Server, ServerFactory
from tests.pg import PostgresServer
from tests.reliability.figures import report
from training.bundle import load_bundle
from training.registry import promote, record_registration
from training.synthetic import generate_leads
from training.tracking import log_training_run

POLL_S = 1.0
PICKUP_TIMEOUT_S = 90


def register(models_dir: Path, source: Path, tracking_uri: str) -> str:
    """Copy a bundle into the models folder and register it in the MLflow store, as training does."""
    target = models_dir / source.name
    shutil.copytree(source, target)
    bundle = load_bundle(target)
    example = pd.DataFrame(bundle.examples, columns=bundle.fields)
    tracked = log_training_run(bundle, target, {}, example, tracking_uri, "leadscore", "leadscore")
    record_registration(
        target,
        {
            "run_id": tracked.run_id,
            "experiment_id": tracked.experiment_id,
            "tracking_uri": tracked.tracking_uri,
            "registered_name": tracked.registered_name,
            "registered_version": tracked.registered_version,
        },
    )
    return bundle.version


def leads(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    frame = generate_leads(n=n, seed=seed)
    converted = frame["converted"].to_numpy()
    frame = frame.drop(columns=["converted", "deal_value", "account_manager_assigned", "created_at"])
    return frame.astype(object).where(frame.notna(), None).to_dict("records"), converted


def eventually(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until `check` holds."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, f"{what} not seen within {timeout_s}s"
        time.sleep(0.1)
    return time.monotonic() - start


def serving_version(server: Server) -> str | None:
    with server.client() as client:
        return client.get("/readyz").json().get("model_version")


@pytest.mark.slow
def test_two_replicas_share_the_score_log_and_follow_the_registry(
    start_server: ServerFactory, pg_server: PostgresServer, trained: Trained, second_bundle_dir: Path, tmp_path: Path
) -> None:
    previous_uri = mlflow.get_tracking_uri()
    models_dir, tracking_uri = tmp_path / "models", f"sqlite:///{tmp_path / 'mlflow.db'}"
    models_dir.mkdir()
    try:
        first = register(models_dir, trained.bundle_dir, tracking_uri)
        second = register(models_dir, second_bundle_dir, tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous_uri)
    promote(models_dir, first, "first champion")

    database = pg_server.create_database(f"replicas_{uuid.uuid4().hex[:12]}")
    env = {
        "LEADSCORE_MODEL_URI": "models:/leadscore@champion",
        "LEADSCORE_MLFLOW_TRACKING_URI": tracking_uri,
        "LEADSCORE_RELOAD_INTERVAL_S": str(POLL_S),
    }
    # each replica keeps its own download of the registered bundle, as it would on its own machine
    a, b = (start_server(tmp_path / name / "champion", database, env=env) for name in ("replica-a", "replica-b"))
    assert a.port != b.port
    assert serving_version(a) == serving_version(b) == first

    batch, converted = leads(400, seed=71)
    halves = {a: batch[:200], b: batch[200:]}
    for server, part in halves.items():
        with server.client() as client:
            reply = client.post("/v1/leads/score/batch", json={"leads": part}).json()
            assert reply["scored"] == len(part) and reply["model_version"] == first

    scored_on_a, scored_on_b = batch[0]["lead_id"], batch[-1]["lead_id"]
    with a.client() as on_a, b.client() as on_b:
        eventually(lambda: len(on_b.get(f"/v1/leads/{scored_on_a}/scores").json()["scores"]) == 1, 10, "A's score on B")
        eventually(lambda: len(on_a.get(f"/v1/leads/{scored_on_b}/scores").json()["scores"]) == 1, 10, "B's score on A")
        # outcomes alternate between the replicas; each replica's report joins them with the scores of both
        for index, (lead, outcome) in enumerate(zip(batch, converted, strict=True)):
            client = on_a if index % 2 else on_b
            assert client.post(f"/v1/leads/{lead['lead_id']}/outcome", json={"converted": bool(outcome)}).is_success
        for client in (on_a, on_b):
            performance = client.get("/v1/monitoring").json()["performance"]
            assert performance["leads_with_outcomes"] == len(batch)
            assert performance["converted"] == int(converted.sum())
            assert performance["roc_auc"] > 0.65

    promoted_at = time.monotonic()
    promoted = subprocess.run(
        [sys.executable, "-m", "training.cli", "promote", second],
        env={**os.environ, "LEADSCORE_MODELS_DIR": str(models_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert promoted.returncode == 0, promoted.stderr
    # no admin call: each replica polls the registry alias and swaps models by itself
    for server in (a, b):
        eventually(lambda s=server: serving_version(s) == second, PICKUP_TIMEOUT_S, "the promotion")
    took = time.monotonic() - promoted_at
    report(
        "Replicas: one PostgreSQL score log, one MLflow registry",
        ["what", "seconds"],
        [[f"from `leadscore promote` starting to both serving the new champion (poll {POLL_S:g} s)", f"{took:.1f}"]],
    )
    for server in (a, b):
        with server.client() as client:
            assert client.post("/v1/leads/score", json=batch[0]).json()["model_version"] == second
    with b.client() as on_b:
        eventually(lambda: len(on_b.get(f"/v1/leads/{scored_on_a}/scores").json()["scores"]) == 3, 10, "rescores")
        versions = [row["model_version"] for row in on_b.get(f"/v1/leads/{scored_on_a}/scores").json()["scores"]]
        assert sorted(versions) == sorted([first, second, second])
