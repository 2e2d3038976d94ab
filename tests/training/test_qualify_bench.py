"""The short version of bench/qualify.py: revealing fields in the next-question order on generated leads."""

from __future__ import annotations

from bench.qualify import STEPS, fitted_model, margin_rows, margins, policy_rows, run_policies
from tests.conftest import SAMPLE_SPEC
from training.synthetic import generate_leads


def test_next_questions_beat_the_profile_order_and_random_orders() -> None:
    fitted = fitted_model(generate_leads(3_000, seed=1), SAMPLE_SPEC)
    run = run_policies(fitted, max_leads=300)
    curves = run.curves()
    ours, profile, random = curves["next question"], curves["profile order"], curves["random order"]
    for step in range(len(STEPS)):
        assert ours[step][0] <= random[step][0] and ours[step][1] >= random[step][1]
        assert ours[step][0] <= profile[step][0] + 1e-12
    # more answers, better predictions
    assert ours[-1][0] < ours[0][0] and ours[-1][1] > ours[0][1]
    assert len(policy_rows("t", curves)) == 4
    # never clearly behind the better static order: at most two standard errors
    ahead = margins(run, resamples=40)
    for row in ahead:
        assert row["log_loss"] >= -2 * row["log_loss_se"] and row["roc_auc"] >= -2 * row["roc_auc_se"]
    assert len(margin_rows("t", ahead)) == len(STEPS)
