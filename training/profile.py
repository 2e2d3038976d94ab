"""Profile the best customers: what they share, how much more often than other leads, and what to ask.

The classic sales advice is to look at your best existing customers, find what they have in common
("they all own their homes") and ask new leads about exactly that. Each candidate trait (a level of a
categorical or boolean field, or a range of a numeric field) is tested best customers vs the other
leads with a one-sided Fisher exact test, Benjamini–Hochberg controls the false discovery rate over all
candidates, and the survivors are ranked by their information-value contribution, which favours traits
most best customers share over rare ones with a high lift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from training.errors import LeadscoreError
from training.wording import Wording

FieldKind = Literal["numeric", "boolean", "categorical"]

# Quantiles of all leads that cut a numeric field into bins (quintiles); tails are unions of bins.
_BIN_QUANTILES = (0.2, 0.4, 0.6, 0.8)
_EPSILON = 1e-6  # keeps the information value finite when a share is zero
_YES = frozenset({"true", "yes", "y", "t", "1", "1.0"})
_NO = frozenset({"false", "no", "n", "f", "0", "0.0"})


@dataclass(frozen=True)
class Trait:
    """One thing best customers share more often than other leads, with the evidence for it."""

    field: str
    condition: str
    kind: Literal["level", "range"]
    value: str | None
    low: float | None
    high: float | None
    share_best: float
    share_all: float
    lift: float
    support: int
    p_value: float
    q_value: float
    score: float
    question: str  # what a rep asks, in the spec's words: "Do you own your home?"
    answer: str = ""  # the answer best customers give: "Yes", "Decision-maker", "$18,300 to $382,000"
    evidence: str = ""  # "Yes: 74% of best customers, 27% of all leads"
    reaches: str = ""  # a range running to the field's largest ("top") or smallest ("bottom") value

    def worded(self, wording: Wording) -> Trait:
        """The same trait in the words ``wording`` gives its field."""
        answer = _answer(wording, self.field, self.value, self.low, self.high, self.reaches)
        return replace(
            self,
            question=wording.question(self.field),
            answer=answer,
            evidence=f"{answer}: {self.share_best:.0%} of best customers, {self.share_all:.0%} of all leads",
        )


@dataclass(frozen=True)
class Profile:
    """Who the best customers are and the traits that set them apart, best first."""

    definition: str
    n_best: int
    n_all: int
    traits: list[Trait]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, so a report file and the HTTP API can carry the profile as is."""
        return {
            "definition": self.definition,
            "n_best": int(self.n_best),
            "n_all": int(self.n_all),
            "traits": [_plain(asdict(trait)) for trait in self.traits],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Rebuild a profile read back from JSON."""
        return cls(
            definition=str(data["definition"]),
            n_best=int(data["n_best"]),
            n_all=int(data["n_all"]),
            traits=[Trait(**trait) for trait in data["traits"]],
        )

    def worded(self, wording: Wording) -> Profile:
        """Every trait in the words ``wording`` gives (a bundle's own, so older profiles read the same way)."""
        return replace(self, traits=[trait.worded(wording) for trait in self.traits])

    def to_text(self, top: int = 10) -> str:
        """For the command line: the questions to ask new leads, each with what best customers answer."""
        head = f"Best customers: {self.definition} ({self.n_best:,} of {self.n_all:,} leads)"
        if not self.traits:
            return f"{head}\nNo trait sets them apart from the other leads."
        lines = [head, "Ask new leads, most telling first:"]
        for rank, t in enumerate(self.traits[:top], start=1):
            lines.append(f"{rank:>2}. {t.question} {t.evidence} ({t.lift:.1f}×, q {t.q_value:.0e})")
        if len(self.traits) > top:
            lines.append(f"... and {len(self.traits) - top} more")
        return "\n".join(lines)


def worded_profile(profile: dict[str, Any], wording: Wording) -> dict[str, Any]:
    """A bundle's stored profile in its own words: the one reading the CLI, the page and the API all show."""
    return Profile.from_dict(profile).worded(wording).to_dict()


@dataclass(frozen=True)
class _Candidates:
    """Candidate traits of one field, counted: per candidate, how many best customers and leads have it."""

    field: str
    field_kind: FieldKind
    kind: Literal["level", "range"]
    values: list[str | None]
    lows: np.ndarray
    highs: np.ndarray
    n_best_with: np.ndarray
    n_all_with: np.ndarray
    reaches: list[str] | None = None  # per range: "top" or "bottom" when it runs to the field's largest or smallest


def profile_best_customers(
    frame: pd.DataFrame,
    kinds: dict[str, FieldKind],
    converted: pd.Series,
    value: pd.Series | None = None,
    top_share: float = 0.5,
    alpha: float = 0.05,
    min_support: int = 10,
    min_share_best: float = 0.05,
    max_traits: int = 15,
    wording: Wording | None = None,
) -> Profile:
    """Find what the best customers share, so sales can ask new leads about exactly that; fields a rep cannot ask
    (``wording``'s askable: the spec's, and fields that only say when a lead came in) are left out."""
    _check_inputs(frame, kinds, converted, value, top_share)
    wording = wording or Wording.from_spec({}, kinds)
    kinds = {name: kind for name, kind in kinds.items() if wording.askable(name)}
    is_converted = converted.fillna(False).to_numpy(dtype=bool)
    best, definition = _best_customers(is_converted, value, top_share, min_support)
    n_best, n_all = int(best.sum()), len(best)
    if n_best == 0:
        raise LeadscoreError("no converted leads to profile; check the spec's target and positive value")
    if n_best == n_all:
        raise LeadscoreError("every lead is a best customer, so there is nothing to compare them with")
    groups = [_count_candidates(frame[name], name, kind, best) for name, kind in kinds.items()]
    table = _score(_stack(groups), n_best, n_all)
    kept = _drop_overlapping(_passing(table, alpha, min_support, min_share_best))
    kept = kept.sort_values("score", ascending=False, kind="stable").head(max_traits)
    traits = [_trait(row).worded(wording) for row in kept.to_dict("records")]
    return Profile(definition=definition, n_best=n_best, n_all=n_all, traits=traits)


def best_customers(converted: pd.Series, value: pd.Series | None = None) -> np.ndarray:
    """Which leads are best customers, as the profile defines them (with its default settings)."""
    return _best_customers(converted.fillna(False).to_numpy(dtype=bool), value, 0.5, 10)[0]


def _best_customers(
    converted: np.ndarray, value: pd.Series | None, top_share: float, min_support: int
) -> tuple[np.ndarray, str]:
    """Best = the most valuable converted leads when deal values exist, else every converted lead."""
    if value is None:
        return converted, "converted leads"
    amounts = pd.to_numeric(value, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    name = value.name if value.name is not None else "value"
    converted_amounts = amounts[converted & ~np.isnan(amounts)]
    if converted_amounts.size == 0:
        return converted, f"converted leads (no {name} recorded for them)"
    threshold = np.quantile(converted_amounts, 1 - top_share)
    best = converted & (amounts >= threshold)
    if best.sum() < min_support:
        top = f"the top {top_share:.0%} by {name}"
        return converted, f"converted leads ({top} are only {int(best.sum())}, fewer than {min_support})"
    return best, f"top {top_share:.0%} of converted leads by {name}"


def _check_inputs(
    frame: pd.DataFrame,
    kinds: dict[str, FieldKind],
    converted: pd.Series,
    value: pd.Series | None,
    top_share: float,
) -> None:
    """Fail early with a message that says what to fix."""
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise LeadscoreError(f"fields {missing} are not in the lead table; profile only its columns")
    unknown = {name: kind for name, kind in kinds.items() if kind not in ("numeric", "boolean", "categorical")}
    if unknown:
        raise LeadscoreError(f"unknown field kinds {unknown}; use numeric, boolean or categorical")
    lengths = {len(frame), len(converted)} | ({len(value)} if value is not None else set())
    if len(lengths) > 1:
        raise LeadscoreError("frame, converted and value must have one entry per lead; their lengths differ")
    if not 0 < top_share <= 1:
        raise LeadscoreError(f"top_share must be in (0, 1]; got {top_share}")


def _count_candidates(column: pd.Series, name: str, kind: FieldKind, best: np.ndarray) -> _Candidates:
    """Dispatch by kind: levels for booleans and categories, quantile ranges for numbers."""
    if kind == "numeric":
        return _range_candidates(column, name, best)
    return _level_candidates(column, name, kind, best)


def _level_candidates(column: pd.Series, name: str, kind: FieldKind, best: np.ndarray) -> _Candidates:
    """Count each level once; spellings of one level (True, 1, "yes") are merged."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    texts = [_boolean_text(u, name) if kind == "boolean" else _level_text(u) for u in uniques]
    present = codes >= 0
    n_all_with = np.bincount(codes[present], minlength=len(uniques))
    n_best_with = np.bincount(codes[present & best], minlength=len(uniques))
    merged = pd.DataFrame({"level": texts, "all": n_all_with, "best": n_best_with}).groupby("level", sort=True).sum()
    merged = merged[merged["all"] > 0]  # unused categories of a pandas Categorical are not traits
    nan = np.full(len(merged), np.nan)
    return _Candidates(
        name, kind, "level", list(merged.index), nan, nan, merged["best"].to_numpy(), merged["all"].to_numpy()
    )


def _range_candidates(column: pd.Series, name: str, best: np.ndarray) -> _Candidates:
    """Quantile bins of all leads plus upper and lower tails, so a monotone driver is one range."""
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    known = ~np.isnan(numbers)
    ordered = np.sort(numbers[known])
    if ordered.size == 0:
        empty = np.array([])
        return _Candidates(name, "numeric", "range", [], empty, empty, empty, empty)
    cuts = np.unique(np.quantile(ordered, _BIN_QUANTILES))
    # bin k holds cuts[k-1] <= x < cuts[k]; empty bins are dropped below
    starts = np.concatenate([[0], np.searchsorted(ordered, cuts, side="left")])
    ends = np.concatenate([starts[1:], [ordered.size]])
    best_bins = np.bincount(np.searchsorted(cuts, numbers[known & best], side="right"), minlength=len(starts))
    filled = ends > starts
    lows, highs = ordered[starts[filled]], ordered[ends[filled] - 1]
    return _with_tails(name, lows, highs, best_bins[filled], (ends - starts)[filled])


def _with_tails(name: str, lows: np.ndarray, highs: np.ndarray, best: np.ndarray, every: np.ndarray) -> _Candidates:
    """Single bins, then unions of two or more bins from the bottom up and from the top down."""
    count = len(lows)
    inner = np.arange(1, max(count - 1, 1))  # a tail of one bin would repeat the bottom or top bin
    low_idx = np.concatenate([np.arange(count), np.zeros(len(inner), dtype=int), inner])
    high_idx = np.concatenate([np.arange(count), inner, np.full(len(inner), count - 1)])
    best_cum, every_cum = np.concatenate([[0], np.cumsum(best)]), np.concatenate([[0], np.cumsum(every)])
    return _Candidates(
        field=name,
        field_kind="numeric",
        kind="range",
        values=[None] * len(low_idx),
        lows=lows[low_idx],
        highs=highs[high_idx],
        n_best_with=best_cum[high_idx + 1] - best_cum[low_idx],
        n_all_with=every_cum[high_idx + 1] - every_cum[low_idx],
        reaches=[_reach(low, high, count) for low, high in zip(low_idx, high_idx, strict=True)],
    )


def _reach(low: int, high: int, count: int) -> str:
    """Which end of the field a range of bins runs to, so it can read "$18,300 or more" or "up to 12 days"."""
    if count < 2:
        return ""
    return "top" if high == count - 1 else "bottom" if low == 0 else ""


def _stack(groups: list[_Candidates]) -> pd.DataFrame:
    """One row per candidate trait across all fields, so tests and FDR control run once."""
    frames = [
        pd.DataFrame(
            {
                "field": g.field,
                "field_kind": g.field_kind,
                "kind": g.kind,
                "value": pd.Series(g.values, dtype=object),
                "low": g.lows,
                "high": g.highs,
                "support": g.n_best_with.astype(np.int64),
                "n_all_with": g.n_all_with.astype(np.int64),
                "reaches": g.reaches or [""] * len(g.values),
            }
        )
        for g in groups
        if len(g.values)
    ]
    columns = ["field", "field_kind", "kind", "value", "low", "high", "support", "n_all_with", "reaches"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _score(table: pd.DataFrame, n_best: int, n_all: int) -> pd.DataFrame:
    """Shares, lift, the one-sided Fisher p-value (best vs the rest), BH q-value and information value."""
    support = table["support"].to_numpy(dtype=np.int64)
    with_trait = table["n_all_with"].to_numpy(dtype=np.int64)
    share_best = support / n_best
    share_all = with_trait / n_all
    share_rest = (with_trait - support) / (n_all - n_best)
    # P(at least this many best customers carry the trait | trait and best-customer totals): Fisher, one-sided
    p_value = stats.hypergeom.sf(support - 1, n_all, with_trait, n_best) if len(table) else np.array([])
    p_value = np.clip(p_value, 0.0, 1.0)
    q_value = stats.false_discovery_control(p_value, method="bh") if len(table) else p_value
    ratio = (share_best + _EPSILON) / (share_rest + _EPSILON)
    return table.assign(
        share_best=share_best,
        share_all=share_all,
        lift=np.divide(share_best, share_all, out=np.zeros_like(share_best), where=share_all > 0),
        p_value=p_value,
        q_value=q_value,
        score=(share_best - share_rest) * np.log(ratio),
    )


def _passing(table: pd.DataFrame, alpha: float, min_support: int, min_share_best: float) -> pd.DataFrame:
    """Only traits that are more common among best customers, significant after FDR, and common enough."""
    keep = (
        (table["lift"] > 1)
        & (table["q_value"] < alpha)
        & (table["support"] >= min_support)
        & (table["share_best"] >= min_share_best)
    )
    return table[keep]


def _drop_overlapping(table: pd.DataFrame) -> pd.DataFrame:
    """Overlapping ranges and complementary yes/no say the same thing: keep the best-scoring one per field."""
    single = table["field_kind"].isin(["numeric", "boolean"])
    best_single = table[single].sort_values("score", ascending=False, kind="stable").drop_duplicates("field")
    return pd.concat([table[~single], best_single])


def _trait(row: dict[str, Any]) -> Trait:
    """Turn a scored candidate into a trait with its condition (worded afterwards)."""
    is_range = row["kind"] == "range"
    low = float(row["low"]) if is_range else None
    high = float(row["high"]) if is_range else None
    value = None if is_range else str(row["value"])
    condition = f"{row['field']} {_span(low, high)}" if is_range else f"{row['field']} = {value}"
    return Trait(
        field=str(row["field"]),
        condition=condition,
        kind="range" if is_range else "level",
        value=value,
        low=low,
        high=high,
        share_best=float(row["share_best"]),
        share_all=float(row["share_all"]),
        lift=float(row["lift"]),
        support=int(row["support"]),
        p_value=float(row["p_value"]),
        q_value=float(row["q_value"]),
        score=float(row["score"]),
        question="",
        reaches=str(row["reaches"]) if is_range else "",
    )


def _answer(
    wording: Wording, field: str, value: str | None, low: float | None, high: float | None, reaches: str
) -> str:
    """The answer that marks the trait, in words: a level's label, or a range with its unit."""
    if low is None or high is None:
        return wording.label(field, value)
    if low == high:
        return wording.label(field, low)
    if reaches == "top":
        return f"{wording.label(field, low)} or more"
    if reaches == "bottom":
        return f"up to {wording.label(field, high)}"
    return f"{wording.label(field, low)} to {wording.label(field, high)}"


def _span(low: float | None, high: float | None) -> str:
    """A range as people say it: "12 to 40", or "= 0" when it holds a single value."""
    return f"= {_number(low)}" if low == high else f"{_number(low)} to {_number(high)}"


def _number(number: float | None) -> str:
    """Bounds as people write them: 12, 0.35, 250000 (no exponent for whole numbers)."""
    if number is None:
        return ""
    if float(number).is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:g}"


def _level_text(level: object) -> str:
    """A category as text; whole floats (codes read with gaps) print without '.0'."""
    if isinstance(level, float | np.floating) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _boolean_text(level: object, name: str) -> str:
    """Map the spellings of a boolean (True, 1, "true", "yes") to yes / no."""
    word = str(level).strip().lower()
    if isinstance(level, bool | np.bool_):
        return "yes" if level else "no"
    if word in _YES:
        return "yes"
    if word in _NO:
        return "no"
    raise LeadscoreError(
        f"field {name!r} is boolean but holds {level!r}; use true/false, yes/no or 0/1, or declare it categorical"
    )


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Replace numpy scalars with Python ones so json.dumps accepts the result."""
    return {key: v.item() if isinstance(v, np.generic) else v for key, v in values.items()}
