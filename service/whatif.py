"""What would raise a lead's score: the best change, and the best pair of changes, among fields a rep can act on.

Only fields the spec marks ``actionable: true`` (a demo, a follow-up, email engagement) are changed. Each is
tried at every value it can take: a category's levels, yes and no, and for a number the decile edges of the
training data (the bundle's reference statistics). The lead itself, every single change and every pair of
changes to two fields are scored together, in one call of the same fast path that scores leads. When that
would exceed ``MAX_ROWS`` hypothetical leads, pairs are built from each field's three best single values.

This is what the model associates with conversion for leads like this one. It is not proof that making the
change causes a sale: leads who asked for a demo may have converted because they were keener to begin with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from service.scorer import Scorer
from training.wording import Wording

MAX_ROWS = 4096
PAIR_VALUES = 3  # per field, when every pair would be too many
NOT_CAUSE = (
    "These are the changes the model associates with a higher chance of converting for leads like this one; "
    "they are not proof that making a change would cause a sale."
)
NO_ACTIONABLE = "The dataset spec marks no field `actionable: true`, so there is nothing to suggest."
NOTHING_RAISES = "No change to an actionable field raises this lead's probability."


@dataclass(frozen=True)
class Candidate:
    """One value an actionable field could take: as sent in a lead, and as the trees read it."""

    column: int
    field: str
    value: Any
    code: float


def what_if(scorer: Scorer, wording: Wording, reference: Mapping[str, Any], lead: Mapping[str, Any]) -> dict[str, Any]:
    """The lead's score, then the single change and the pair of changes that raise it most (validated lead in)."""
    encoded = scorer.encode([lead])
    row = encoded.matrix[0]
    actionable = [name for name in scorer.fields if wording.actionable(name)]
    candidates = [c for name in actionable for c in _candidates(scorer, reference, name) if c.code != row[c.column]]
    pairs = _pairs(candidates)
    if 1 + len(candidates) + len(pairs) > MAX_ROWS:
        singles = _probabilities(scorer, row, [[c] for c in candidates])
        pairs = _pairs(_best_per_field(candidates, singles))
    changes: list[list[Candidate]] = [[c] for c in candidates] + pairs
    probabilities = _probabilities(scorer, row, [[], *changes])
    base, tried = float(probabilities[0]), probabilities[1:]
    grades, _ = scorer.grades(probabilities)
    suggestions = _suggestions(scorer, wording, lead, changes, tried, grades[1:], base)
    notes = [NOT_CAUSE] if suggestions else [NO_ACTIONABLE if not actionable else NOTHING_RAISES, NOT_CAUSE]
    return {
        "lead_id": None if lead.get(scorer.id_field or "") is None else str(lead.get(scorer.id_field or "")),
        "probability": base,
        "grade": grades[0],
        "actionable_fields": actionable,
        "suggestions": suggestions,
        "notes": notes,
        "warnings": encoded.warnings[0],
        "model_version": scorer.version,
    }


def _candidates(scorer: Scorer, reference: Mapping[str, Any], name: str) -> list[Candidate]:
    """Every value the field can take: levels, yes/no, or the training data's decile edges for a number."""
    column = scorer.fields.index(name)
    kind = scorer.kinds[column]
    if kind == "categorical":
        return [Candidate(column, name, level, code) for level, code in scorer.codes[name].items()]
    if kind == "boolean":
        return [Candidate(column, name, False, 0.0), Candidate(column, name, True, 1.0)]
    edges = reference.get("fields", {}).get(name, {}).get("edges", [])
    return [Candidate(column, name, float(edge), float(edge)) for edge in edges]


def _pairs(candidates: list[Candidate]) -> list[list[Candidate]]:
    return [[a, b] for a, b in combinations(candidates, 2) if a.column != b.column]


def _best_per_field(candidates: list[Candidate], probabilities: np.ndarray) -> list[Candidate]:
    """Each field's ``PAIR_VALUES`` best values alone: what pairs are built from when all pairs are too many."""
    kept: dict[int, list[tuple[float, Candidate]]] = {}
    for candidate, probability in zip(candidates, probabilities.tolist(), strict=True):
        kept.setdefault(candidate.column, []).append((probability, candidate))
    return [c for ranked in kept.values() for _, c in sorted(ranked, key=lambda pc: -pc[0])[:PAIR_VALUES]]


def _probabilities(scorer: Scorer, row: np.ndarray, changes: list[list[Candidate]]) -> np.ndarray:
    """The lead with each set of changes applied, scored in one call of the fast path."""
    matrix = np.repeat(row[np.newaxis, :], len(changes), axis=0)
    for i, change in enumerate(changes):
        for candidate in change:
            matrix[i, candidate.column] = candidate.code
    return scorer.probabilities(matrix)


def _suggestions(
    scorer: Scorer,
    wording: Wording,
    lead: Mapping[str, Any],
    changes: list[list[Candidate]],
    probabilities: np.ndarray,
    grades: list[str],
    base: float,
) -> list[dict[str, Any]]:
    """The best single change, then the best pair when it beats the single; only changes that raise the score."""
    suggestions: list[dict[str, Any]] = []
    for size in (1, 2):
        indices = [i for i, change in enumerate(changes) if len(change) == size]
        if not indices:
            continue
        best = max(indices, key=lambda i: probabilities[i])
        ceiling = suggestions[0]["probability"] if suggestions else base
        probability = float(probabilities[best])
        if probability > ceiling:
            suggestions.append(_suggestion(wording, lead, changes[best], probability, grades[best], base))
    return suggestions


def _suggestion(
    wording: Wording, lead: Mapping[str, Any], change: list[Candidate], probability: float, grade: str, base: float
) -> dict[str, Any]:
    return {
        "changes": [
            {
                "field": c.field,
                "name": wording.field_name(c.field),
                "value": c.value,
                "label": wording.label(c.field, c.value),
                "current_value": lead.get(c.field),
                "current_label": wording.label(c.field, lead.get(c.field)),
            }
            for c in change
        ],
        "probability": probability,
        "grade": grade,
        "gain": probability - base,
    }
