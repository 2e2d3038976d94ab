"""DELETE /v1/leads/{lead_id} in-process, over a real bundle and a real SQLite score log."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY, SCORING_KEY, AppFactory
from training.synthetic import generate_leads

ADMIN = {"X-API-Key": ADMIN_KEY}


def _leads(n: int, seed: int) -> list[dict]:
    frame = generate_leads(n=n, seed=seed).drop(columns=["converted", "deal_value", "account_manager_assigned"])
    frame["created_at"] = frame["created_at"].astype(str)
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_erasing_a_lead_needs_an_admin_key_and_says_what_it_removed(client: TestClient) -> None:
    leads = _leads(3, seed=21)
    target, mate = leads[0]["lead_id"], leads[1]["lead_id"]
    assert client.post("/v1/leads/score", json=leads[0]).status_code == 200
    assert client.post("/v1/leads/score/batch", json={"leads": leads}).status_code == 200
    assert client.post(f"/v1/leads/{target}/outcome", json={"converted": True}).status_code == 200

    assert client.delete(f"/v1/leads/{target}").status_code == 403  # the scoring key
    assert client.delete(f"/v1/leads/{target}", headers={"X-API-Key": "wrong"}).status_code == 401
    reply = client.delete(f"/v1/leads/{target}", headers=ADMIN)  # scores just acknowledged are erased too

    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "lead_id": target,
        "erased": {
            "scores": 2,
            "logged_fields": 2,
            "score_batches_rewritten": 1,
            "score_batches_deleted": 1,
            "index_entries": 0,
            "outcomes": 1,
            "dead_letters": 0,
        },
    }
    assert client.get(f"/v1/leads/{target}/scores").json() == {"lead_id": target, "scores": [], "outcome": None}
    assert len(client.get(f"/v1/leads/{mate}/scores").json()["scores"]) == 1
    again = client.delete(f"/v1/leads/{target}", headers=ADMIN)
    assert again.status_code == 404 and target not in again.text


def test_erasure_is_off_without_admin_keys(make_client: AppFactory) -> None:
    client = make_client(admin_keys=[])
    reply = client.delete("/v1/leads/L1", headers={"X-API-Key": SCORING_KEY})
    assert reply.status_code == 403 and "admin routes are disabled" in reply.text
