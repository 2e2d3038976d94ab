"""Grades A–D: cut points chosen from sales capacity or fixed probabilities."""

from __future__ import annotations

import numpy as np

from training.spec import GradeSpec


def grade_names(spec: GradeSpec) -> list[str]:
    """The spec's grades plus one more for everything below the last cut (A, B, C → D)."""
    names = list(spec.cuts)
    return [*names, chr(ord(names[-1][0]) + 1)]


def grade_thresholds(probabilities: np.ndarray, spec: GradeSpec) -> dict[str, float]:
    """Probability threshold of each grade but the last: by share of leads (quantiles) or as given."""
    if spec.by == "probability":
        return dict(spec.cuts)
    return {grade: float(np.quantile(probabilities, 1.0 - share)) for grade, share in spec.cuts.items()}


def assign_grades(probabilities: np.ndarray, thresholds: dict[str, float], names: list[str]) -> np.ndarray:
    """The best grade whose threshold a lead reaches; the last grade otherwise."""
    return np.array(names, dtype=object)[grade_index(probabilities, thresholds)]


def grade_index(probabilities: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Each probability's grade as a position in the grade names (0 is the best)."""
    cuts = np.array(list(thresholds.values()))
    # thresholds run from best (highest) to worst; count how many a probability fails to reach
    return (np.asarray(probabilities)[:, None] < cuts[None, :]).sum(axis=1)


def grade_of(probability: float, thresholds: dict[str, float], names: list[str]) -> str:
    """`assign_grades` for one probability, without arrays (the single-lead serving path)."""
    return names[sum(probability < cut for cut in thresholds.values())]


def grade_table(
    y: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float], names: list[str]
) -> list[dict[str, float | int | str | None]]:
    """Per grade on the holdout: its threshold, share of leads and the conversion rate to expect."""
    grades = assign_grades(probabilities, thresholds, names)
    rows = []
    for name in names:
        members = grades == name
        count = int(members.sum())
        rows.append(
            {
                "grade": name,
                "min_probability": thresholds.get(name, 0.0),
                "leads": count,
                "share_of_leads": count / len(y),
                "converted": int(y[members].sum()),
                "expected_conversion": float(y[members].mean()) if count else None,
                "mean_probability": float(probabilities[members].mean()) if count else None,
            }
        )
    return rows
