"""Faults: the database goes away mid-run, the server is stopped under load, a bad bundle is offered.

Already proved elsewhere, and referenced in the reliability table (docs/reliability.md) rather than repeated here:
acknowledged outcomes survive kill -9 on SQLite and PostgreSQL (tests/e2e/test_service_e2e.py::
test_acknowledged_outcomes_survive_kill_9), SIGTERM after a run flushes the score log (::test_sigterm_flushes_
the_score_log), and a reload to a corrupt bundle keeps the old model (::test_reload_to_a_corrupt_bundle_keeps_
the_old_model, tests/service/test_api.py).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY, AppFactory, ModelsFolder
from tests.e2e.conftest import ServerFactory
from tests.e2e.server import SCORING_KEY
from tests.pg import PostgresServer
from tests.reliability.figures import report
from tests.reliability.load import lead_records, metric, score_log_stats, wait_for_score_log
from tests.reliability.traffic import Traffic
from training.bundle import library_versions, load_bundle, save_bundle

PLANTED_EMAIL = "planted.outage.pii.5521@example.com"
OUTAGE_S = 3.0


def _score_one(leads: list[dict]) -> Callable[[httpx.Client, int], httpx.Response]:
    """Score lead i (cycling through `leads`) with a fresh id and the planted PII."""

    def call(client: httpx.Client, i: int) -> httpx.Response:
        lead = leads[i % len(leads)] | {"lead_id": f"S-{i}", "email": PLANTED_EMAIL}
        return client.post("/v1/leads/score?reasons=false", json=lead)

    return call


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until `condition` holds; the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(0.1)
    return time.monotonic() - start


def _outcome_recorded(client: httpx.Client, lead_id: str) -> Callable[[], bool]:
    def attempt() -> bool:
        return client.post(f"/v1/leads/{lead_id}/outcome", json={"converted": True}).status_code == 200

    return attempt


def _query(url: str, query: str) -> list[tuple]:
    """Rows straight from the database, not through the service."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_database_outage_mid_run(
    start_server: ServerFactory, models_folder: ModelsFolder, pg_server: PostgresServer
) -> None:
    """Scoring keeps answering, score-log writes are retried and accounted for, outcomes answer 503, all recovers."""
    database = pg_server.create_database(f"outage_{uuid.uuid4().hex[:12]}")
    server = start_server(models_folder.champion, database)
    traffic = Traffic(server.url, SCORING_KEY, _score_one(lead_records(300, seed=61)), threads=2).start()
    with server.client() as client:
        for i in range(5):
            assert client.post(f"/v1/leads/B-{i}/outcome", json={"converted": True}).status_code == 200
        time.sleep(0.5)
        pg_server.stop()
        outage_started = time.monotonic()
        try:
            refused = [client.post(f"/v1/leads/D-{i}/outcome", json={"converted": True}) for i in range(5)]
            history = client.get("/v1/leads/B-0/scores")
            _wait_until(lambda: metric(server.url, "leadscore_score_log_retries") > 0, 15, "a score-log retry")
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
            scored_during_outage = traffic.outcomes()
        finally:
            pg_server.start()
        recovery_s = _wait_until(_outcome_recorded(client, "A-0"), 30, "an outcome recorded after the outage")
        time.sleep(0.5)
    traffic.stop()
    wait_for_score_log(server.url, timeout_s=60)
    stats = score_log_stats(server.url)

    assert {reply.status_code for reply in refused} == {503}
    assert all("not recorded" in reply.json()["detail"] for reply in refused)
    assert history.status_code == 503
    assert set(scored_during_outage) == {200}, scored_during_outage
    assert set(traffic.outcomes()) == {200}, traffic.outcomes()
    answered = traffic.scored()
    assert stats.retries > 0 and stats.dropped == 0
    assert stats.written + stats.failed == answered, (stats, answered)  # every score written or counted as failed
    assert _query(database, "select count(*) from scores") == [(stats.written,)]
    outcome_ids = {lead_id for (lead_id,) in _query(database, "select distinct lead_id from outcomes")}
    assert {f"B-{i}" for i in range(5)} | {"A-0"} <= outcome_ids
    assert not {f"D-{i}" for i in range(5)} & outcome_ids  # a 503 recorded nothing
    log = server.log_text()
    assert "retry" in log and PLANTED_EMAIL not in log and "Traceback" not in log
    report(
        "Faults: PostgreSQL stopped mid-run",
        ["outage s", "scores answered", "non-200 scores", "written", "failed", "retries", "recovered in s"],
        [
            [
                f"{OUTAGE_S:.0f}",
                f"{answered:,}",
                "0",
                f"{stats.written:,}",
                f"{stats.failed:,}",
                str(stats.retries),
                f"{recovery_s:.1f}",
            ]
        ],
    )


def _score_batch(leads: list[dict]) -> Callable[[httpx.Client, int], httpx.Response]:
    def call(client: httpx.Client, i: int) -> httpx.Response:
        return client.post("/v1/leads/score/batch", json={"leads": leads})

    return call


IN_FLIGHT_MARGIN_S = 0.1  # a request sent this long before SIGTERM has surely been accepted by the server


