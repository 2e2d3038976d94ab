"""The scoring lane answers exactly as the documented FastAPI routes do, for good and bad requests alike."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from service.lane import ScoringLane
from tests.conftest import ADMIN_KEY, AppFactory, Trained

GOOD = {"lead_id": "L-1", "lead_source": "referral", "contact_role": "decision_maker", "owns_home": True}
CASES = [
    ("/v1/leads/score", {}, GOOD),
    ("/v1/leads/score?reasons=all", {}, GOOD),
    ("/v1/leads/score?reasons=false", {}, GOOD | {"email": "someone@example.com"}),
    ("/v1/leads/score?reasons=maybe", {}, GOOD),
    ("/v1/leads/score", {}, {"pages_viewed": "lots", "favourite_colour": "teal"}),
    ("/v1/leads/score", {"X-API-Key": "wrong"}, GOOD),
    ("/v1/leads/score", {"X-API-Key": ADMIN_KEY}, GOOD),
    ("/v1/leads/score/batch", {}, {"leads": [GOOD, {"pages_viewed": "lots"}, GOOD | {"lead_id": "L-2"}]}),
    ("/v1/leads/score/batch?reasons=top", {}, {"leads": [GOOD] * 100}),
    ("/v1/leads/score/batch", {}, {"leads": [GOOD] * 11}),
    ("/v1/leads/score/batch", {}, [GOOD]),
    ("/v1/leads/score/batch", {"X-API-Key": ""}, {"leads": [GOOD]}),
]


def _comparable(reply: dict | list) -> dict | list:
    """Replies without the moment of scoring."""
    if isinstance(reply, dict):
        return {k: _comparable(v) for k, v in reply.items() if k != "scored_at"}
    if isinstance(reply, list):
        return [_comparable(item) for item in reply]
    return reply


@pytest.mark.parametrize(("path", "headers", "body"), CASES)
def test_lane_and_routes_answer_alike(
    make_client: AppFactory, trained: Trained, path: str, headers: dict, body: dict
) -> None:
    lane = make_client(max_batch=10)
    routes = make_client(fast_lane=False, max_batch=10)
    replies = [client.post(path, json=body, headers=headers) for client in (lane, routes)]
    assert replies[0].status_code == replies[1].status_code
    assert replies[0].headers["content-type"] == replies[1].headers["content-type"] == "application/json"
    assert _comparable(replies[0].json()) == _comparable(replies[1].json())


def _requests_counted(status: str) -> float:
    labels = {"route": "/v1/leads/score", "method": "POST", "status": status}
    return REGISTRY.get_sample_value("leadscore_requests_total", labels) or 0.0


def test_lane_requests_are_counted_by_route(make_client: AppFactory) -> None:
    client = make_client()
    assert any(entry.cls is ScoringLane for entry in client.app.user_middleware)
    before = _requests_counted("200"), _requests_counted("422")
    client.post("/v1/leads/score?reasons=false", json=GOOD)
    client.post("/v1/leads/score", json={"pages_viewed": "lots"})
    client.post("/v1/leads/score", json={"pages_viewed": "many"})
    assert (_requests_counted("200") - before[0], _requests_counted("422") - before[1]) == (1.0, 2.0)


def test_lane_refuses_oversized_bodies(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=2_000)
    reply = client.post("/v1/leads/score/batch", json={"leads": [GOOD] * 100})
    assert reply.status_code == 413
