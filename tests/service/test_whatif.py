"""POST /v1/leads/what-if: the change to an actionable field that the model says raises a lead's score most."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.routes import WHAT_IF_EXAMPLE
from service.scorer import Scorer
from service.whatif import NO_ACTIONABLE, NOT_CAUSE, what_if
from tests.conftest import Trained
from training.synthetic import generate_leads
from training.wording import Wording

ACTIONABLE = {"demo_requested", "email_engagement"}  # data/specs/sample.yaml


def _leads(n: int, seed: int, **fixed: object) -> list[dict[str, Any]]:
    frame = generate_leads(n=n, seed=seed).drop(
        columns=["converted", "deal_value", "account_manager_assigned", "created_at", "full_name", "email", "phone"]
    )
    for name, value in fixed.items():
        frame[name] = value
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _score(client: TestClient, lead: dict[str, Any]) -> float:
    return client.post("/v1/leads/score?reasons=false", json=lead).json()["probability"]


def test_the_best_change_is_a_demo_and_scores_as_the_changed_lead_would(client: TestClient) -> None:
    reply = client.post("/v1/leads/what-if", json=WHAT_IF_EXAMPLE)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["probability"] == pytest.approx(_score(client, WHAT_IF_EXAMPLE), abs=1e-12)
    single, pair = body["suggestions"]
    [change] = single["changes"]
    assert (change["field"], change["value"], change["label"], change["current_label"]) == (
        "demo_requested",
        True,
        "Yes",
        "No",
    )
    assert single["probability"] > body["probability"]
    changed = WHAT_IF_EXAMPLE | {"demo_requested": True}
    assert single["probability"] == pytest.approx(_score(client, changed), abs=1e-12)
    assert {c["field"] for c in pair["changes"]} == ACTIONABLE
    both = changed | {c["field"]: c["value"] for c in pair["changes"]}
    assert (
        pair["probability"] == pytest.approx(_score(client, both), abs=1e-12)
        and pair["probability"] > single["probability"]
    )
    assert body["notes"] == [NOT_CAUSE] and "not proof" in NOT_CAUSE


def test_a_demo_is_the_strongest_suggestion_and_nothing_unactionable_is_ever_suggested(client: TestClient) -> None:
    """The planted effects: a demo +0.9 log-odds, email open rate +1.0 per unit (from 0 to about 0.7 here); owning
    a home (+1.6) and the lead source are stronger but cannot be changed by a rep."""
    leads = _leads(200, seed=41, demo_requested=False)
    singles = []
    for lead in leads:
        body = client.post("/v1/leads/what-if", json=lead).json()
        fields = {c["field"] for s in body["suggestions"] for c in s["changes"]}
        assert fields <= ACTIONABLE, fields
        assert all(s["probability"] > body["probability"] for s in body["suggestions"])
        singles.append(body["suggestions"][0]["changes"][0]["field"])
    assert singles.count("demo_requested") / len(singles) >= 0.8


def test_without_actionable_fields_the_reply_says_so(client: TestClient, trained: Trained) -> None:
    model = client.app.state.models.current
    model.bundle.wording = Wording.from_spec({}, {f.name: f.kind for f in trained.bundle.schema})
    body = client.post("/v1/leads/what-if", json=WHAT_IF_EXAMPLE).json()
    assert body["suggestions"] == [] and body["actionable_fields"] == []
    assert body["notes"] == [NO_ACTIONABLE, NOT_CAUSE]
    assert body["grade"] in trained.bundle.grades["names"]


def test_one_fast_path_call_and_pairs_from_each_fields_best_values_when_all_pairs_are_too_many(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = Scorer(trained.bundle)
    wording = trained.bundle.wording
    assert wording is not None
    lead = {name: WHAT_IF_EXAMPLE.get(name) for name in scorer.fields}
    calls: list[int] = []
    score_matrix = scorer.probabilities
    monkeypatch.setattr(scorer, "probabilities", lambda matrix: calls.append(len(matrix)) or score_matrix(matrix))
    every = what_if(scorer, wording, trained.bundle.reference, lead)
    assert len(calls) == 1 and calls[0] > 10  # the lead, every single change and every pair: one call
    monkeypatch.setattr("service.whatif.MAX_ROWS", 2)
    pruned = what_if(scorer, wording, trained.bundle.reference, lead)
    assert pruned["suggestions"] == every["suggestions"]  # the best pair is built from each field's best values


@pytest.mark.parametrize(
    ("lead", "field"),
    [({"demo_requested": "maybe"}, "demo_requested"), ({"email_engagment": 0.4}, "email_engagment")],
)
def test_a_malformed_lead_gets_a_422_naming_the_field(client: TestClient, lead: dict[str, Any], field: str) -> None:
    reply = client.post("/v1/leads/what-if", json=lead)
    assert reply.status_code == 422
    assert [problem["field"] for problem in reply.json()["detail"]] == [field]


def test_openapi_documents_what_if_with_a_real_example(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/leads/what-if"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert example == WHAT_IF_EXAMPLE and set(example) <= {"lead_id", *client.app.state.models.current.scorer.fields}
    assert "not proof" in operation["description"]
    reply = schema["components"]["schemas"]["WhatIf"]["example"]
    assert reply["suggestions"][0]["changes"][0]["field"] == "demo_requested"
