"""The short version of bench/quality.py: on 2,000 generated leads the chosen model matches or beats the references."""

from __future__ import annotations

from bench.quality import REFERENCES, compare_on_folds, quality_rows
from tests.conftest import SAMPLE_SPEC
from training.synthetic import generate_leads


def test_chosen_model_is_at_least_as_good_as_every_reference_on_the_same_folds() -> None:
    result = compare_on_folds("generated 2,000", generate_leads(2_000, seed=1), SAMPLE_SPEC)
    models = result["models"]
    ours = models["leadscore"]
    assert set(models) == {"leadscore", *REFERENCES}
    assert ours["log_loss"] <= min(models[name]["log_loss"] for name in REFERENCES) + 0.001
    assert ours["roc_auc"] >= max(models[name]["roc_auc"] for name in REFERENCES) - 0.002
    # calibration, where applied, does not make the out-of-fold ECE worse by more than 0.002
    assert ours["ece"] <= ours["ece_uncalibrated"] + 0.002
    table = quality_rows(result)
    assert table[0][1].startswith("leadscore:") and len(table) == len(models) + 1
