"""Tables for exploring a lead table and reviewing a trained model: what the notebooks show, as functions.

Every function takes a lead table (or a bundle and leads) and returns a small pandas DataFrame that a person
can read as is: conversion by field, missing values, the trend over time, partial dependence of one field,
and the reasons behind individual leads. Scores and contributions come from the bundle's own pipeline
(``training.explain.lead_contributions``), so what a notebook shows is what the service returns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.bundle import Bundle
from training.data import FieldKind, LeadTable
from training.explain import lead_contributions
from training.grades import assign_grades
from training.model import boolean_values, category_text, numeric_values
from training.reference import percentile

MISSING = "(missing)"
DATA_VARIABLE = "LEADSCORE_NOTEBOOK_DATA"
SPEC_VARIABLE = "LEADSCORE_NOTEBOOK_SPEC"
MODEL_VARIABLE = "LEADSCORE_MODEL_DIR"
DEFAULT_DATA = Path("data/sample/leads.csv")
DEFAULT_SPEC = Path("data/specs/sample.yaml")
DEFAULT_MODEL_DIR = Path("models/champion")
# Example leads: one near the top of the score range, one in the middle, one near the bottom.
EXAMPLE_QUANTILES = {"strong": 0.99, "middling": 0.50, "weak": 0.05}


@dataclass(frozen=True)
class NotebookInputs:
    """Where the notebooks read their lead table, its dataset spec and the model bundle."""

    data: Path
    spec: Path
    model_dir: Path


def project_root(start: Path | None = None) -> Path:
    """The folder holding pyproject.toml at or above ``start``, so notebooks run from notebooks/ or the root."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def notebook_inputs(start: Path | None = None) -> NotebookInputs:
    """Paths from the environment, defaulting to the files `make run` writes, relative to the project root."""
    root = project_root(start)

    def chosen(variable: str, default: Path) -> Path:
        path = Path(os.environ.get(variable) or default)
        return path if path.is_absolute() else root / path

    return NotebookInputs(
        data=chosen(DATA_VARIABLE, DEFAULT_DATA),
        spec=chosen(SPEC_VARIABLE, DEFAULT_SPEC),
        model_dir=chosen(MODEL_VARIABLE, DEFAULT_MODEL_DIR),
    )


# ---------------------------------------------------------------- exploring the lead table


def level_labels(column: pd.Series, kind: FieldKind, bins: int = 5) -> pd.Series:
    """Each lead's level as words: categories as written, booleans yes/no, numbers as quantile ranges."""
    if kind == "numeric":
        return _range_labels(column, bins)
    if kind == "boolean":
        codes = boolean_values(column)
        words = np.where(np.isnan(codes), MISSING, np.where(codes == 1.0, "yes", "no"))
        return pd.Series(words, index=column.index, dtype=object)
    return category_text(column).astype(object).where(lambda text: text.notna(), MISSING)


def _range_labels(column: pd.Series, bins: int) -> pd.Series:
    """Quantile bins named by the smallest and largest value they hold, in increasing order, missing last."""
    values = pd.Series(numeric_values(column), index=column.index)
    codes = pd.qcut(values, q=bins, labels=False, duplicates="drop")
    spans = values.groupby(codes).agg(["min", "max"])
    names = {code: _span(low, high) for code, (low, high) in spans.iterrows()}
    order = [names[code] for code in sorted(names)] + [MISSING]
    labels = codes.map(names).astype(object).where(codes.notna(), MISSING)
    return pd.Series(pd.Categorical(labels, categories=order, ordered=True), index=column.index)


def _span(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g} to {high:g}"


def conversion_by(column: pd.Series, converted: np.ndarray, kind: FieldKind, bins: int = 5) -> pd.DataFrame:
    """Leads and conversion rate per level of one field, with the lift over the overall rate.

    Numeric ranges keep their order; other levels are sorted best-converting first, missing values last.
    """
    outcome = np.asarray(converted, dtype=float)
    frame = pd.DataFrame({"level": level_labels(column, kind, bins), "converted": outcome})
    grouped = frame.groupby("level", observed=True, sort=kind == "numeric")
    table = grouped["converted"].agg(leads="size", converted="sum", conversion_rate="mean").reset_index()
    table["converted"] = table["converted"].astype(int)
    table["share_of_leads"] = table["leads"] / len(outcome)
    table["lift"] = table["conversion_rate"] / outcome.mean()
    table["level"] = table["level"].astype(str)
    if kind != "numeric":
        table = table.sort_values(["conversion_rate", "leads"], ascending=False, kind="stable")
        table = pd.concat([table[table["level"] != MISSING], table[table["level"] == MISSING]])
    table = table.reset_index(drop=True)
    table.columns.name = column.name
    return table[["level", "leads", "share_of_leads", "converted", "conversion_rate", "lift"]]


