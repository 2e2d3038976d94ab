"""The generator is our test bed: its ground truth must hold and be reproducible."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from training.cli import app
from training.spec import read_spec
from training.synthetic import GROUND_TRUTH, LEAKY_FIELDS, PII_FIELDS, SAMPLE_SPEC, generate_leads

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads(n=30_000, seed=7)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_same_seed_writes_identical_file(tmp_path: Path, suffix: str) -> None:
    runner = CliRunner()
    paths = [tmp_path / f"a{suffix}", tmp_path / f"b{suffix}", tmp_path / f"c{suffix}"]
    for path, seed in zip(paths, [3, 3, 4], strict=True):
        result = runner.invoke(app, ["generate", "--rows", "2000", "--seed", str(seed), "--out", str(path)])
        assert result.exit_code == 0, result.output
    assert _digest(paths[0]) == _digest(paths[1])
    assert _digest(paths[0]) != _digest(paths[2])


def test_generate_writes_spec_beside_the_data(tmp_path: Path) -> None:
    out = tmp_path / "leads.csv"
    CliRunner().invoke(app, ["generate", "--rows", "500", "--out", str(out)])
    spec = read_spec(tmp_path / "leads.spec.yaml")
    assert spec == SAMPLE_SPEC
    assert spec.target in pd.read_csv(out).columns


def test_committed_sample_spec_matches_the_generator() -> None:
    assert read_spec(REPO / "data/specs/sample.yaml") == SAMPLE_SPEC


def test_generate_refuses_unknown_extension(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "--rows", "10", "--out", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2
    assert "must end in .csv or .parquet" in result.output


def test_positive_rate_is_realistic(leads: pd.DataFrame) -> None:
    assert 0.08 <= leads["converted"].mean() <= 0.15


def test_home_owners_convert_at_least_twice_as_often(leads: pd.DataFrame) -> None:
    rate = leads.groupby("owns_home")["converted"].mean()
    assert rate[True] >= 2 * rate[False]


def test_home_owners_dominate_high_value_customers(leads: pd.DataFrame) -> None:
    buyers = leads[leads["converted"] == 1]
    top = buyers[buyers["deal_value"] >= buyers["deal_value"].median()]
    assert top["owns_home"].mean() >= 2 * leads["owns_home"].mean()


def test_lead_source_order_follows_ground_truth(leads: pd.DataFrame) -> None:
    rate = leads.groupby("lead_source")["converted"].mean()
    assert rate["referral"] == rate.max()
    assert rate["cold_list"] == rate.min()
    assert rate["referral"] > 2 * rate["cold_list"]


def test_authority_and_saboteurs_matter(leads: pd.DataFrame) -> None:
    by_role = leads.groupby("contact_role")["converted"].mean()
    assert by_role["decision_maker"] > by_role["influencer"] > by_role["other"]
    by_saboteur = leads.groupby("saboteur_in_group")["converted"].mean()
    assert by_saboteur[True] < by_saboteur[False]
    by_competitor = leads.groupby("competitor_contract")["converted"].mean()
    assert by_competitor[True] < by_competitor[False]


def test_noise_fields_carry_no_signal(leads: pd.DataFrame) -> None:
    rate = leads.groupby("region")["converted"].mean().drop("overseas")
    assert rate.max() - rate.min() < 0.02


def test_leaky_field_nearly_reveals_the_outcome(leads: pd.DataFrame) -> None:
    (leaky,) = LEAKY_FIELDS
    assert roc_auc_score(leads["converted"], leads[leaky]) >= 0.90


def test_created_at_spans_eighteen_months(leads: pd.DataFrame) -> None:
    span = leads["created_at"].max() - leads["created_at"].min()
    assert span >= pd.Timedelta(days=18 * 30)
    assert leads["created_at"].is_monotonic_increasing


def test_table_is_realistically_messy(leads: pd.DataFrame) -> None:
    missing = leads.isna().mean()
    assert missing[["stated_budget", "income_band", "purchase_timeframe", "email_engagement"]].min() > 0.03
    assert leads["lead_source"].value_counts(normalize=True).min() < 0.01  # a rare category
    assert leads["time_on_site_min"].skew() > 2  # skewed numeric
    assert leads["lead_id"].is_unique
    assert leads.loc[leads["converted"] == 0, "deal_value"].isna().all()
    assert (leads.loc[leads["converted"] == 1, "deal_value"] > 0).all()


def test_every_ground_truth_field_is_in_the_table(leads: pd.DataFrame) -> None:
    for name, effect in GROUND_TRUTH.items():
        if isinstance(effect, dict):
            assert name in leads.columns
            assert set(leads[name].dropna().unique()) <= set(effect)
    assert set(PII_FIELDS) <= set(leads.columns)


def test_effect_sizes_hold_in_a_logistic_fit(leads: pd.DataFrame) -> None:
    """A logistic fit on the complete fields recovers the planted home-ownership effect."""
    from sklearn.linear_model import LogisticRegression

    cols = ["owns_home", "demo_requested", "saboteur_in_group", "competitor_contract"]
    x = leads[cols].astype(float).to_numpy()
    x = np.column_stack([x, pd.get_dummies(leads["contact_role"]).drop(columns="researcher").astype(float)])
    coef = LogisticRegression(C=100, max_iter=1000).fit(x, leads["converted"]).coef_[0]
    assert coef[0] == pytest.approx(GROUND_TRUTH["owns_home"], abs=0.3)
    assert coef[2] < 0 and coef[3] < 0
