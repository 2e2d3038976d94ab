"""A lead sending a declared placeholder is scored exactly as the same lead without the field, on every path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.batch_decoder import BatchDecoder
from service.schemas import build_batch_validator, build_lead_validator, ignored_fields
from service.scorer import Scorer
from tests.conftest import AppFactory, Trained
from training.bundle import Bundle, save_bundle
from training.data import prepare_leads
from training.spec import MissingValues
from training.synthetic import SAMPLE_SPEC, generate_leads
from training.train import fit_and_evaluate

PLACEHOLDERS = ["-", "n/a", "Select"]


def _requests(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _without(lead: dict, *names: str) -> dict:
    return {k: v for k, v in lead.items() if k not in names}


@pytest.fixture(scope="module")
def placeholder_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Path]:
    """A model whose spec declares placeholders for every field, trained on a number and a boolean holding them."""
    leads = generate_leads(n=4_000, seed=13)
    rng = np.random.default_rng(13)
    for name, word in (("pages_viewed", "n/a"), ("demo_requested", "-")):
        leads[name] = leads[name].astype(object)
        leads.loc[rng.random(len(leads)) < 0.1, name] = word
    spec = SAMPLE_SPEC.model_copy(update={"missing_values": MissingValues(all=PLACEHOLDERS)})
    table = prepare_leads(leads, spec)
    assert table.kinds["pages_viewed"] == "numeric" and table.kinds["demo_requested"] == "boolean"
    fitted = fit_and_evaluate(table)
    shutil.rmtree(fitted.plots_dir, ignore_errors=True)
    directory = tmp_path_factory.mktemp("placeholders") / fitted.bundle.version
    save_bundle(fitted.bundle, directory)
    return fitted.bundle, directory


@pytest.fixture(scope="module")
def sample_lead(trained: Trained) -> dict:
    frame = generate_leads(n=50, seed=21)[trained.bundle.fields]
    return next(lead for lead in _requests(frame) if lead["city"] not in (None, "Select"))


def test_select_scores_as_a_missing_city_on_every_path(trained: Trained, sample_lead: dict) -> None:
    bundle = trained.bundle
    scorer = Scorer(bundle)
    validator = build_lead_validator(bundle)
    missing = _without(sample_lead, "city")
    variants = [
        missing,
        sample_lead | {"city": None},
        sample_lead | {"city": "Select"},
        sample_lead | {"city": " select "},
    ]
    leads = [validator.validate_python(lead) for lead in variants]
    pipeline = bundle.predict_proba(pd.DataFrame(leads, columns=bundle.fields))
    single = [scorer.score_one(lead, reasons="none")["probability"] for lead in leads]
    batch = [result["probability"] for result in scorer.score(leads, reasons="none")]
    # the same probability as sent without a city, on each path; the paths agree as they always do (1e-12)
    assert len(set(pipeline.tolist())) == len(set(single)) == len(set(batch)) == 1
    np.testing.assert_allclose([single[0], batch[0]], pipeline[:2], rtol=0, atol=1e-12)
    assert pipeline[0] != bundle.predict_proba(pd.DataFrame([sample_lead], columns=bundle.fields))[0]


def test_select_is_warned_about_as_a_placeholder_not_an_unseen_category(trained: Trained, sample_lead: dict) -> None:
    scorer = Scorer(trained.bundle)
    lead = sample_lead | {"city": "Select"}
    single = scorer.score_one(lead, reasons="none")["warnings"]
    batch = scorer.score([lead, lead], reasons="none")[0]["warnings"]
    assert single == batch
    assert "placeholder 'Select' for 'city': scored as missing" in single
    assert not any("unseen" in warning for warning in single)


def test_the_api_scores_select_as_a_missing_city(client: TestClient, sample_lead: dict) -> None:
    replies = [
        client.post("/v1/leads/score", json=lead).json()
        for lead in (sample_lead | {"city": "Select"}, _without(sample_lead, "city"))
    ]
    assert replies[0]["probability"] == replies[1]["probability"]
    assert "placeholder 'Select' for 'city': scored as missing" in replies[0]["warnings"]
    batch = client.post("/v1/leads/score/batch", json={"leads": [sample_lead | {"city": "Select"}]}).json()
    assert batch["results"][0]["probability"] == replies[1]["probability"]


def test_a_placeholder_is_accepted_for_a_number_or_a_boolean_and_scored_as_missing(
    placeholder_bundle: tuple[Bundle, Path],
) -> None:
    bundle, _ = placeholder_bundle
    scorer = Scorer(bundle)
    validator = build_lead_validator(bundle)
    base = _requests(generate_leads(n=1, seed=2)[bundle.fields])[0]
    sent = validator.validate_python(base | {"pages_viewed": " N/A", "demo_requested": "-", "city": "n/a"})
    missing = validator.validate_python(_without(base, "pages_viewed", "demo_requested", "city"))
    expected = bundle.predict_proba(pd.DataFrame([missing], columns=bundle.fields))[0]
    assert bundle.predict_proba(pd.DataFrame([sent], columns=bundle.fields))[0] == expected
    one = scorer.score_one(sent, reasons="none")
    many = scorer.score([sent, missing], reasons="none")
    assert many[0]["probability"] == many[1]["probability"]
    np.testing.assert_allclose([one["probability"], many[0]["probability"]], [expected] * 2, rtol=0, atol=1e-12)
    assert one["warnings"] == many[0]["warnings"]
    for name, value in (("pages_viewed", "N/A"), ("demo_requested", "-"), ("city", "n/a")):
        assert f"placeholder {value!r} for {name!r}: scored as missing" in one["warnings"]


@pytest.mark.parametrize(("name", "value"), [("pages_viewed", "many"), ("pages_viewed", "12"), ("demo_requested", "?")])
def test_other_text_for_a_number_or_a_boolean_is_still_refused_by_name(
    placeholder_bundle: tuple[Bundle, Path], name: str, value: str
) -> None:
    validator = build_lead_validator(placeholder_bundle[0])
    with pytest.raises(ValidationError) as err:
        validator.validate_python({name: value})
    assert {error["loc"][0] for error in err.value.errors()} == {name}


def test_the_batch_decoder_takes_placeholders_on_its_fast_path(placeholder_bundle: tuple[Bundle, Path]) -> None:
    bundle, _ = placeholder_bundle
    scorer = Scorer(bundle)
    decoder = BatchDecoder(bundle, ignored_fields(bundle), scorer.read_fields)
    leads = _requests(generate_leads(n=20, seed=3)[bundle.fields])
    leads[0] |= {"pages_viewed": "n/a", "demo_requested": "-"}
    leads[1] |= {"pages_viewed": "N/A ", "demo_requested": "n/a"}
    body = orjson.dumps({"leads": leads})
    decoded = decoder.decode(body)
    assert decoded is not None
    assert decoded.columns == scorer.columns_of(build_batch_validator(bundle).validate_python(leads))
    scored = scorer.score_columns(decoded.columns, decoded.count, reasons="none").probabilities
    expected = bundle.predict_proba(pd.DataFrame(leads, columns=bundle.fields))
    np.testing.assert_allclose(scored, expected, rtol=0, atol=1e-12)
    assert decoder.decode(orjson.dumps({"leads": [{"pages_viewed": "many"}]})) is None


def test_the_api_accepts_a_declared_placeholder_for_a_number(
    make_client: AppFactory, placeholder_bundle: tuple[Bundle, Path]
) -> None:
    bundle, directory = placeholder_bundle
    client = make_client(model_dir=directory)
    base = _requests(generate_leads(n=1, seed=2)[bundle.fields])[0]
    reply = client.post("/v1/leads/score", json=base | {"pages_viewed": "n/a"})
    assert reply.status_code == 200, reply.text
    assert (
        reply.json()["probability"]
        == client.post("/v1/leads/score", json=_without(base, "pages_viewed")).json()["probability"]
    )
    refused = client.post("/v1/leads/score", json=base | {"pages_viewed": "many"})
    assert refused.status_code == 422
    assert {problem["field"] for problem in refused.json()["detail"]} == {"pages_viewed"}


def test_monitoring_counts_select_as_missing_like_the_training_data(client: TestClient) -> None:
    frame = generate_leads(n=400, seed=43).drop(columns=["converted", "deal_value", "account_manager_assigned"])
    frame["created_at"] = frame["created_at"].astype(str)
    leads = _requests(frame)
    assert client.post("/v1/leads/score/batch", json={"leads": leads}).status_code == 200
    client.app.state.store.flush()
    city = client.get("/v1/monitoring").json()["drift"]["fields"]["city"]
    sent = np.mean([lead["city"] in (None, "Select") for lead in leads])
    assert city["live_missing_share"] == pytest.approx(sent)
    assert city["status"] == "green" and city["psi"] < 0.1
