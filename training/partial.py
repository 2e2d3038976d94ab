"""The probability of a partly known lead: a lead with fields not yet asked, as a rep meets it.

The model learns from leads whose fields are mostly filled in, so it has no good reading for "not asked yet":
trees send a missing value down whichever branch training happened to leave for it, and a blank lead scored
0.03 on the generated sample leads against a base rate of 0.11. The qualification routes then see answers that
only undo that offset as informative.

``UnknownFieldOffsets`` corrects this with one log-odds offset per field, added when the field is unknown. The
offsets are fitted after the model, on the development leads with fields hidden at random (in each copy of a
lead, each field is hidden with a chance drawn uniformly from 0 to 1, so every number of known fields is seen;
a field the lead left empty counts as unknown too, as the routes cannot tell the two apart), by maximising the
likelihood of the true outcomes with the model's log-odds held fixed (a logistic regression with an offset and a
weak L2 penalty). A lead with every field known keeps the model's probability exactly. With the offsets a blank
lead scores the base rate to within about 0.005 on the sample leads and on Caravan.

The offsets are stored with the answer statistics (``answers["unknown_offsets"]``, in the order of
``answers["order"]``); bundles trained before them get no correction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

Probabilities = Callable[[np.ndarray], np.ndarray]

COPIES = 4  # hidden-field versions of each development lead
MAX_LEADS = 50_000  # development leads sampled for the fit; the offsets are few, more rows change them little
PENALTY = 1.0  # L2 penalty on the offsets, in units of one lead's log loss
_EDGE = 1e-9


def log_odds(probabilities: np.ndarray) -> np.ndarray:
    return logit(np.clip(probabilities, _EDGE, 1 - _EDGE))


def hide_fields_at_random(matrix: np.ndarray, copies: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` versions of every row with fields set missing at random; also which source row each came from."""
    source = np.repeat(np.arange(len(matrix)), copies)
    hidden = matrix[source].copy()
    chance = rng.uniform(size=(len(source), 1))
    hidden[rng.uniform(size=hidden.shape) < chance] = np.nan
    return hidden, source


def fit_unknown_offsets(matrix: np.ndarray, y: np.ndarray, probabilities: Probabilities, seed: int = 0) -> np.ndarray:
    """Per field, the log-odds to add when it is unknown, fitted on ``matrix``'s leads with fields hidden."""
    rng = np.random.default_rng(seed)
    if len(matrix) > MAX_LEADS:
        chosen = rng.choice(len(matrix), MAX_LEADS, replace=False)
        matrix, y = matrix[chosen], y[chosen]
    hidden, source = hide_fields_at_random(np.asarray(matrix, dtype=float), COPIES, rng)
    unknown = np.isnan(hidden).astype(float)
    model_log_odds = log_odds(probabilities(hidden))
    outcome = np.asarray(y, dtype=float)[source]
    count = len(outcome)

    def loss_and_gradient(offsets: np.ndarray) -> tuple[float, np.ndarray]:
        eta = model_log_odds + unknown @ offsets
        loss = (np.logaddexp(0.0, eta) - outcome * eta).sum() + PENALTY * offsets @ offsets
        gradient = unknown.T @ (expit(eta) - outcome) + 2 * PENALTY * offsets
        return loss / count, gradient / count

    start = np.zeros(matrix.shape[1])
    return minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B").x


class UnknownFieldOffsets:
    """The model's probabilities with each unknown (missing) field's offset added to the log-odds."""

    def __init__(self, probabilities: Probabilities, offsets: np.ndarray) -> None:
        self.model_probabilities = probabilities
        self.offsets = np.asarray(offsets, dtype=float)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=float)
        probabilities = np.asarray(self.model_probabilities(matrix), dtype=float)
        shift = np.dot(np.isnan(matrix), self.offsets)
        clipped = np.clip(probabilities, _EDGE, 1 - _EDGE)
        corrected = 1.0 / (1.0 + (1.0 - clipped) / clipped * np.exp(-shift))  # expit(logit(p) + shift)
        return np.where(shift != 0, corrected, probabilities)  # every field known: the model's probability, bit for bit


def partly_known_probabilities(probabilities: Probabilities, statistics: dict, fields: list[str]) -> Probabilities:
    """The probabilities the qualification routes use: with the bundle's unknown-field offsets where it has them."""
    offsets = statistics.get("unknown_offsets")
    if offsets is None:
        return probabilities
    position = {name: i for i, name in enumerate(statistics["order"])}
    return UnknownFieldOffsets(probabilities, np.asarray(offsets, dtype=float)[[position[f] for f in fields]])
