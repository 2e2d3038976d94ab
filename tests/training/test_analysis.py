"""The notebooks' tables must recover the planted signal and agree with the model and the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE_SPEC, Trained
from training.analysis import (
    MISSING,
    conversion_by,
    conversion_over_time,
    conversion_spread,
    example_leads,
    explain_leads,
    field_grid,
    missingness,
    notebook_inputs,
    partial_dependence,
    value_label,
)
from training.data import LeadTable, prepare_leads
from training.spec import read_spec
from training.synthetic import NOISE_FIELDS


@pytest.fixture(scope="module")
def table(sample_leads: pd.DataFrame) -> LeadTable:
    return prepare_leads(sample_leads, read_spec(SAMPLE_SPEC))


def by_level(table: LeadTable, field: str) -> pd.DataFrame:
    return conversion_by(table.features[field], table.converted, table.kinds[field]).set_index("level")


# ---------------------------------------------------------------- conversion tables


def test_home_owners_convert_more_often(table: LeadTable) -> None:
    rates = by_level(table, "owns_home")["conversion_rate"]
    assert rates["yes"] > 2 * rates["no"]  # planted +1.6 log-odds


def test_conversion_table_counts_every_lead_once(table: LeadTable) -> None:
    levels = by_level(table, "lead_source")
    assert levels["leads"].sum() == len(table.converted)
    assert levels["converted"].sum() == int(table.converted.sum())
    assert levels["share_of_leads"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(levels["conversion_rate"], levels["converted"] / levels["leads"])
    np.testing.assert_allclose(levels["lift"], levels["conversion_rate"] / table.converted.mean())


def test_categories_are_sorted_best_first(table: LeadTable) -> None:
    levels = by_level(table, "lead_source")
    assert levels.index[0] == "referral"  # planted +1.0, the strongest source
    assert levels.index[-1] == "cold_list"  # planted -1.0
    assert levels["conversion_rate"].is_monotonic_decreasing


def test_missing_values_are_a_level_of_their_own_listed_last(table: LeadTable) -> None:
    levels = by_level(table, "purchase_timeframe")
    assert levels.index[-1] == MISSING
    assert levels.loc[MISSING, "leads"] == int(table.features["purchase_timeframe"].isna().sum())
    assert levels.loc["immediate", "conversion_rate"] > levels.loc["6+ months", "conversion_rate"]


def test_numbers_are_cut_into_ordered_ranges(table: LeadTable) -> None:
    levels = conversion_by(table.features["pages_viewed"], table.converted, "numeric")
    lows = [float(level.split(" to ")[0]) for level in levels["level"]]
    assert lows == sorted(lows) and len(levels) >= 3
    # planted +0.35 per log1p(page): the busiest browsers convert more than those who saw little
    assert levels["conversion_rate"].iloc[-1] > levels["conversion_rate"].iloc[0]
    budget = conversion_by(table.features["stated_budget"], table.converted, "numeric")
    assert budget["level"].iloc[-1] == MISSING


def test_spread_ranks_planted_drivers_above_noise(table: LeadTable) -> None:
    spread = conversion_spread(table).set_index("field")["spread"]
    for noise in NOISE_FIELDS:
        assert spread["owns_home"] > spread[noise]
        assert spread["lead_source"] > spread[noise]
    assert spread.is_monotonic_decreasing


def test_missingness_measures_the_blanked_fields(table: LeadTable) -> None:
    gaps = missingness(table.features, table.converted).set_index("field")
    assert gaps.loc["stated_budget", "missing_share"] == pytest.approx(0.35, abs=0.02)  # blanked at 35%
    assert gaps.loc["owns_home", "missing"] == 0
    assert np.isnan(gaps.loc["owns_home", "rate_when_missing"])
    assert gaps["missing_share"].is_monotonic_decreasing


def test_trend_covers_every_lead_month_by_month(table: LeadTable) -> None:
    trend = conversion_over_time(table.time, table.converted)
    assert trend["leads"].sum() == len(table.converted)
    assert trend["period"].is_monotonic_increasing
    assert (trend["period"].dt.day == 1).all()
    assert len(trend) == pytest.approx(20, abs=1)  # the sample spans about 20 months
    np.testing.assert_allclose(trend["conversion_rate"], trend["converted"] / trend["leads"])


# ---------------------------------------------------------------- the model


def test_partial_dependence_rises_with_a_planted_positive_driver(trained: Trained, sample_leads: pd.DataFrame) -> None:
    owns = partial_dependence(trained.bundle, sample_leads, "owns_home", values=[False, True])
    assert owns["mean_probability"].iloc[1] > 1.5 * owns["mean_probability"].iloc[0]
    engagement = partial_dependence(trained.bundle, sample_leads, "email_engagement", values=[0.05, 0.3, 0.6, 0.9])
    assert engagement["mean_probability"].is_monotonic_increasing
    assert engagement["mean_probability"].iloc[-1] > engagement["mean_probability"].iloc[0]


def test_partial_dependence_of_noise_is_flat(trained: Trained, sample_leads: pd.DataFrame) -> None:
    owns = partial_dependence(trained.bundle, sample_leads, "owns_home", values=[False, True])["mean_probability"]
    region = partial_dependence(trained.bundle, sample_leads, "region")["mean_probability"]
    assert region.max() - region.min() < 0.25 * (owns.max() - owns.min())


def test_partial_dependence_is_the_mean_score_of_the_altered_leads(
    trained: Trained, sample_leads: pd.DataFrame
) -> None:
    leads = sample_leads.head(200)
    curve = partial_dependence(trained.bundle, leads, "lead_source", values=["referral", None])
    for value, expected in zip(["referral", None], curve["mean_probability"], strict=True):
        altered = leads[trained.bundle.fields].astype({"lead_source": object}).assign(lead_source=value)
        assert trained.bundle.predict_proba(altered).mean() == pytest.approx(expected, rel=1e-12)
    assert curve["label"].tolist() == ["referral", MISSING]


def test_default_grid_covers_each_kind_and_missing(trained: Trained, sample_leads: pd.DataFrame) -> None:
    assert field_grid(trained.bundle, sample_leads, "owns_home") == [False, True, None]
    sources = field_grid(trained.bundle, sample_leads, "lead_source")
    assert "referral" in sources and sources[-1] is None
    pages = field_grid(trained.bundle, sample_leads, "pages_viewed")
    assert pages[:-1] == sorted(pages[:-1]) and pages[-1] is None
    curve = partial_dependence(trained.bundle, sample_leads, "pages_viewed")
    assert len(curve) == len(pages) and curve["label"].iloc[-1] == MISSING


def test_partial_dependence_names_an_unknown_field(trained: Trained, sample_leads: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'account_manager_assigned' is not a field"):
        partial_dependence(trained.bundle, sample_leads, "account_manager_assigned")


def test_reasons_add_up_to_each_leads_score(trained: Trained, sample_leads: pd.DataFrame) -> None:
    leads = sample_leads.sample(50, random_state=3)
    explained = explain_leads(trained.bundle, leads)
    probabilities = trained.bundle.predict_proba(leads[trained.bundle.fields])
    for explanation, p in zip(explained, probabilities, strict=True):
        assert explanation.probability == pytest.approx(p, rel=1e-12)
        total = explanation.base_value + explanation.reasons["contribution"].sum()
        assert total == pytest.approx(np.log(p / (1 - p)), abs=1e-6)
        assert sorted(explanation.reasons["field"]) == sorted(trained.bundle.fields)
        assert explanation.reasons["contribution"].abs().is_monotonic_decreasing


def test_reasons_match_what_the_service_returns(trained: Trained) -> None:
    from service.scorer import Scorer

    examples = trained.bundle.examples[:8]
    served = Scorer(trained.bundle).score(examples, reasons="all")
    for explanation, result in zip(explain_leads(trained.bundle, pd.DataFrame(examples)), served, strict=True):
        assert explanation.probability == pytest.approx(result["probability"], abs=1e-9)
        assert explanation.grade == result["grade"]
        assert explanation.percentile == pytest.approx(result["percentile"], abs=0.05)  # served to one decimal
        ours = dict(zip(explanation.reasons["field"], explanation.reasons["contribution"], strict=True))
        for reason in result["reasons"]:
            assert ours[reason["field"]] == pytest.approx(reason["contribution"], abs=1e-9)


def test_summary_reads_like_a_sentence(trained: Trained, sample_leads: pd.DataFrame) -> None:
    explanation = explain_leads(trained.bundle, sample_leads[sample_leads["owns_home"]].head(1))[0]
    top = explanation.reasons.iloc[0]
    line = explanation.summary()
    assert line.startswith(f"{explanation.probability:.1%} (grade {explanation.grade}")
    assert f"{top['field']} = {value_label(top['value'])} {top['effect']} it" in line


def test_readable_reasons_show_values_in_words(trained: Trained, sample_leads: pd.DataFrame) -> None:
    owner = sample_leads[sample_leads["owns_home"] & sample_leads["purchase_timeframe"].isna()].head(1)
    explanation = explain_leads(trained.bundle, owner)[0]
    table = explanation.readable(len(trained.bundle.fields)).set_index("field")
    assert table.loc["owns_home", "value"] == "yes"
    assert table.loc["purchase_timeframe", "value"] == MISSING
    assert len(explanation.readable(4)) == 4


def test_example_leads_run_from_strong_to_weak(trained: Trained, sample_leads: pd.DataFrame) -> None:
    examples = example_leads(trained.bundle, sample_leads)
    assert examples.index.tolist() == ["strong", "middling", "weak"]
    p = trained.bundle.predict_proba(examples[trained.bundle.fields])
    assert p[0] > p[1] > p[2]
    everyone = trained.bundle.predict_proba(sample_leads[trained.bundle.fields])
    assert p[0] >= np.quantile(everyone, 0.95) and p[2] <= np.quantile(everyone, 0.10)


def test_value_labels_read_as_words() -> None:
    assert [value_label(v) for v in (True, np.False_, 12.0, 0.35, None, np.nan, "web")] == [
        "yes",
        "no",
        "12",
        "0.35",
        MISSING,
        MISSING,
        "web",
    ]


# ---------------------------------------------------------------- where the notebooks read from


def test_inputs_default_to_make_runs_files_from_any_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("LEADSCORE_NOTEBOOK_DATA", "LEADSCORE_NOTEBOOK_SPEC", "LEADSCORE_MODEL_DIR"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "notebooks").mkdir()
    inputs = notebook_inputs(tmp_path / "notebooks")
    assert inputs.data == tmp_path.resolve() / "data/sample/leads.csv"
    assert inputs.spec == tmp_path.resolve() / "data/specs/sample.yaml"
    assert inputs.model_dir == tmp_path.resolve() / "models/champion"


def test_inputs_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.setenv("LEADSCORE_NOTEBOOK_DATA", "/elsewhere/crm.parquet")
    monkeypatch.setenv("LEADSCORE_NOTEBOOK_SPEC", "specs/crm.yaml")
    monkeypatch.setenv("LEADSCORE_MODEL_DIR", "/srv/models/champion")
    inputs = notebook_inputs(tmp_path)
    assert inputs.data == Path("/elsewhere/crm.parquet")
    assert inputs.spec == tmp_path.resolve() / "specs/crm.yaml"
    assert inputs.model_dir == Path("/srv/models/champion")