def test_sigterm_under_load_finishes_in_flight_requests_and_flushes_the_score_log(
    start_server: ServerFactory, models_folder: ModelsFolder, tmp_path: Path
) -> None:
    server = start_server(models_folder.champion)
    batch = Traffic(server.url, SCORING_KEY, _score_batch(lead_records(1_000, seed=62)), threads=3, keep_alive=False)
    single = Traffic(server.url, SCORING_KEY, _score_one(lead_records(100, seed=63)), threads=1, keep_alive=False)
    batch.start()
    single.start()
    time.sleep(2.0)
    signalled = time.monotonic()
    exit_code = server.terminate()
    batch.stop()
    single.stop()

    attempts = batch.attempts + single.attempts
    in_flight = [a for a in attempts if a.started < signalled - IN_FLIGHT_MARGIN_S < a.ended]
    sent_before = [a for a in attempts if a.started < signalled - IN_FLIGHT_MARGIN_S]
    assert exit_code in (0, -15)
    assert in_flight, "no request was in flight at SIGTERM; the test proved nothing"
    assert {a.outcome for a in sent_before} == {200}, [a for a in sent_before if a.outcome != 200]
    # sent after SIGTERM: answered, or refused at the socket (the listener closes), never an HTTP error
    assert all(a.outcome == 200 or isinstance(a.outcome, str) for a in attempts), Counter(a.outcome for a in attempts)
    log = server.log_text()
    assert "Application shutdown complete" in log and "Traceback" not in log
    with sqlite3.connect(tmp_path / "scores.db") as db:
        (stored,) = db.execute("select count(*) from scores").fetchone()
    assert stored == batch.scored() + single.scored()
    report(
        "Faults: SIGTERM under load",
        ["requests", "in flight at SIGTERM", "answered 200", "refused after SIGTERM", "scores answered", "in log"],
        [
            [
                str(len(attempts)),
                str(len(in_flight)),
                str(sum(a.outcome == 200 for a in attempts)),
                str(sum(isinstance(a.outcome, str) for a in attempts)),
                f"{batch.scored() + single.scored():,}",
                f"{stored:,}",
            ]
        ],
    )


# ---- bundles that must not serve -----------------------------------------------------------------------------


def _flip_a_payload_byte(bundle_dir: Path) -> None:
    payload = bundle_dir / "bundle.joblib"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))


def _edit_sidecar(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def tamper(bundle_dir: Path) -> None:
        sidecar = bundle_dir / "bundle.json"
        data = json.loads(sidecar.read_text())
        change(data)
        sidecar.write_text(json.dumps(data))

    return tamper


def _rename_version(data: dict) -> None:
    data["version"] = "20990101-000000-000000"


def _other_scikit_learn(data: dict) -> None:
    """What a bundle written by another scikit-learn says about itself (its checksum still matches)."""
    installed = library_versions()["scikit-learn"]
    data["versions"]["scikit-learn"] = "1.4.2" if installed != "1.4.2" else "1.5.0"


def _failing_smoke_test(bundle_dir: Path) -> None:
    """A well-formed, checksummed bundle whose recorded example scores its pipeline no longer reproduces."""
    bundle = load_bundle(bundle_dir)
    bundle.example_probabilities = [min(1.0, p + 0.05) for p in bundle.example_probabilities]
    rewritten = bundle_dir.with_name(bundle_dir.name + ".rewritten")
    save_bundle(bundle, rewritten)
    for path in bundle_dir.iterdir():
        path.unlink()
    for path in rewritten.iterdir():
        path.rename(bundle_dir / path.name)
    rewritten.rmdir()


TAMPERING = [
    pytest.param(_flip_a_payload_byte, "checksum mismatch", id="payload-bytes"),
    pytest.param(_edit_sidecar(_rename_version), "does not hold bundle", id="sidecar-edited"),
    pytest.param(_edit_sidecar(lambda data: data.update(sha256="0" * 64)), "checksum mismatch", id="sidecar-checksum"),
    pytest.param(_edit_sidecar(_other_scikit_learn), "written with scikit-learn", id="other-scikit-learn"),
    pytest.param(_failing_smoke_test, "failed its smoke test", id="smoke-test-fails"),
]


@pytest.mark.parametrize(("tamper", "reason"), TAMPERING)
def test_a_bad_bundle_is_refused_at_start(
    make_client: AppFactory, models_folder: ModelsFolder, tamper: Callable[[Path], None], reason: str
) -> None:
    """Never served: not ready, scoring answers 503, and the reason says what was wrong."""
    tamper(models_folder.root / models_folder.second)
    models_folder.point_champion_at(models_folder.second)
    client = make_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and reason in ready.json()["reason"], ready.text
    assert client.post("/v1/leads/score", json={}).status_code == 503


@pytest.mark.parametrize(("tamper", "reason"), TAMPERING)
def test_a_bad_bundle_is_refused_at_reload_and_the_old_model_keeps_serving(
    make_client: AppFactory, models_folder: ModelsFolder, tamper: Callable[[Path], None], reason: str
) -> None:
    client = make_client()
    failed_before = _failed_reloads(client)
    tamper(models_folder.root / models_folder.second)
    models_folder.point_champion_at(models_folder.second)
    reply = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert reply.status_code == 409 and reason in reply.json()["reason"], reply.text
    assert client.post("/v1/leads/score", json={}).json()["model_version"] == models_folder.first
    assert client.get("/readyz").json()["model_version"] == models_folder.first
    assert _failed_reloads(client) == failed_before + 1


def _failed_reloads(client: TestClient) -> float:
    """The failed-reload counter (process-wide: every app in this test process adds to it)."""
    found = re.search(r'^leadscore_reloads_total\{result="failed"\} (\S+)$', client.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
