"""The short version of bench/qualify.py: revealing fields in the next-question order on generated leads."""

from __future__ import annotations

from bench.qualify import STEPS, compare_policies, fitted_model, policy_rows
from tests.conftest import SAMPLE_SPEC
from training.synthetic import generate_leads


def test_next_questions_beat_the_profile_order_and_random_orders() -> None:
    fitted = fitted_model(generate_leads(3_000, seed=1), SAMPLE_SPEC)
    curves = compare_policies(fitted, max_leads=200)
    ours, profile, random = curves["next question"], curves["profile order"], curves["random order"]
    for step in range(len(STEPS)):
        assert ours[step][0] <= random[step][0] and ours[step][1] >= random[step][1]
        assert ours[step][0] <= profile[step][0] + 1e-12
    # more answers, better predictions
    assert ours[-1][0] < ours[0][0] and ours[-1][1] > ours[0][1]
    assert len(policy_rows("t", curves)) == 4