def conversion_spread(table: LeadTable, min_leads: int = 30, bins: int = 5) -> pd.DataFrame:
    """Per field: the best and worst converting level (with at least ``min_leads`` leads) and the gap between.

    A quick way to find the fields worth a closer look on a table nobody has explored yet.
    """
    rows = []
    for name, kind in table.kinds.items():
        levels = conversion_by(table.features[name], table.converted, kind, bins)
        levels = levels[levels["leads"] >= min_leads]
        if len(levels) < 2:
            continue
        best = levels.loc[levels["conversion_rate"].idxmax()]
        worst = levels.loc[levels["conversion_rate"].idxmin()]
        rows.append(
            {
                "field": name,
                "kind": kind,
                "best_level": best["level"],
                "best_rate": best["conversion_rate"],
                "worst_level": worst["level"],
                "worst_rate": worst["conversion_rate"],
                "spread": best["conversion_rate"] - worst["conversion_rate"],
            }
        )
    columns = ["field", "kind", "best_level", "best_rate", "worst_level", "worst_rate", "spread"]
    spread = pd.DataFrame(rows, columns=columns)
    return spread.sort_values("spread", ascending=False, kind="stable").reset_index(drop=True)


def missingness(features: pd.DataFrame, converted: np.ndarray) -> pd.DataFrame:
    """How often each field is empty, and whether leads with it empty convert differently."""
    outcome = np.asarray(converted, dtype=float)
    rows = []
    for name in features.columns:
        empty = features[name].isna().to_numpy()
        rows.append(
            {
                "field": name,
                "missing": int(empty.sum()),
                "missing_share": float(empty.mean()),
                "rate_when_missing": float(outcome[empty].mean()) if empty.any() else np.nan,
                "rate_when_present": float(outcome[~empty].mean()) if (~empty).any() else np.nan,
            }
        )
    table = pd.DataFrame(rows, columns=["field", "missing", "missing_share", "rate_when_missing", "rate_when_present"])
    return table.sort_values("missing_share", ascending=False, kind="stable").reset_index(drop=True)


def conversion_over_time(time: pd.Series, converted: np.ndarray, freq: str = "M") -> pd.DataFrame:
    """Leads and conversion rate per period (``M`` months, ``W`` weeks, ``Q`` quarters) of the time column."""
    moments = pd.to_datetime(pd.Series(time).reset_index(drop=True))
    periods = moments.dt.to_period(freq).dt.start_time
    frame = pd.DataFrame({"period": periods, "converted": np.asarray(converted, dtype=float)})
    table = frame.groupby("period")["converted"].agg(leads="size", converted="sum", conversion_rate="mean")
    table["converted"] = table["converted"].astype(int)
    return table.reset_index()


# ---------------------------------------------------------------- reviewing a model


def field_grid(bundle: Bundle, leads: pd.DataFrame, field: str, points: int = 10) -> list[Any]:
    """Values to try for one field: its most common categories, yes/no, or quantiles of its numbers; and missing."""
    encoder = bundle.pipeline["encode"]
    kind = encoder.kinds[field]
    if kind == "boolean":
        return [False, True, None]
    if kind == "categorical":
        return [*encoder.categories_[field][:points], None]
    values = numeric_values(leads[field])
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [None]
    return [*np.unique(np.quantile(values, np.linspace(0.05, 0.95, points))).tolist(), None]


