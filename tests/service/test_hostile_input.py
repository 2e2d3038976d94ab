"""Input that the databases cannot store, or that Python cannot represent, gets a 422 naming the field, on both
databases; the single-lead and batch routes accept exactly the same leads; nothing reaches the score log
that the score log would refuse."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from service.store import ScoreRecord
from tests.conftest import AppFactory

# leads the request path must refuse, each with the field the 422 must name
UNSTORABLE = [
    ({"lead_id": "P", "region": 2**64}, "region"),
    ({"lead_id": "P", "region": 2**63}, "region"),
    ({"lead_id": "P", "region": -(2**63) - 1}, "region"),
    ({"lead_id": 2**64}, "lead_id"),
    ({"lead_id": "a\x00b"}, "lead_id"),
    ({"lead_id": "P", "lead_source": "x\x00"}, "lead_source"),
    ({"lead_id": "P", "full_name": "\x00"}, "full_name"),  # accepted and ignored, yet refused the same way
]
# leads at the edges of what can be stored, which both routes must accept
STORABLE = [
    {"lead_id": "P", "region": 2**63 - 1},
    {"lead_id": -(2**63), "region": -(2**63)},
    {"lead_id": "tab\tand\x01\x1f\x7f", "lead_source": "\u2028\ufeff\U0010ffff"},
    {"lead_id": "P", "stated_budget": 2**70},  # a number field reads it as the float it is
    {"lead_id": "P", "phone": 2**70},  # an ignored field takes any number, and never stores it
]
CALENDAR_EDGES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-00:01"]


@pytest.fixture()
def db_client(make_client: AppFactory, database_url: str) -> TestClient:
    """The real app over an empty SQLite file or PostgreSQL database."""
    return make_client(database_url=database_url)


def _named(problems: list[dict], field: str) -> bool:
    """Whether a 422's problems (or a batch row's errors, which carry only the location) name this field."""
    return any(problem.get("field", problem["loc"][0]) == field for problem in problems)


@pytest.mark.parametrize(("lead", "field"), UNSTORABLE, ids=[f"{f}-{i}" for i, (_, f) in enumerate(UNSTORABLE)])
def test_unstorable_values_get_422_naming_the_field_on_both_routes(
    db_client: TestClient, lead: dict, field: str
) -> None:
    for reasons in ("true", "all", "false"):
        one = db_client.post(f"/v1/leads/score?reasons={reasons}", json=lead)
        assert one.status_code == 422, one.text
        assert _named(one.json()["detail"], field), one.json()
        batch = db_client.post(f"/v1/leads/score/batch?reasons={reasons}", json={"leads": [lead, {"lead_id": "ok"}]})
        assert batch.status_code == 200, batch.text
        body = batch.json()
        assert (body["scored"], body["failed"]) == (1, 1)
        assert body["errors"][0]["index"] == 0 and _named(body["errors"][0]["errors"], field)
    db_client.app.state.store.flush()
    stats = db_client.app.state.store.stats
    assert (stats.written, stats.failed) == (3, 0)


@pytest.mark.parametrize("lead", STORABLE)
def test_values_at_the_edges_are_accepted_and_stored_on_both_routes(db_client: TestClient, lead: dict) -> None:
    one = db_client.post("/v1/leads/score?reasons=all", json=lead)
    batch = db_client.post("/v1/leads/score/batch?reasons=all", json={"leads": [lead] * 70})  # past the inline size
    assert one.status_code == 200, one.text
    assert batch.status_code == 200 and batch.json()["scored"] == 70, batch.text
    store = db_client.app.state.store
    store.flush()
    assert (store.stats.written, store.stats.failed) == (71, 0)
    [stored] = store.score_history(str(lead["lead_id"]), limit=1)
    assert stored["probability"] == pytest.approx(one.json()["probability"], abs=1e-12)


INVALID_UTF8 = [
    b'{"leads":[{"lead_id":"\xc0\xaf"}]}',  # an overlong "/"
    b'{"leads":[{"lead_id":"\xe0\x80\xaf"}]}',  # the same, three bytes long
    b'{"leads":[{"lead_id":"\xed\xa0\x80"}]}',  # a UTF-16 surrogate encoded as UTF-8
    b'{"leads":[{"lead_id":"\xff"}]}',
    b'{"leads":[{"lead_id":"\\ud800"}]}',  # a lone surrogate escape
]


def test_invalid_utf8_gets_422_on_both_routes(db_client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    for raw in INVALID_UTF8:
        batch = db_client.post("/v1/leads/score/batch", content=raw, headers=headers)
        assert batch.status_code == 422, (raw, batch.text)
        one = db_client.post("/v1/leads/score", content=raw[len(b'{"leads":[') : -2], headers=headers)
        assert one.status_code == 422, (raw, one.text)


def test_outcome_times_beyond_the_calendar_in_utc_get_422(db_client: TestClient) -> None:
    for occurred_at in CALENDAR_EDGES:
        reply = db_client.post("/v1/leads/L-1/outcome", json={"converted": True, "occurred_at": occurred_at})
        assert reply.status_code == 422, (occurred_at, reply.text)
        assert _named(reply.json()["detail"], "occurred_at")


def test_outcome_times_at_the_calendars_edge_in_utc_are_stored(db_client: TestClient) -> None:
    for at in ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+14:00"]:
        reply = db_client.post("/v1/leads/L-1/outcome", json={"converted": True, "occurred_at": at})
        assert reply.status_code == 200, reply.text
    assert db_client.get("/v1/leads/L-1/scores").json()["outcome"]["revision"] == 3


def test_unstorable_ids_in_paths_get_422(db_client: TestClient) -> None:
    for lead_id in ("a%00b", "%00"):
        outcome = db_client.post(f"/v1/leads/{lead_id}/outcome", json={"converted": False})
        scores = db_client.get(f"/v1/leads/{lead_id}/scores")
        assert (outcome.status_code, scores.status_code) == (422, 422), (outcome.text, scores.text)
        assert _named(outcome.json()["detail"], "lead_id") and _named(scores.json()["detail"], "lead_id")
    # undecodable bytes arrive as U+FFFD, which is storable text
    outcome = db_client.post("/v1/leads/a%C0%AFb/outcome", json={"converted": False})
    assert (outcome.status_code, db_client.get("/v1/leads/a%C0%AFb/scores").status_code) == (200, 200)


def test_scores_the_database_refuses_are_counted_in_metrics(db_client: TestClient) -> None:
    """Whatever still reaches the writer and is refused shows in /metrics and in the dead letters."""
    store = db_client.app.state.store
    good = db_client.post("/v1/leads/score/batch", json={"leads": [{"lead_id": f"L{i}"} for i in range(5)]})
    assert good.status_code == 200
    store.enqueue(ScoreRecord("bad\x00id", "v1", 0.5, "A", datetime.now(UTC), {}))  # past the request checks
    store.flush()

    exposition = db_client.get("/metrics").text
    assert "leadscore_score_log_rejected 1.0" in exposition and "leadscore_score_log_written 5.0" in exposition
    assert [letter["lead_id"] for letter in store.rejected_scores()] == ["bad\\x00id"]


@pytest.mark.parametrize("fast_lane", [True, False], ids=["lane", "routes"])
def test_durable_replies_come_after_the_commit(make_client: AppFactory, database_url: str, fast_lane: bool) -> None:
    """LEADSCORE_SCORE_LOG_MODE=durable: once the reply is in, the score is in the database; a score that cannot
    be stored gets a 503 rather than a 200."""
    client = make_client(database_url=database_url, score_log_mode="durable", score_log_flush_s=5, fast_lane=fast_lane)
    store = client.app.state.store
    assert client.post("/v1/leads/score?reasons=false", json={"lead_id": "D-1"}).status_code == 200
    assert [row["probability"] for row in store.score_history("D-1")]  # no flush: committed before the reply
    batch = client.post("/v1/leads/score/batch", json={"leads": [{"lead_id": f"D-{i}"} for i in range(2, 80)]})
    assert batch.status_code == 200 and batch.json()["scored"] == 78
    assert store.stats.written == 79 and store.stats.queued == 0

    store.stop()  # nothing can be stored now
    refused = client.post("/v1/leads/score", json={"lead_id": "D-lost"})
    assert refused.status_code == 503 and "not stored" in refused.json()["detail"], refused.text
