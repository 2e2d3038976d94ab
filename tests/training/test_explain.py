"""Per-lead contributions are exact: with the base value they add up to the model's score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.conftest import Trained
from training.explain import lead_contributions
from training.synthetic import generate_leads


def _awkward_leads(fields: list[str]) -> pd.DataFrame:
    """Fresh leads with unseen categories, missing values and a missing column: what scoring will meet."""
    leads = generate_leads(n=3_000, seed=42)[fields].copy()
    leads.loc[::7, "lead_source"] = "tiktok"  # never seen in training
    leads.loc[::5, "contact_role"] = None
    leads.loc[::3, "pages_viewed"] = np.nan
    leads["owns_home"] = leads["owns_home"].astype(object)
    leads.loc[::11, "owns_home"] = None
    return leads.drop(columns=["region"])


def test_contributions_add_up_to_the_calibrated_log_odds(trained: Trained) -> None:
    leads = _awkward_leads(trained.bundle.fields)
    contributions, base = lead_contributions(trained.bundle.pipeline, leads)
    p = trained.bundle.predict_proba(leads)
    np.testing.assert_allclose(contributions.sum(axis=1) + base, np.log(p / (1 - p)), rtol=0, atol=1e-6)


def test_contributions_add_up_to_the_raw_tree_score(trained: Trained) -> None:
    pipeline = trained.bundle.pipeline
    leads = _awkward_leads(trained.bundle.fields)
    model = pipeline["model"]
    contributions, base = lead_contributions(pipeline, leads)
    raw = model.raw_score(pipeline["encode"].transform(leads))
    np.testing.assert_allclose((contributions.sum(axis=1) + base - model.intercept_) / model.slope_, raw, atol=1e-6)


def test_categorical_fields_carry_their_own_contributions(trained: Trained) -> None:
    leads = _awkward_leads(trained.bundle.fields)
    contributions, _ = lead_contributions(trained.bundle.pipeline, leads)
    column = trained.bundle.fields.index("contact_role")
    roles = leads["contact_role"].to_numpy()
    deciders = contributions[roles == "decision_maker", column]
    researchers = contributions[roles == "researcher", column]
    assert deciders.mean() > 0 > researchers.mean()


def test_unseen_category_scores_like_a_missing_one(trained: Trained) -> None:
    lead = generate_leads(n=1, seed=3)[trained.bundle.fields]
    unseen, missing = lead.copy(), lead.copy()
    unseen["lead_source"] = "tiktok"
    missing["lead_source"] = None
    assert trained.bundle.predict_proba(unseen)[0] == trained.bundle.predict_proba(missing)[0]
