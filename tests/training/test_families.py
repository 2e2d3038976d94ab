"""Every model family the selection can choose keeps exact reasons and a fast serving path equal to its pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from service.schemas import build_lead_validator
from service.scorer import Scorer
from tests.conftest import SAMPLE_SPEC
from training.data import prepare_leads
from training.explain import lead_contributions
from training.model import model_family
from training.questions import QuestionRanker
from training.spec import read_spec
from training.synthetic import generate_leads
from training.train import FittedModel, TrainOptions, fit_and_evaluate

FAMILIES = ["lightgbm", "logistic", "blend"]


@pytest.fixture(scope="module", params=FAMILIES)
def fitted(request: pytest.FixtureRequest) -> FittedModel:
    table = prepare_leads(generate_leads(n=6_000, seed=5), read_spec(SAMPLE_SPEC))
    return fit_and_evaluate(table, TrainOptions(families=(request.param,), folds=3))


@pytest.fixture(scope="module")
def awkward_requests(fitted: FittedModel) -> list[dict]:
    """Fresh leads with missing values, unseen categories and padded text, validated as the service does."""
    fields = fitted.bundle.fields
    leads = generate_leads(n=3_000, seed=99)[fields].copy()
    rng = np.random.default_rng(1)
    for name in fields:
        leads[name] = leads[name].astype(object)
        leads.loc[rng.random(len(leads)) < 0.05, name] = None
    leads.loc[rng.random(len(leads)) < 0.05, "lead_source"] = "carrier-pigeon"
    leads.loc[rng.random(len(leads)) < 0.05, "contact_role"] = "  decision_maker "
    validator = build_lead_validator(fitted.bundle)
    records = leads.astype(object).where(leads.notna(), None).to_dict("records")
    return [validator.validate_python(record) for record in records]


def test_the_requested_family_is_served(fitted: FittedModel, request: pytest.FixtureRequest) -> None:
    family = request.node.callspec.params["fitted"]
    assert model_family(fitted.bundle.pipeline["model"]) == family
    assert fitted.bundle.metrics["model_family"] == family
    assert fitted.bundle.metrics["cv"]["chosen"] == family


def test_reasons_add_up_to_the_served_log_odds(fitted: FittedModel, awkward_requests: list[dict]) -> None:
    frame = pd.DataFrame(awkward_requests, columns=fitted.bundle.fields)
    contributions, base = lead_contributions(fitted.bundle.pipeline, frame)
    p = fitted.bundle.predict_proba(frame)
    np.testing.assert_allclose(contributions.sum(axis=1) + base, np.log(p / (1 - p)), rtol=0, atol=1e-6)


def test_fast_path_equals_the_pipeline(fitted: FittedModel, awkward_requests: list[dict]) -> None:
    scorer = Scorer(fitted.bundle)
    expected = fitted.bundle.predict_proba(pd.DataFrame(awkward_requests, columns=fitted.bundle.fields))
    batch = np.array([r["probability"] for r in scorer.score(awkward_requests, reasons="none")])
    single = np.array([scorer.score_one(lead, reasons="none")["probability"] for lead in awkward_requests[:400]])
    assert np.max(np.abs(batch - expected)) <= 1e-9
    assert np.max(np.abs(single - expected[:400])) <= 1e-9


def test_served_reasons_equal_the_pipeline_contributions(fitted: FittedModel, awkward_requests: list[dict]) -> None:
    scorer = Scorer(fitted.bundle)
    leads = awkward_requests[:200]
    contributions, base = lead_contributions(fitted.bundle.pipeline, pd.DataFrame(leads, columns=fitted.bundle.fields))
    for i, lead in enumerate(leads):
        reply = scorer.score_one(lead, reasons="all")
        served = {reason["field"]: reason["contribution"] for reason in reply["reasons"]}
        expected = dict(zip(fitted.bundle.fields, contributions[i], strict=True))
        assert served == pytest.approx(expected, abs=1e-9)
        assert reply["base_value"] == pytest.approx(base[i], abs=1e-9)


def test_every_family_finds_the_planted_driver(fitted: FittedModel) -> None:
    top = [row["field"] for row in fitted.bundle.importance[:3]]
    assert "owns_home" in top, top
    assert fitted.bundle.metrics["roc_auc"] > 0.75


def test_hypothetical_answers_are_scored_as_the_pipeline_scores_them(
    fitted: FittedModel, awkward_requests: list[dict]
) -> None:
    """Next-question answers go through the fast path in one batch: equal to the pipeline on every hypothetical."""
    scorer = Scorer(fitted.bundle)
    ranker = QuestionRanker(scorer.fields, fitted.bundle.reference["answers"], scorer.probabilities)
    fields = fitted.bundle.fields
    for index, lead in enumerate([{}, *awkward_requests[:6]]):
        known = {name: lead.get(name) for name in fields[index % 3 :: 3]}  # a third of the fields known
        ranking = ranker.rank(scorer.encode([known]).matrix[0])
        hypotheticals = [{**known, q.field: value} for q in ranking.questions for value in q.answers.values]
        expected = fitted.bundle.predict_proba(pd.DataFrame([known, *hypotheticals], columns=fields))
        served = np.concatenate([[ranking.probability], *(q.probabilities for q in ranking.questions)])
        assert len(served) > 20
        assert np.max(np.abs(served - expected)) <= 1e-9
