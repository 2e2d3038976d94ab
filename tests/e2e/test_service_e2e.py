"""End to end: a real uvicorn process, a real database, real bundles from real training runs."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ModelsFolder, Trained
from tests.e2e.conftest import ADMIN_KEY, ServerFactory
from training.synthetic import generate_leads


def _leads(n: int, seed: int) -> tuple[list[dict], np.ndarray]:
    frame = generate_leads(n=n, seed=seed)
    outcomes = frame["converted"].to_numpy()
    frame = frame.drop(columns=["converted", "deal_value", "account_manager_assigned", "created_at"])
    return frame.astype(object).where(frame.notna(), None).to_dict("records"), outcomes


def test_score_outcomes_and_live_monitoring(
    start_server: ServerFactory, models_folder: ModelsFolder, trained: Trained
) -> None:
    server = start_server(models_folder.champion)
    leads, outcomes = _leads(600, seed=51)
    with server.client() as client:
        single = client.post("/v1/leads/score", json=leads[0]).json()
        expected = trained.bundle.predict_proba(pd.DataFrame([leads[0]]))[0]
        assert single["probability"] == pytest.approx(expected, abs=1e-9)
        batch = client.post("/v1/leads/score/batch", json={"leads": leads[1:]}).json()
        assert batch["scored"] == 599 and batch["failed"] == 0
        assert client.get("/v1/monitoring").json()["performance"]["roc_auc"] is None
        for lead, converted in zip(leads, outcomes, strict=True):
            reply = client.post(f"/v1/leads/{lead['lead_id']}/outcome", json={"converted": bool(converted)})
            assert reply.status_code == 200
        time.sleep(0.5)  # the score log is written in the background
        performance = client.get("/v1/monitoring").json()["performance"]
        assert performance["leads_with_outcomes"] == 600
        assert performance["roc_auc"] > 0.7
        history = client.get(f"/v1/leads/{leads[0]['lead_id']}/scores").json()
        assert history["scores"][0]["probability"] == pytest.approx(single["probability"])


def test_reload_under_load_loses_no_request(start_server: ServerFactory, models_folder: ModelsFolder) -> None:
    server = start_server(models_folder.champion)
    leads, _ = _leads(50, seed=52)
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    stop = threading.Event()

    def hammer() -> None:
        with server.client() as client:
            i = 0
            while not stop.is_set():
                try:
                    reply = client.post("/v1/leads/score?reasons=false", json=leads[i % len(leads)])
                    statuses[reply.status_code] += 1
                    versions[reply.json().get("model_version", "?")] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                i += 1

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    models_folder.point_champion_at(models_folder.second)
    with server.client(ADMIN_KEY) as admin:
        reload = admin.post("/v1/admin/reload")
    time.sleep(1.0)
    stop.set()
    for worker in workers:
        worker.join()
    assert reload.status_code == 200, reload.text
    assert set(statuses) == {200}, statuses
    assert versions[models_folder.first] > 0 and versions[models_folder.second] > 0


def test_reload_to_a_corrupt_bundle_keeps_the_old_model(
    start_server: ServerFactory, models_folder: ModelsFolder
) -> None:
    server = start_server(models_folder.champion)
    payload = models_folder.root / models_folder.second / "bundle.joblib"
    data = bytearray(payload.read_bytes())
    data[100] ^= 0xFF
    payload.write_bytes(bytes(data))
    models_folder.point_champion_at(models_folder.second)
    with server.client(ADMIN_KEY) as admin:
        reply = admin.post("/v1/admin/reload")
        assert reply.status_code == 409 and "checksum mismatch" in reply.json()["reason"]
        assert admin.post("/v1/leads/score", json={}).json()["model_version"] == models_folder.first
        assert admin.get("/readyz").json()["model_version"] == models_folder.first


def test_acknowledged_outcomes_survive_kill_9(
    start_server: ServerFactory, models_folder: ModelsFolder, database_url: str
) -> None:
    server = start_server(models_folder.champion, database_url)
    with server.client() as client:
        for i in range(20):
            assert client.post(f"/v1/leads/K{i}/outcome", json={"converted": i % 2 == 0}).status_code == 200
    server.kill()
    server.start()
    with server.client() as client:
        for i in range(20):
            outcome = client.get(f"/v1/leads/K{i}/scores").json()["outcome"]
            assert outcome is not None and outcome["converted"] is (i % 2 == 0)


def test_sigterm_flushes_the_score_log(
    start_server: ServerFactory, models_folder: ModelsFolder, tmp_path: Path
) -> None:
    server = start_server(models_folder.champion)
    leads, _ = _leads(2_000, seed=53)
    with server.client() as client:
        for start in range(0, 2_000, 500):
            assert client.post("/v1/leads/score/batch", json={"leads": leads[start : start + 500]}).status_code == 200
    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "Application shutdown complete" in server.log_path.read_text()
    with sqlite3.connect(tmp_path / "scores.db") as db:
        (count,) = db.execute("select count(*) from scores").fetchone()
    assert count == 2_000


def _listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on this IPv4 port (/proc/net/tcp: local address, then state 0A)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(1 for row in rows if row[3] == "0A" and int(row[1].split(":")[1], 16) == port)


def test_two_workers_listen_on_their_own_sockets_and_store_every_score(
    start_server: ServerFactory, models_folder: ModelsFolder, tmp_path: Path
) -> None:
    server = start_server(models_folder.champion, workers=2)
    deadline = time.monotonic() + 60
    while _listening_sockets(server.port) < 2:  # ready means one worker listens; the other may still be loading
        assert time.monotonic() < deadline, "the second worker never listened on a socket of its own"
        time.sleep(0.1)
    assert _listening_sockets(server.port) == 2
    leads, _ = _leads(200, seed=53)
    clients = [server.client() for _ in range(8)]  # keep-alive connections, spread by the kernel
    answered = 0
    try:
        for _ in range(3):
            for client in clients:
                reply = client.post("/v1/leads/score/batch", json={"leads": leads})
                assert reply.status_code == 200
                answered += reply.json()["scored"]
    finally:
        for client in clients:
            client.close()
    assert server.terminate() == 0  # both workers write their queued scores before exiting
    with sqlite3.connect(tmp_path / "scores.db") as db:
        (stored,) = db.execute("SELECT count(*) FROM scores").fetchone()
    assert answered == 8 * 3 * 200
    assert stored == answered


def test_what_if_through_a_real_server(start_server: ServerFactory, models_folder: ModelsFolder) -> None:
    from service.routes import WHAT_IF_EXAMPLE

    server = start_server(models_folder.champion)
    with server.client() as client:
        reply = client.post("/v1/leads/what-if", json=WHAT_IF_EXAMPLE)
        assert reply.status_code == 200, reply.text
        best = reply.json()["suggestions"][0]
        changed = WHAT_IF_EXAMPLE | {c["field"]: c["value"] for c in best["changes"]}
        scored = client.post("/v1/leads/score", json=changed).json()
        assert best["probability"] == pytest.approx(scored["probability"], abs=1e-12)
        assert best["grade"] == scored["grade"]
        assert client.post("/v1/leads/what-if", json={"owns_home": "perhaps"}).status_code == 422
