"""Placeholders: values such as a form's `Select` that mean nothing was answered.

Declared ones (the spec's ``missing_values``) become missing before anything else, in training and when
scoring. Likely ones are only suggested: training never drops a value on a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

# Texts that forms and CRMs use for "nothing chosen", compared lower-case without surrounding punctuation.
PLACEHOLDER_WORDS = frozenset(
    {
        "select",
        "please select",
        "select one",
        "choose",
        "choose one",
        "unknown",
        "not known",
        "n/a",
        "na",
        "n.a.",
        "none",
        "null",
        "nil",
        "not specified",
        "unspecified",
        "other-unspecified",
        "not provided",
        "not available",
        "not applicable",
        "no answer",
        "blank",
        "empty",
        "missing",
        "undefined",
        "tbd",
    }
)
_PUNCTUATION = "-–—_?.*#/\\|<>()[]{}:;,!'\" "
# The likeness test needs enough leads on both sides to say "converts the same"; below this it says nothing.
MIN_ROWS_PER_SIDE = 100
EQUIVALENCE_MARGIN = 0.2  # of the overall conversion rate: "the same" means within ±20% of it
EQUIVALENCE_ALPHA = 0.01


def placeholder_key(text: str) -> str:
    """How a value is compared with declared placeholders: trimmed, lower-case (`Select` = ` select `)."""
    return text.strip().lower()


def placeholder_keys(values: Iterable[str]) -> frozenset[str]:
    return frozenset(placeholder_key(value) for value in values)


def placeholder_pattern(values: Iterable[str]) -> str:
    """A regular expression matching exactly the declared placeholders as they are compared, for validators."""
    keys = sorted(placeholder_keys(values))
    alternatives = "|".join("".join(_literal(char) for char in key) for key in keys)
    return rf"(?i)^\s*(?:{alternatives})\s*$"


def _literal(char: str) -> str:
    """One character, literal in Python's and Rust's regular expressions alike."""
    return char if char.isalnum() or char == " " else f"\\u{ord(char):04x}" if ord(char) < 0x10000 else re.escape(char)


def mask_placeholders(column: pd.Series, values: Iterable[str]) -> tuple[pd.Series, dict[str, int]]:
    """The column with its placeholders made missing, and how many times each placeholder was found.

    Text that was only text because of placeholders (`12`, `-`, `15`) reads back as numbers, as an empty
    cell would have let pandas read it.
    """
    keys = placeholder_keys(values)
    textual = pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)
    if not keys or not (textual or isinstance(column.dtype, pd.CategoricalDtype)):
        return column, {}
    levels = pd.unique(column.dropna().to_numpy(dtype=object))
    found = [level for level in levels if isinstance(level, str) and placeholder_key(level) in keys]
    if not found:
        return column, {}
    hit = column.isin(found)
    masked = column.astype(object).mask(hit)
    counts = column[hit].astype(object).value_counts()
    return _as_numbers_if_all_are(masked), {str(value): int(count) for value, count in counts.items()}


def _as_numbers_if_all_are(column: pd.Series) -> pd.Series:
    present = column.dropna()
    if present.empty or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in present):
        return column
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().any():
        return column
    return pd.to_numeric(column, errors="coerce")


def looks_like_placeholder(text: str) -> bool:
    """`Select`, `-- Select --`, `N/A`, `?`, `Not specified`: text that says nothing was chosen."""
    key = placeholder_key(text)
    core = key.strip(_PUNCTUATION)
    return core == "" or key in PLACEHOLDER_WORDS or core in PLACEHOLDER_WORDS


@dataclass(frozen=True)
class PlaceholderSuggestion:
    """A value that may mean "not answered", why it is suspected, and how many leads hold it."""

    field: str
    value: str
    count: int
    reason: str

    def describe(self) -> str:
        return (
            f"{self.field!r} holds {self.value!r} in {self.count:,} leads: {self.reason}; if it means "
            f"'not answered', list it under the spec's missing_values (fields: {{{self.field}: [{self.value!r}]}})"
        )


def suggest_placeholders(
    features: pd.DataFrame, kinds: dict[str, str], converted: np.ndarray
) -> list[PlaceholderSuggestion]:
    """Category values that look like placeholders by name, or that are their field's most common value and
    convert like the leads where the field is missing."""
    from training.model import category_text  # training.model imports this package's reader of the table

    overall = float(np.mean(converted)) if len(converted) else 0.0
    suggestions: list[PlaceholderSuggestion] = []
    for name, kind in kinds.items():
        if kind != "categorical":
            continue
        text = category_text(features[name])
        counts = text.value_counts()
        named = [level for level in counts.index if looks_like_placeholder(str(level))]
        suggestions += [
            PlaceholderSuggestion(name, str(level), int(counts[level]), "the text looks like a placeholder")
            for level in named
        ]
        if len(counts) and counts.index[0] not in named:
            like = _converts_like_missing(text, str(counts.index[0]), converted, overall)
            if like:
                suggestions.append(PlaceholderSuggestion(name, str(counts.index[0]), int(counts.iloc[0]), like))
    return suggestions


def _converts_like_missing(text: pd.Series, mode: str, converted: np.ndarray, overall: float) -> str | None:
    """The mode sides with the missing rows against the other answers: its conversion rate equals theirs (two
    one-sided z-tests, TOST, within ±20% of the overall rate), while the other answers' rate differs from theirs
    (pooled two-proportion z-test). Where missing values are missing at random, every answer near the overall
    rate converts like them, which says nothing; hence the second test."""
    at_mode = (text == mode).to_numpy()
    missing = text.isna().to_numpy()
    others = ~at_mode & ~missing
    if min(int(at_mode.sum()), int(missing.sum()), int(others.sum())) < MIN_ROWS_PER_SIDE or overall <= 0:
        return None
    rate_mode, rate_missing = float(converted[at_mode].mean()), float(converted[missing].mean())
    margin = EQUIVALENCE_MARGIN * overall
    same = _equivalence_p_value(converted[at_mode], converted[missing], margin)
    differs = _difference_p_value(converted[others], converted[missing])
    if same >= EQUIVALENCE_ALPHA or differs >= EQUIVALENCE_ALPHA:
        return None
    return (
        f"its most common value, and those leads convert like the leads where it is missing "
        f"({rate_mode:.1%} vs {rate_missing:.1%}, equal within ±{margin:.1%} by two one-sided tests, {_p(same)}) "
        f"while its other values convert differently ({float(converted[others].mean()):.1%}, {_p(differs)})"
    )


def _p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _equivalence_p_value(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """TOST for two proportions (unpooled standard error): small when |rate a - rate b| < margin."""
    rate_a, rate_b = float(a.mean()), float(b.mean())
    error = math.sqrt(rate_a * (1 - rate_a) / len(a) + rate_b * (1 - rate_b) / len(b))
    if error == 0:
        return 0.0 if abs(rate_a - rate_b) < margin else 1.0
    difference = rate_a - rate_b
    return float(max(stats.norm.sf((difference + margin) / error), stats.norm.sf((margin - difference) / error)))


def _difference_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided pooled two-proportion z-test."""
    pooled = (a.sum() + b.sum()) / (len(a) + len(b))
    error = math.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    if error == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(float(a.mean()) - float(b.mean())) / error))
