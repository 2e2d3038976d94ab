"""`mlflow models serve` on the registered champion answers what `leadscore serve` answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import Trained
from tests.e2e.conftest import ServerFactory, free_port
from tests.processes import wait_for_ok
from training.synthetic import generate_leads

START_TIMEOUT_S = 180


@pytest.fixture()
def mlflow_server(trained: Trained, tmp_path: Path) -> Iterator[str]:
    """The real `mlflow models serve` process, in this environment (--env-manager local), on a free port."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/leadscore@champion"]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = tmp_path / "mlflow-serve.log"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained.env.tracking_uri,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # it starts this environment's uvicorn
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ok(f"{url}/ping", process, log, START_TIMEOUT_S, "mlflow models serve")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.slow
def test_mlflow_models_serve_answers_the_services_probabilities(
    mlflow_server: str, start_server: ServerFactory, trained: Trained
) -> None:
    frame = generate_leads(n=1_000, seed=61).drop(columns=["converted", "deal_value"])
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:
        record["created_at"] = str(record["created_at"])

    served = httpx.post(
        f"{mlflow_server}/invocations", json={"dataframe_records": records, "params": {"reasons": "top"}}, timeout=120
    )
    assert served.status_code == 200, served.text[:2000]
    predictions = served.json()["predictions"]

    service = start_server(trained.bundle_dir)
    with service.client() as client:
        fields = [trained.bundle.spec["id"], *trained.bundle.fields]
        leads = [{name: record[name] for name in fields} for record in records]
        reply = client.post("/v1/leads/score/batch?reasons=true", json={"leads": leads})
    assert reply.status_code == 200
    expected = reply.json()["results"]

    assert [p["lead_id"] for p in predictions] == [e["lead_id"] for e in expected]
    np.testing.assert_allclose(
        [p["probability"] for p in predictions], [e["probability"] for e in expected], rtol=0, atol=1e-9
    )
    assert [p["grade"] for p in predictions] == [e["grade"] for e in expected]
    assert [p["percentile"] for p in predictions] == [e["percentile"] for e in expected]
    assert [[r["field"] for r in p["reasons"]] for p in predictions] == [
        [r["field"] for r in e["reasons"]] for e in expected
    ]

    refused = httpx.post(
        f"{mlflow_server}/invocations",
        json={"dataframe_records": [{**records[0], "pages_viewed": "many"}]},
        timeout=30,
    )
    assert refused.status_code == 400 and "pages_viewed" in refused.text