def partial_dependence(
    bundle: Bundle,
    leads: pd.DataFrame,
    field: str,
    values: Sequence[Any] | None = None,
    rows: int = 1_000,
    seed: int = 0,
) -> pd.DataFrame:
    """The average predicted conversion if every lead had each value of ``field``, everything else as it is.

    Brute force over the bundle's pipeline, so missing values and categories are scored exactly as the
    service scores them (scikit-learn's version cannot put an empty value or text on its grid).
    ``None`` among the values means the field left empty.
    """
    if field not in bundle.fields:
        raise ValueError(f"{field!r} is not a field of model {bundle.version}; its fields: {', '.join(bundle.fields)}")
    sample = _sample_rows(leads.reindex(columns=bundle.fields), rows, seed)
    grid = list(values) if values is not None else field_grid(bundle, leads, field)
    copies = [sample.assign(**{field: _repeated(value, len(sample))}) for value in grid]
    probabilities = bundle.predict_proba(pd.concat(copies, ignore_index=True)).reshape(len(grid), len(sample))
    return pd.DataFrame(
        {
            "value": pd.Series(grid, dtype=object),
            "label": [value_label(value) for value in grid],
            "mean_probability": probabilities.mean(axis=1),
        }
    )


def _sample_rows(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)


def _repeated(value: Any, length: int) -> pd.Series:
    """One value repeated, as an object column, so None stays an empty field for every kind."""
    return pd.Series([value] * length, dtype=object)


def value_label(value: Any) -> str:
    """A field value as a seller reads it: yes/no, 12 rather than 12.0, and (missing) for an empty field."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and np.isnan(value))


@dataclass(frozen=True)
class LeadExplanation:
    """One lead's score as the service reports it, with every field's contribution to it."""

    probability: float
    grade: str
    percentile: float
    base_value: float
    reasons: pd.DataFrame  # field, value, contribution, effect; largest effect first

    def summary(self, top: int = 3) -> str:
        """One line a seller can read: the score and the strongest reasons either way."""
        reasons = "; ".join(
            f"{r.field} = {value_label(r.value)} {r.effect} it ({r.contribution:+.2f})"
            for r in self.reasons.head(top).itertuples()
        )
        return f"{self.probability:.1%} (grade {self.grade}, scores above {self.percentile:.0f}% of leads): {reasons}"

    def readable(self, top: int = 6) -> pd.DataFrame:
        """The largest pushes as a table for people: values in words, contributions rounded."""
        table = self.reasons.head(top).copy()
        table["value"] = table["value"].map(value_label)
        table["contribution"] = table["contribution"].round(3)
        return table


def explain_leads(bundle: Bundle, leads: pd.DataFrame) -> list[LeadExplanation]:
    """Probability, grade, percentile and per-field contributions of each lead, from the bundle's pipeline."""
    frame = leads.reindex(columns=bundle.fields).reset_index(drop=True)
    probabilities = bundle.predict_proba(frame)
    contributions, base = lead_contributions(bundle.pipeline, frame)
    grades = assign_grades(probabilities, bundle.grades["thresholds"], bundle.grades["names"])
    percentiles = percentile(probabilities, bundle.reference["scores"]["quantiles"])
    return [
        LeadExplanation(
            probability=float(probabilities[i]),
            grade=str(grades[i]),
            percentile=float(percentiles[i]),
            base_value=float(base[i]),
            reasons=_reasons_table(bundle.fields, frame.iloc[i], contributions[i]),
        )
        for i in range(len(frame))
    ]


def _reasons_table(fields: list[str], lead: pd.Series, contributions: np.ndarray) -> pd.DataFrame:
    """Every field with its value and contribution, the largest push either way first."""
    order = np.argsort(-np.abs(contributions), kind="stable")
    values = [None if _is_missing(lead[fields[j]]) else lead[fields[j]] for j in order]
    return pd.DataFrame(
        {
            "field": [fields[j] for j in order],
            "value": pd.Series(values, dtype=object),
            "contribution": contributions[order],
            "effect": [_effect(contributions[j]) for j in order],
        }
    )


def _effect(contribution: float) -> str:
    return "raises" if contribution > 0 else "lowers" if contribution < 0 else "does not move"


def example_leads(bundle: Bundle, leads: pd.DataFrame) -> pd.DataFrame:
    """Three leads to walk through: a strong, a middling and a weak one by the model's score."""
    probabilities = bundle.predict_proba(leads.reindex(columns=bundle.fields))
    chosen = {
        name: int(np.argmin(np.abs(probabilities - np.quantile(probabilities, q))))
        for name, q in EXAMPLE_QUANTILES.items()
    }
    examples = leads.iloc[list(chosen.values())].copy()
    examples.index = pd.Index(list(chosen), name="example")
    return examples
