"""Fields that describe when a lead came in (a month's interest rate, its campaign) are found and never asked."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE_SPEC
from training.data import prepare_leads
from training.spec import parse_spec, read_spec
from training.synthetic import generate_leads
from training.timeproxy import THRESHOLD, month_explained_shares, time_proxies
from training.train import TrainOptions, fit_and_evaluate, time_proxy_lines


@pytest.fixture(scope="module")
def leads_with_time_proxies() -> pd.DataFrame:
    """Sample leads plus a monthly interest rate (small daily wiggle), a monthly campaign name (3% typed
    differently) and a trending field whose months explain only part of it."""
    leads = generate_leads(n=4_000, seed=5)
    rng = np.random.default_rng(5)
    month = pd.to_datetime(leads["created_at"]).dt.to_period("M").astype(str)
    codes, names = pd.factorize(month, sort=True)
    monthly_rate = 3.0 + np.cumsum(rng.normal(0, 0.4, len(names)))
    leads["euribor3m"] = np.round(monthly_rate[codes] + rng.normal(0, 0.02, len(leads)), 3)
    campaign = np.array([f"campaign-{name}" for name in names], dtype=object)[codes]
    retyped = rng.random(len(leads)) < 0.03
    campaign[retyped] = "spring offer"
    leads["campaign"] = campaign
    leads["trending_score"] = codes * 0.1 + rng.normal(0, 1.0, len(leads))
    return leads


def test_planted_time_proxies_are_found_and_ordinary_fields_are_not(leads_with_time_proxies: pd.DataFrame) -> None:
    table = prepare_leads(leads_with_time_proxies, read_spec(SAMPLE_SPEC))
    shares = month_explained_shares(table.features, table.kinds, table.time)
    found = time_proxies(table.features, table.kinds, table.time)
    assert set(found) == {"euribor3m", "campaign"}
    assert shares["euribor3m"] > 0.99 and shares["campaign"] > 0.9
    assert 0.05 < shares["trending_score"] < THRESHOLD  # a trend, but the month does not say who the lead is
    ordinary = {name: share for name, share in shares.items() if name not in {*found, "trending_score"}}
    assert len(ordinary) == len(table.kinds) - 3
    assert max(ordinary.values()) < 0.1


def test_without_a_time_column_or_with_too_few_months_nothing_is_flagged(
    leads_with_time_proxies: pd.DataFrame,
) -> None:
    table = prepare_leads(leads_with_time_proxies, read_spec(SAMPLE_SPEC))
    assert time_proxies(table.features, table.kinds, None) == {}
    two_months = pd.Series(pd.to_datetime(["2024-01-15", "2024-02-15"])[np.arange(len(table.time)) % 2])
    assert time_proxies(table.features, table.kinds, two_months) == {}


def test_training_leaves_time_proxies_out_of_questions_and_says_so(leads_with_time_proxies: pd.DataFrame) -> None:
    spec = parse_spec(read_spec(SAMPLE_SPEC).model_dump() | {"fields": {"campaign": {"askable": True}}})
    fitted = fit_and_evaluate(prepare_leads(leads_with_time_proxies, spec), TrainOptions(folds=1))
    shutil.rmtree(fitted.plots_dir, ignore_errors=True)
    wording = fitted.bundle.wording
    assert wording is not None
    assert set(wording.time_proxies) == {"euribor3m", "campaign"}
    assert not wording.askable("euribor3m")
    assert wording.askable("campaign")  # the spec says a rep may ask it
    assert wording.askable("owns_home")
    [line] = time_proxy_lines(wording)
    assert "euribor3m (" in line and "campaign" not in line
    assert line.startswith("not asked, they describe when a lead came in, not who it is")
