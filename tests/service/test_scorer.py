"""The fast path is derived from the bundle and proved equal to the pipeline it came from."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from service.schemas import build_lead_validator
from service.scorer import Scorer
from tests.conftest import Trained
from training.synthetic import generate_leads


def _as_requests(frame: pd.DataFrame) -> list[dict]:
    """What a marketing system would POST: JSON-like dicts, missing values absent or null."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: v for k, v in record.items() if not (k == "income_band" and v is None)} for record in records]


@pytest.fixture(scope="module")
def awkward_leads(trained: Trained) -> pd.DataFrame:
    leads = generate_leads(n=4_000, seed=123)[trained.bundle.fields].copy()
    rng = np.random.default_rng(0)
    for name in trained.bundle.fields:
        leads[name] = leads[name].astype(object)
        leads.loc[rng.random(len(leads)) < 0.05, name] = None
    leads.loc[rng.random(len(leads)) < 0.05, "lead_source"] = "carrier-pigeon"
    leads.loc[rng.random(len(leads)) < 0.05, "contact_role"] = "  decision_maker "
    return leads


def test_fast_path_equals_the_pipeline(trained: Trained, awkward_leads: pd.DataFrame) -> None:
    scorer = Scorer(trained.bundle)
    validator = build_lead_validator(trained.bundle)
    leads = [validator.validate_python(lead) for lead in _as_requests(awkward_leads)]
    fast = np.array([r["probability"] for r in scorer.score(leads, reasons="none")])
    one_at_a_time = np.array([scorer.score([lead], reasons="none")[0]["probability"] for lead in leads[:300]])
    expected = trained.bundle.predict_proba(pd.DataFrame(leads, columns=trained.bundle.fields))
    assert np.max(np.abs(fast - expected)) <= 1e-9
    assert np.max(np.abs(one_at_a_time - expected[:300])) <= 1e-9


def test_encoding_equals_the_fitted_encoder(trained: Trained, awkward_leads: pd.DataFrame) -> None:
    scorer = Scorer(trained.bundle)
    leads = _as_requests(awkward_leads)
    fast = scorer.encode(leads).matrix
    reference = trained.bundle.pipeline["encode"].transform(pd.DataFrame(leads, columns=trained.bundle.fields))
    np.testing.assert_array_equal(fast, reference)


def test_all_reasons_add_up_to_the_calibrated_log_odds(trained: Trained, awkward_leads: pd.DataFrame) -> None:
    scorer = Scorer(trained.bundle)
    results = scorer.score(_as_requests(awkward_leads.head(500)), reasons="all")
    for result in results:
        total = result["base_value"] + sum(reason["contribution"] for reason in result["reasons"])
        p = result["probability"]
        assert total == pytest.approx(np.log(p / (1 - p)), abs=1e-6)
        assert len(result["reasons"]) == len(trained.bundle.fields)


def test_top_reasons_are_the_strongest_each_way(trained: Trained, awkward_leads: pd.DataFrame) -> None:
    scorer = Scorer(trained.bundle, top_reasons=3)
    lead = _as_requests(awkward_leads.head(1))[0]
    top = scorer.score([lead], reasons="top")[0]["reasons"]
    every = scorer.score([lead], reasons="all")[0]["reasons"]
    contributions = sorted((r["contribution"] for r in every), reverse=True)
    positives = [r["contribution"] for r in top if r["contribution"] > 0]
    negatives = [r["contribution"] for r in top if r["contribution"] < 0]
    assert positives == [c for c in contributions[:3] if c > 0]
    assert negatives == [c for c in contributions[::-1][:3] if c < 0]


def test_warnings_name_missing_fields_and_unseen_categories(trained: Trained) -> None:
    scorer = Scorer(trained.bundle)
    result = scorer.score([{"lead_source": "carrier-pigeon", "owns_home": True}], reasons="none")[0]
    warnings = " | ".join(result["warnings"])
    assert "unseen category 'carrier-pigeon' for 'lead_source'" in warnings
    assert "missing field 'contact_role'" in warnings
    assert "owns_home" not in warnings


def test_grades_and_percentiles_match_the_bundle(trained: Trained, awkward_leads: pd.DataFrame) -> None:
    from training.grades import assign_grades
    from training.reference import percentile

    scorer = Scorer(trained.bundle)
    results = scorer.score(_as_requests(awkward_leads), reasons="none")
    p = np.array([r["probability"] for r in results])
    grades = assign_grades(p, trained.bundle.grades["thresholds"], trained.bundle.grades["names"])
    assert [r["grade"] for r in results] == list(grades)
    expected = np.round(percentile(p, trained.bundle.reference["scores"]["quantiles"]), 1)
    np.testing.assert_array_equal([r["percentile"] for r in results], expected)
    again, counts = scorer.grades(p)  # the counts feed the leads-scored-by-grade metric
    assert again == list(grades)
    assert counts == dict(Counter(again)) and sum(counts.values()) == len(results)


def test_one_lead_at_a_time_equals_the_batch_path(trained: Trained, awkward_leads: pd.DataFrame) -> None:
    """The single-lead path uses scalar arithmetic; grades and percentiles must match the array path exactly."""
    scorer = Scorer(trained.bundle)
    validator = build_lead_validator(trained.bundle)
    leads = [validator.validate_python(lead) for lead in _as_requests(awkward_leads)]
    batch = scorer.score(leads, reasons="none")
    single = [scorer.score_one(lead, reasons="none") for lead in leads]
    assert max(abs(a["probability"] - b["probability"]) for a, b in zip(batch, single, strict=True)) <= 1e-12
    assert [r["grade"] for r in single] == [r["grade"] for r in batch]
    assert [r["percentile"] for r in single] == [r["percentile"] for r in batch]
    assert [r["warnings"] for r in single] == [r["warnings"] for r in batch]
    assert len({r["grade"] for r in single}) == len(trained.bundle.grades["names"])


def test_category_codes_sent_as_integers_score_like_text(trained: Trained) -> None:
    """Integer-coded categories (33 or "33") are one level; the integer goes through the same normalisation."""
    scorer = Scorer(trained.bundle)
    validator = build_lead_validator(trained.bundle)
    lead = _as_requests(generate_leads(n=1, seed=5)[trained.bundle.fields])[0]
    as_text = scorer.score_one(validator.validate_python(lead | {"company_size": "50"}), reasons="none")
    as_number = scorer.score_one(validator.validate_python(lead | {"company_size": 50}), reasons="none")
    assert as_number["probability"] == as_text["probability"]
    assert as_number["warnings"] == as_text["warnings"]
    assert "unseen category '50' for 'company_size'" in " ".join(as_number["warnings"])
