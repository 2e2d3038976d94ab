"""The HTTP API in-process, over a real bundle and a real SQLite score log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import jsonschema_rs
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY, SCORING_KEY, AppFactory, ModelsFolder, Trained
from training.synthetic import generate_leads


def _lead(trained: Trained, seed: int = 5, **changes: object) -> dict:
    frame = generate_leads(n=1, seed=seed)
    record = frame.astype(object).where(frame.notna(), None).to_dict("records")[0]
    record = {k: v for k, v in record.items() if k in {*trained.bundle.fields, "lead_id", "email", "full_name"}}
    record.update(changes)
    return record


def _leads(n: int, seed: int = 8) -> list[dict]:
    frame = generate_leads(n=n, seed=seed).drop(columns=["converted", "deal_value", "account_manager_assigned"])
    frame["created_at"] = frame["created_at"].astype(str)
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_score_one_lead(client: TestClient, trained: Trained) -> None:
    lead = _lead(trained)
    reply = client.post("/v1/leads/score", json=lead)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = trained.bundle.predict_proba(pd.DataFrame([lead]))[0]
    assert body["probability"] == pytest.approx(expected, abs=1e-9)
    assert body["lead_id"] == lead["lead_id"]
    assert body["grade"] in {"A", "B", "C", "D"} and 0 <= body["percentile"] <= 100
    assert body["model_version"] == trained.bundle.version
    assert body["reasons"] and {"field", "value", "contribution"} <= set(body["reasons"][0])
    assert body["scored_at"].endswith(("Z", "+00:00"))


def test_reasons_can_be_skipped_or_all_returned(client: TestClient, trained: Trained) -> None:
    lead = _lead(trained)
    assert client.post("/v1/leads/score?reasons=false", json=lead).json()["reasons"] is None
    every = client.post("/v1/leads/score?reasons=all", json=lead).json()
    p = every["probability"]
    total = every["base_value"] + sum(r["contribution"] for r in every["reasons"])
    assert total == pytest.approx(np.log(p / (1 - p)), abs=1e-6)


def test_missing_fields_and_unseen_categories_are_scored_with_warnings(client: TestClient) -> None:
    reply = client.post("/v1/leads/score", json={"lead_source": "carrier-pigeon", "owns_home": True})
    assert reply.status_code == 200
    warnings = " ".join(reply.json()["warnings"])
    assert "unseen category 'carrier-pigeon'" in warnings and "missing field 'contact_role'" in warnings


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"pages_viewed": "lots"}, "pages_viewed", "number"),
        ({"owns_home": "maybe"}, "owns_home", "boolean"),
        ({"lead_source": "x" * 500}, "lead_source", "at most 200 characters"),
        ({"lead_source": {"nested": 1}}, "lead_source", ""),
        ({"favourite_colour": "teal"}, "favourite_colour", "Extra inputs are not permitted"),
        ({"stated_budget": [1, 2]}, "stated_budget", "number"),
        ({"lead_source": True}, "lead_source", "valid string"),
        ({"lead_source": 2.5}, "lead_source", "valid string"),
    ],
)
def test_malformed_leads_get_422_naming_the_field(client: TestClient, body: dict, field: str, problem: str) -> None:
    reply = client.post("/v1/leads/score", json=body)
    assert reply.status_code == 422, reply.text
    details = reply.json()["detail"]
    named = [d for d in details if d["field"] == field]
    assert named, details
    assert problem in named[0]["msg"]
    assert "input" not in named[0]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"pages_viewed": NaN}',
        b'{"time_on_site_min": Infinity}',
        b'{"stated_budget": -Infinity}',
        b"not json",
        b"",
        b"[1, 2]",
        b'"a string"',
        b"{" * 5000,
        b'{"pages_viewed": 1e999}',
    ],
)
def test_impossible_numbers_and_broken_json_are_4xx(client: TestClient, raw: bytes) -> None:
    reply = client.post("/v1/leads/score", content=raw, headers={"content-type": "application/json"})
    assert 400 <= reply.status_code < 500, (raw[:40], reply.status_code, reply.text)


def test_oversized_bodies_get_413(make_client: AppFactory, trained: Trained) -> None:
    client = make_client(max_body_bytes=2_000)
    big = _lead(trained, full_name="x" * 150) | {"email": "y" * 150}
    assert client.post("/v1/leads/score", json=big).status_code == 200
    reply = client.post("/v1/leads/score/batch", json={"leads": [big] * 20})
    assert reply.status_code == 413


def test_batch_scores_good_rows_and_reports_bad_ones(client: TestClient, trained: Trained) -> None:
    leads = _leads(50)
    leads[3]["pages_viewed"] = "many"
    leads[17]["mystery"] = 1
    reply = client.post("/v1/leads/score/batch", json={"leads": leads})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["scored"] == 48 and body["failed"] == 2
    assert [e["index"] for e in body["errors"]] == [3, 17]
    assert body["errors"][0]["lead_id"] == leads[3]["lead_id"]
    assert body["errors"][0]["errors"][0]["loc"] == ["pages_viewed"]
    good = [lead for i, lead in enumerate(leads) if i not in (3, 17)]
    expected = trained.bundle.predict_proba(pd.DataFrame(good))
    got = np.array([r["probability"] for r in body["results"]])
    assert np.max(np.abs(got - expected)) <= 1e-9
    assert [r["lead_id"] for r in body["results"]] == [lead["lead_id"] for lead in good]


def test_batch_limits_and_shape(make_client: AppFactory) -> None:
    client = make_client(max_batch=10)
    assert client.post("/v1/leads/score/batch", json={"leads": _leads(11)}).status_code == 413
    assert client.post("/v1/leads/score/batch", json={"leads": _leads(10)}).status_code == 200
    assert client.post("/v1/leads/score/batch", json=[{}]).status_code == 422
    assert client.post("/v1/leads/score/batch", json={"leads": "no"}).status_code == 422
    assert (
        client.post("/v1/leads/score/batch", content=b"{bad", headers={"content-type": "application/json"}).status_code
        == 422
    )


def test_outcomes_are_idempotent_and_keep_history(client: TestClient, trained: Trained) -> None:
    lead = _lead(trained, lead_id="L-outcome-1")
    client.post("/v1/leads/score", json=lead)
    first = client.post("/v1/leads/L-outcome-1/outcome", json={"converted": False})
    assert first.status_code == 200 and first.json()["revision"] == 1
    second = client.post(
        "/v1/leads/L-outcome-1/outcome",
        json={"converted": True, "value": 1200.5, "occurred_at": "2026-01-02T03:04:05Z"},
    )
    assert second.json()["revision"] == 2
    client.app.state.store.flush()  # scores are written in the background; outcomes before the reply
    history = client.get("/v1/leads/L-outcome-1/scores").json()
    assert history["outcome"]["converted"] is True and history["outcome"]["value"] == 1200.5
    assert len(history["scores"]) == 1 and history["scores"][0]["model_version"] == trained.bundle.version
    never_scored = client.post("/v1/leads/L-never-seen/outcome", json={"converted": True})
    assert never_scored.status_code == 200
    assert client.post("/v1/leads/L-x/outcome", json={"converted": "perhaps"}).status_code == 422
    assert client.post("/v1/leads/L-x/outcome", json={"converted": True, "value": -5}).status_code == 422


def test_pii_is_accepted_but_never_stored(client: TestClient, trained: Trained, tmp_path: Path) -> None:
    lead = _lead(trained, email="planted.pii.7731@example.com", full_name="Planted Person")
    assert client.post("/v1/leads/score", json=lead).status_code == 200
    client.app.state.store.flush()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("scores.db*"))
    assert b"planted.pii.7731" not in raw and b"Planted Person" not in raw
    with sqlite3.connect(tmp_path / "scores.db") as db:
        (columns,) = db.execute("select columns from score_batches order by id desc limit 1").fetchone()
    stored = json.loads(columns)["features"]
    assert "owns_home" in stored and not {"email", "full_name"} & set(stored)


def test_model_card_importance_and_profile(client: TestClient, trained: Trained) -> None:
    card = client.get("/v1/model").json()
    assert card["version"] == trained.bundle.version
    assert card["metrics"]["roc_auc"] == pytest.approx(trained.bundle.metrics["roc_auc"])
    assert card["metrics"]["model_family"] == trained.bundle.metrics["model_family"]
    cv = card["metrics"]["cv"]["metrics"]
    assert cv["roc_auc"]["mean"] == pytest.approx(trained.bundle.metrics["cv"]["metrics"]["roc_auc"]["mean"])
    assert {f["name"] for f in card["schema"]} == set(trained.bundle.fields)
    assert "email" in card["ignored_fields"]
    importance = client.get("/v1/model/importance").json()["importance"]
    assert importance[0]["field"] == trained.bundle.importance[0]["field"]
    profile = client.get("/v1/model/profile").json()
    assert profile["traits"][0]["field"] == "owns_home"


def test_openapi_shows_the_models_real_fields(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    lead = schema["components"]["schemas"]["Lead"]
    assert {"owns_home", "contact_role", "lead_source", "email"} <= set(lead["properties"])
    assert lead["additionalProperties"] is False
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "value", [True, False, None, 0, 1, 1.0, "yes", "YES", "Off", "t", "0", 2, -1, "maybe", " yes", ""]
)
def test_a_boolean_field_accepts_exactly_what_its_schema_documents(client: TestClient, value: object) -> None:
    owns_home = client.get("/openapi.json").json()["components"]["schemas"]["Lead"]["properties"]["owns_home"]
    documented = jsonschema_rs.Draft202012Validator(owns_home).is_valid(value)
    reply = client.post("/v1/leads/score", json={"owns_home": value})
    assert reply.status_code == (200 if documented else 422), (value, reply.text)


def test_monitoring_reports_drift_and_live_performance(client: TestClient, trained: Trained) -> None:
    leads = _leads(400, seed=31)
    outcomes = generate_leads(n=400, seed=31)["converted"].to_numpy()
    for start in range(0, 400, 100):
        assert client.post("/v1/leads/score/batch", json={"leads": leads[start : start + 100]}).status_code == 200
    before = client.get("/v1/monitoring").json()
    assert before["performance"]["roc_auc"] is None and before["performance"]["leads_with_outcomes"] == 0
    for lead, converted in zip(leads, outcomes, strict=True):
        client.post(f"/v1/leads/{lead['lead_id']}/outcome", json={"converted": bool(converted)})
    client.app.state.store.flush()
    report = client.get("/v1/monitoring").json()
    assert report["window"]["scored_leads"] == 400
    assert report["performance"]["leads_with_outcomes"] == 400
    assert report["performance"]["roc_auc"] > 0.7
    assert len(report["performance"]["calibration_by_decile"]) == 10
    assert report["drift"]["fields"]["owns_home"]["psi"] < 0.1
    assert report["drift"]["status"] == "green"


def test_drift_is_flagged_when_the_leads_change(client: TestClient) -> None:
    leads = _leads(300, seed=41)
    for lead in leads:
        lead["owns_home"] = True
        lead["lead_source"] = "cold_list"
    client.post("/v1/leads/score/batch", json={"leads": leads})
    client.app.state.store.flush()
    drift = client.get("/v1/monitoring").json()["drift"]
    assert drift["fields"]["owns_home"]["status"] == "red"
    assert drift["fields"]["lead_source"]["status"] == "red"
    assert drift["status"] == "red"


ROUTES = [
    ("post", "/v1/leads/score", {"json": {}}),
    ("post", "/v1/leads/score/batch", {"json": {"leads": []}}),
    ("post", "/v1/leads/L1/outcome", {"json": {"converted": True}}),
    ("post", "/v1/leads/what-if", {"json": {}}),
    ("get", "/v1/leads/L1/scores", {}),
    ("get", "/v1/model", {}),
    ("get", "/v1/model/importance", {}),
    ("get", "/v1/model/profile", {}),
    ("get", "/v1/model/answers", {}),
    ("post", "/v1/leads/next-question", {"json": {}}),
    ("get", "/v1/monitoring", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), ROUTES)
def test_reader_routes_need_a_key(client: TestClient, method: str, path: str, kwargs: dict) -> None:
    call = getattr(client, method)
    assert call(path, headers={"X-API-Key": ""}, **kwargs).status_code == 401
    assert call(path, headers={"X-API-Key": "wrong"}, **kwargs).status_code == 401
    assert call(path, headers={"X-API-Key": SCORING_KEY}, **kwargs).status_code == 200
    assert call(path, headers={"X-API-Key": ADMIN_KEY}, **kwargs).status_code == 200


def test_admin_route_needs_an_admin_key(client: TestClient) -> None:
    assert client.post("/v1/admin/reload", headers={"X-API-Key": ""}).status_code == 401
    assert client.post("/v1/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/v1/admin/reload", headers={"X-API-Key": SCORING_KEY}).status_code == 403
    assert client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_open_access_serves_reads_but_disables_admin(make_client: AppFactory) -> None:
    client = make_client(api_keys=[], admin_keys=[])
    assert client.get("/v1/model", headers={"X-API-Key": ""}).status_code == 200
    assert client.post("/v1/admin/reload", headers={"X-API-Key": ""}).status_code == 403


def test_health_probes_need_no_key_and_metrics_need_one_from_elsewhere(client: TestClient, trained: Trained) -> None:
    assert client.get("/healthz", headers={"X-API-Key": ""}).json() == {"status": "ok"}
    assert client.get("/readyz", headers={"X-API-Key": ""}).json()["model_version"] == trained.bundle.version
    client.post("/v1/leads/score", json={})
    assert client.get("/metrics", headers={"X-API-Key": ""}).status_code == 401  # the test client is not loopback
    text = client.get("/metrics").text
    assert 'leadscore_requests_total{method="POST",route="/v1/leads/score",status="200"}' in text
    assert f'leadscore_model_info{{version="{trained.bundle.version}"}} 1.0' in text
    assert "leadscore_score_log_queue_depth" in text
    assert SCORING_KEY not in text and ADMIN_KEY not in text


def test_reload_swaps_to_the_new_champion(client: TestClient, models_folder: ModelsFolder) -> None:
    models_folder.point_champion_at(models_folder.second)
    reply = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert reply.status_code == 200 and reply.json()["model_version"] == models_folder.second
    assert reply.json()["previous_version"] == models_folder.first
    assert client.post("/v1/leads/score", json={}).json()["model_version"] == models_folder.second


def test_a_corrupt_champion_is_refused_and_the_old_model_keeps_serving(
    client: TestClient, models_folder: ModelsFolder
) -> None:
    payload = models_folder.root / models_folder.second / "bundle.joblib"
    payload.write_bytes(payload.read_bytes()[:-10] + b"0123456789")
    models_folder.point_champion_at(models_folder.second)
    reply = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert reply.status_code == 409
    assert "checksum mismatch" in reply.json()["reason"]
    assert client.post("/v1/leads/score", json={}).json()["model_version"] == models_folder.first


def test_not_ready_until_a_model_loads(make_client: AppFactory, models_folder: ModelsFolder) -> None:
    models_folder.champion.unlink()
    client = make_client()
    assert client.get("/readyz").status_code == 503
    assert client.post("/v1/leads/score", json={}).status_code == 503
    assert client.get("/healthz").status_code == 200
    models_folder.point_champion_at(models_folder.first)
    assert client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_polling_picks_up_a_new_champion(make_client: AppFactory, models_folder: ModelsFolder) -> None:
    import time

    client = make_client(reload_interval_s=0.2)
    assert client.get("/readyz").json()["model_version"] == models_folder.first
    models_folder.point_champion_at(models_folder.second)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and client.get("/readyz").json()["model_version"] != models_folder.second:
        time.sleep(0.1)
    assert client.get("/readyz").json()["model_version"] == models_folder.second


def test_serves_the_registry_champion(make_client: AppFactory, trained: Trained, tmp_path: Path) -> None:
    client = make_client(
        model_uri="models:/leadscore@champion",
        mlflow_tracking_uri=trained.env.tracking_uri,
        model_dir=tmp_path / "cache" / "champion",
    )
    card = client.get("/v1/model").json()
    assert card["version"] == trained.bundle.version
    assert ".registry" in card["source"]
    assert client.post("/v1/leads/score", json={}).status_code == 200


def test_an_unknown_registry_alias_is_not_ready(make_client: AppFactory, trained: Trained, tmp_path: Path) -> None:
    client = make_client(
        model_uri="models:/leadscore@nonexistent",
        mlflow_tracking_uri=trained.env.tracking_uri,
        model_dir=tmp_path / "cache" / "champion",
    )
    reply = client.get("/readyz")
    assert reply.status_code == 503 and "no model at models:/leadscore@nonexistent" in reply.json()["reason"]


def test_a_bundle_that_is_not_a_pickle_is_refused_at_reload(client: TestClient, models_folder: ModelsFolder) -> None:
    """Checksum and sidecar rewritten to match garbage: unpickling fails, and the old model keeps serving."""
    import hashlib

    bundle_dir = models_folder.root / models_folder.second
    garbage = b"not a pickle at all"
    (bundle_dir / "bundle.joblib").write_bytes(garbage)
    sidecar = json.loads((bundle_dir / "bundle.json").read_text())
    sidecar["sha256"] = hashlib.sha256(garbage).hexdigest()
    (bundle_dir / "bundle.json").write_text(json.dumps(sidecar))
    models_folder.point_champion_at(models_folder.second)
    reply = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert reply.status_code == 409 and reply.json()["reason"]
    assert client.post("/v1/leads/score", json={}).json()["model_version"] == models_folder.first


@pytest.mark.parametrize("fast_lane", [True, False], ids=["lane", "routes"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
def test_scoring_routes_take_only_json_bodies(
    make_client: AppFactory, content_type: str | None, fast_lane: bool
) -> None:
    """A web page can post these across sites without asking first; it cannot post application/json."""
    client = make_client(fast_lane=fast_lane)
    headers = {"content-type": content_type} if content_type else {}
    for path, body in (("/v1/leads/score", b'{"lead_id": "L"}'), ("/v1/leads/score/batch", b'{"leads": []}')):
        refused = client.post(path, content=body, headers=headers)
        assert refused.status_code == 415 and "application/json" in refused.json()["detail"], refused.text
        accepted = client.post(path, content=body, headers={"content-type": "application/json; charset=utf-8"})
        assert accepted.status_code == 200, accepted.text
    wrong_key = client.post("/v1/leads/score", content=b"{}", headers=headers | {"X-API-Key": "wrong"})
    assert wrong_key.status_code == 401  # the key is checked first


@pytest.mark.parametrize(
    ("settings", "docs", "metrics"),
    [
        ({}, 200, 401),
        ({"docs_access": "key", "metrics_access": "key"}, 401, 401),
        ({"docs_access": "off", "metrics_access": "open"}, 404, 200),
    ],
    ids=["defaults", "key", "off-and-open"],
)
def test_docs_and_metrics_are_exposed_as_configured(
    make_client: AppFactory, settings: dict, docs: int, metrics: int
) -> None:
    """Without a key, a caller from another machine sees what the settings allow; with a key, all but what is off."""
    client = make_client(**settings)
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path, headers={"X-API-Key": ""}).status_code == docs, path
        assert client.get(path).status_code == (404 if docs == 404 else 200), path
    assert client.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == metrics
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "routes"])
def test_single_and_batch_replies_carry_reasons_unless_asked_not_to(
    make_client: AppFactory, trained: Trained, lane: bool
) -> None:
    client = make_client(fast_lane=lane)
    lead = _lead(trained)
    single = client.post("/v1/leads/score", json=lead).json()
    batch = client.post("/v1/leads/score/batch", json={"leads": [lead, lead]}).json()["results"]
    assert single["reasons"] and [r["reasons"] for r in batch] == [single["reasons"]] * 2
    assert [r["base_value"] for r in batch] == [single["base_value"]] * 2
    assert client.post("/v1/leads/score?reasons=false", json=lead).json()["reasons"] is None
    skipped = client.post("/v1/leads/score/batch?reasons=false", json={"leads": [lead, lead]}).json()["results"]
    assert [r["reasons"] for r in skipped] == [None, None]
    documented = client.get("/openapi.json").json()["paths"]
    defaults = {
        path: next(p for p in documented[path]["post"]["parameters"] if p["name"] == "reasons")["schema"]["default"]
        for path in ("/v1/leads/score", "/v1/leads/score/batch")
    }
    assert set(defaults.values()) == {"true"}


def test_metrics_label_the_page_and_docs_routes_by_their_path(client: TestClient) -> None:
    for path in ("/", "/dashboard", "/dashboard/assets/dashboard.js", "/v1/dashboard/access", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    client.get("/no/such/page")
    text = client.get("/metrics").text
    for route in ("/", "/dashboard", "/dashboard/assets/{name}", "/v1/dashboard/access", "/docs", "/openapi.json"):
        assert f'leadscore_requests_total{{method="GET",route="{route}",status="200"}}' in text, route
    assert 'route="unmatched",status="404"' in text
    assert 'route="unmatched",status="200"' not in text


def test_the_docs_page_loads_swagger_ui_from_this_service(client: TestClient) -> None:
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", page.text), "the page loads something from elsewhere"
    assets = re.findall(r"(?:src|href)=\"(/docs/assets/[^\"]+)\"", page.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        reply = client.get(asset)
        assert reply.status_code == 200 and len(reply.content) > 500, asset
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "default-src 'none'" in policy
    assert client.get("/docs/assets/__init__.py").status_code == 404
