"""POST /v1/leads/next-question and GET /v1/model/answers over a real bundle and the real app."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy.special import expit, logit

from tests.conftest import AppFactory, ModelsFolder, Trained
from training.bundle import new_version, save_bundle

LEAD = {"lead_id": "L-77", "lead_source": "referral", "contact_role": "decision_maker", "email": "ana@example.com"}


def test_the_reply_ranks_the_unknown_askable_fields(client: TestClient, trained: Trained) -> None:
    reply = client.post("/v1/leads/next-question", json=LEAD)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"lead_id", "probability", "grade", "questions", "model_version"}
    assert body["lead_id"] == "L-77" and body["model_version"] == trained.bundle.version
    fields = trained.bundle.fields
    known = {name: LEAD[name] for name in ("lead_source", "contact_role")}
    assert body["probability"] == pytest.approx(partly_known(trained, pd.DataFrame([known]))[0], abs=1e-9)
    asked = [q["field"] for q in body["questions"]]
    wording = trained.bundle.wording
    assert set(asked) == {name for name in fields if name not in known and wording.askable(name)}
    values = [q["value_of_asking"] for q in body["questions"]]
    assert values == sorted(values, reverse=True) and values[0] > 0
    for question in body["questions"][:4]:
        assert question["question"] == wording.question(question["field"])
        answers = question["answers"]
        assert sum(a["share"] for a in answers) == pytest.approx(1.0)
        frame = pd.DataFrame([{**known, question["field"]: a["value"]} for a in answers], columns=fields)
        expected = partly_known(trained, frame)
        assert [a["probability"] for a in answers] == pytest.approx(expected.tolist(), abs=1e-9)
        average = sum(a["share"] * a["probability"] for a in answers)
        change = sum(a["share"] * abs(a["probability"] - average) for a in answers)
        assert question["value_of_asking"] == pytest.approx(change)
        assert question["entropy_reduction"] >= 0
        assert all(a["grade"] in {"A", "B", "C", "D"} and a["label"] for a in answers)


def partly_known(trained: Trained, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability with each unknown field's offset from the bundle added to its log-odds."""
    answers = trained.bundle.reference["answers"]
    offsets = dict(zip(answers["order"], answers["unknown_offsets"], strict=True))
    frame = frame.reindex(columns=trained.bundle.fields)
    shift = frame.isna().to_numpy() @ np.array([offsets[name] for name in frame.columns])
    return expit(logit(trained.bundle.predict_proba(frame)) + shift)


def test_the_answers_grades_follow_their_probabilities(client: TestClient) -> None:
    answers = [a for q in client.post("/v1/leads/next-question", json=LEAD).json()["questions"] for a in q["answers"]]
    order = sorted(answers, key=lambda a: a["probability"])
    grades = [a["grade"] for a in order]
    assert grades == sorted(grades, reverse=True)  # D below C below B below A


def test_a_number_is_offered_in_bins_labelled_with_their_range(client: TestClient) -> None:
    questions = client.post("/v1/leads/next-question", json={}).json()["questions"]
    budget = next(q for q in questions if q["field"] == "stated_budget")
    assert len(budget["answers"]) == 10
    assert all(" to " in a["label"] and "$" in a["label"] for a in budget["answers"])
    medians = [a["value"] for a in budget["answers"]]
    assert medians == sorted(medians)


def test_malformed_leads_get_a_422_naming_the_field(client: TestClient) -> None:
    reply = client.post("/v1/leads/next-question", json={"owns_home": "perhaps", "pages_viewed": "many", "shoe": 1})
    assert reply.status_code == 422
    named = {problem["field"] for problem in reply.json()["detail"]}
    assert named == {"owns_home", "pages_viewed", "shoe"}
    assert (
        client.post("/v1/leads/next-question", content=b"{", headers={"content-type": "application/json"}).status_code
        == 422
    )


def test_it_needs_the_scoring_key(client: TestClient) -> None:
    assert client.post("/v1/leads/next-question", json=LEAD, headers={"X-API-Key": "wrong"}).status_code == 401


def test_nothing_is_written_to_the_score_log(make_client: AppFactory) -> None:
    client = make_client(score_log_mode="durable")  # a score's reply waits for its write
    assert client.post("/v1/leads/next-question", json=LEAD).status_code == 200
    assert client.post("/v1/leads/score", json={"lead_id": "L-78"}).status_code == 200
    assert client.get("/v1/leads/L-78/scores").json()["scores"]  # the log works
    assert client.get("/v1/leads/L-77/scores").json()["scores"] == []


def test_the_openapi_shows_a_real_example(client: TestClient, trained: Trained) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/leads/next-question"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["example"]
    assert set(request) - {"lead_id"} <= set(trained.bundle.fields)
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    assert example["questions"][0]["field"] in trained.bundle.fields
    assert (
        client.post("/v1/leads/next-question", json=request).json()["questions"][0]["field"]
        == (example["questions"][0]["field"])
    )


def test_the_answer_table_compares_best_customers_with_all_leads(client: TestClient) -> None:
    body = client.get("/v1/model/answers").json()
    owns_home = next(f for f in body["fields"] if f["field"] == "owns_home")
    yes = next(a for a in owns_home["answers"] if a["value"] is True)
    assert yes["share_best"] > 1.5 * yes["share_all"]
    assert body["best_customers"]


def test_a_bundle_without_answer_statistics_asks_for_a_retrain(
    make_client: AppFactory, models_folder: ModelsFolder, trained: Trained
) -> None:
    older = copy.deepcopy(trained.bundle)
    older.reference.pop("answers")
    older.version = new_version()
    save_bundle(older, models_folder.root / older.version)
    models_folder.point_champion_at(older.version)
    client = make_client()
    assert client.post("/v1/leads/score", json=LEAD).status_code == 200  # it still serves
    reply = client.post("/v1/leads/next-question", json=LEAD)
    assert reply.status_code == 409 and "retrain" in reply.json()["detail"]
    assert client.get("/v1/model/answers").status_code == 409


def test_hypothetical_answers_are_consistent_with_the_marginal_when_nothing_is_known(client: TestClient) -> None:
    owns_home = next(
        q for q in client.post("/v1/leads/next-question", json={}).json()["questions"] if q["field"] == "owns_home"
    )
    with_income = next(
        q
        for q in client.post("/v1/leads/next-question", json={"income_band": "150k+"}).json()["questions"]
        if q["field"] == "owns_home"
    )
    share = {a["value"]: a["share"] for a in owns_home["answers"]}
    conditioned = {a["value"]: a["share"] for a in with_income["answers"]}
    assert conditioned[True] > share[True] + 0.1
    assert np.isclose(sum(conditioned.values()), 1.0)


def test_the_scoring_lane_answers_as_the_documented_route(make_client: AppFactory) -> None:
    lane, routed = make_client(), make_client(fast_lane=False)
    for body in (LEAD, {}, {"owns_home": "perhaps"}):
        first, second = (
            lane.post("/v1/leads/next-question", json=body),
            routed.post("/v1/leads/next-question", json=body),
        )
        assert first.status_code == second.status_code
        assert first.json() == second.json()
    assert lane.post("/v1/leads/next-question", json=LEAD, headers={"X-API-Key": "wrong"}).status_code == 401
