"""Fields that describe when a lead came in, not who it is: a month explains nearly all of their variation.

A bank's telemarketing table carries the employment rate and the 3-month Euribor of the day of the call.
They predict well, because conversion varied over the years, but asking a lead "what is the Euribor?" tells
a rep nothing about the lead. With a time column in the spec, such fields are found by measuring how much of
a field's variation its calendar month explains:

- numbers: the correlation ratio η² = between-month sum of squares / total sum of squares;
- categories and booleans: Goodman–Kruskal λ, the share of wrong guesses of the overall most common value
  that guessing each month's most common value avoids.

A field at or above ``THRESHOLD`` (0.9) is a time proxy. Only months with at least ``MIN_MONTH_ROWS`` known
values count, and at least ``MIN_MONTHS`` of them are needed, so a few tiny months cannot explain a field by
chance. Ordinary fields sit near zero: in the generated sample leads the largest is 0.02.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.model import boolean_values, category_text, numeric_values

THRESHOLD = 0.9
MIN_MONTH_ROWS = 20
MIN_MONTHS = 3


def month_explained_shares(features: pd.DataFrame, kinds: dict[str, str], time: pd.Series) -> dict[str, float]:
    """Per field, the share of its variation its calendar month explains (η² or λ); fields too sparse left out."""
    months = _month_numbers(time)
    shares = {}
    for name, kind in kinds.items():
        share = _explained_share(features[name].reset_index(drop=True), kind, months)
        if share is not None:
            shares[name] = share
    return shares


def time_proxies(features: pd.DataFrame, kinds: dict[str, str], time: pd.Series | None) -> dict[str, float]:
    """The fields a month explains at least ``THRESHOLD`` of, with that share; none without a time column."""
    if time is None:
        return {}
    shares = month_explained_shares(features, kinds, time)
    return {name: share for name, share in shares.items() if share >= THRESHOLD}


def _month_numbers(time: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(time.reset_index(drop=True))
    return (stamps.dt.year * 12 + stamps.dt.month - 1).to_numpy()


def _explained_share(column: pd.Series, kind: str, months: np.ndarray) -> float | None:
    if kind == "numeric":
        values = pd.Series(numeric_values(column))
        return _correlation_ratio(values, months)
    if kind == "boolean":
        codes = boolean_values(column)
        text = pd.Series(np.where(np.isnan(codes), None, codes.astype(str)), dtype=object)
    else:
        text = category_text(column)
    return _lambda(text, months)


def _kept_months(known: pd.Series, months: np.ndarray) -> pd.DataFrame | None:
    """Known values with their month, in months with enough of them; None when too few such months."""
    frame = pd.DataFrame({"value": known, "month": months})[known.notna().to_numpy()]
    counts = frame["month"].value_counts()
    large = counts[counts >= MIN_MONTH_ROWS].index
    if len(large) < MIN_MONTHS:
        return None
    return frame[frame["month"].isin(large)]


def _correlation_ratio(values: pd.Series, months: np.ndarray) -> float | None:
    frame = _kept_months(values, months)
    if frame is None:
        return None
    total = float(((frame["value"] - frame["value"].mean()) ** 2).sum())
    if total == 0.0:
        return None
    within = float((frame["value"] - frame.groupby("month")["value"].transform("mean")).pow(2).sum())
    return 1.0 - within / total


def _lambda(text: pd.Series, months: np.ndarray) -> float | None:
    frame = _kept_months(text, months)
    if frame is None:
        return None
    overall_errors = len(frame) - int(frame["value"].value_counts().iloc[0])
    if overall_errors == 0:
        return None
    month_modes = frame.groupby(["month", "value"]).size().groupby(level="month").max()
    month_errors = len(frame) - int(month_modes.sum())
    return 1.0 - month_errors / overall_errors
