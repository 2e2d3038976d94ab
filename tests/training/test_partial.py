"""The probability of a partly known lead: one log-odds offset per unknown field, fitted with fields hidden."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import log_loss

from service.scorer import Scorer
from tests.conftest import Trained
from training.partial import UnknownFieldOffsets, fit_unknown_offsets, hide_fields_at_random, partly_known_probabilities
from training.synthetic import generate_leads


def test_the_offset_recovers_the_average_of_what_an_unknown_field_hides() -> None:
    # Planted: the outcome's log-odds are 2 * x with x 0 or 1 half the time each; a model that reads an
    # unknown x as 0 is right for known leads and too low for unknown ones. The offset that fixes it is
    # logit(mean of sigmoid(0), sigmoid(2)) - 0.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, 40_000).astype(float)
    y = (rng.uniform(size=x.size) < expit(2 * x)).astype(int)
    noise = rng.normal(size=x.size)  # a field that says nothing: its offset stays near 0

    def model(matrix: np.ndarray) -> np.ndarray:
        return expit(2 * np.nan_to_num(matrix[:, 0], nan=0.0))

    offsets = fit_unknown_offsets(np.column_stack([x, noise]), y, model, seed=0)
    truth = np.log((expit(0) + expit(2)) / 2 / (1 - (expit(0) + expit(2)) / 2))
    assert offsets[0] == pytest.approx(truth, abs=0.05)
    assert abs(offsets[1]) < 0.05


def test_fields_are_hidden_at_every_rate() -> None:
    matrix = np.ones((2_000, 10))
    hidden, source = hide_fields_at_random(matrix, 3, np.random.default_rng(0))
    assert hidden.shape == (6_000, 10) and (np.bincount(source) == 3).all()
    counts = np.bincount(np.isnan(hidden).sum(axis=1), minlength=11)
    assert (counts > 200).all()  # from every field known to none


def _partly_known(trained: Trained) -> tuple[Scorer, UnknownFieldOffsets]:
    scorer = Scorer(trained.bundle)
    corrected = partly_known_probabilities(scorer.probabilities, trained.bundle.reference["answers"], scorer.fields)
    assert isinstance(corrected, UnknownFieldOffsets)
    return scorer, corrected


def test_a_blank_lead_scores_the_base_rate(trained: Trained, sample_leads) -> None:
    _, corrected = _partly_known(trained)
    blank = corrected(np.full((1, len(trained.bundle.fields)), np.nan))[0]
    assert blank == pytest.approx(sample_leads["converted"].mean(), abs=0.01)


def test_a_lead_with_every_field_known_keeps_the_models_probability(trained: Trained) -> None:
    scorer, corrected = _partly_known(trained)
    leads = generate_leads(4_000, seed=11)
    matrix = scorer.encode(leads.to_dict("records")).matrix
    complete = matrix[~np.isnan(matrix).any(axis=1)]
    assert len(complete) > 50
    np.testing.assert_array_equal(corrected(complete), scorer.probabilities(complete))


def test_partly_known_leads_are_predicted_better_than_by_the_model_alone(trained: Trained) -> None:
    scorer, corrected = _partly_known(trained)
    leads = generate_leads(4_000, seed=12)
    hidden, source = hide_fields_at_random(scorer.encode(leads.to_dict("records")).matrix, 1, np.random.default_rng(1))
    y = leads["converted"].to_numpy()[source]
    ours, model = corrected(hidden), scorer.probabilities(hidden)
    assert log_loss(y, ours) < log_loss(y, model) - 0.01
    assert abs(ours.mean() - y.mean()) < 0.015  # right on average, however much is unknown


def test_a_bundle_without_offsets_scores_as_the_model(trained: Trained) -> None:
    scorer = Scorer(trained.bundle)
    statistics = {k: v for k, v in trained.bundle.reference["answers"].items() if k != "unknown_offsets"}
    assert partly_known_probabilities(scorer.probabilities, statistics, scorer.fields) == scorer.probabilities
