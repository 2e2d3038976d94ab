"""The next best question for a lead: the unknown field whose answer would move its probability most.

Training stores what a lead can answer and how often each answer is given (``answer_statistics``, kept in the
bundle's reference statistics under ``answers``):
- a category's levels (its ``MAX_LEVELS`` most common) and a boolean's no/yes;
- a number's values when it takes at most ``MAX_LEVELS`` of them, otherwise the bins of its reference deciles
  (the edges drift monitoring uses), each scored at the median of the training values inside it and labelled
  with their range;
- per pair of fields, how often each answer of one comes with each answer of the other, and the mutual
  information between the two.

For a lead, ``QuestionRanker`` scores every answer of every unknown field in one call of the fast path: the
lead as it is, then one copy per hypothetical answer. The chance of each answer is conditioned on the one known
field that tells most about it (the highest mutual information in the training data): the answer counts of
training leads that gave the same answer to that field, plus ``SHRINKAGE`` pseudo-leads spread as the overall
shares, so a rare known answer moves the shares little. With nothing known, the overall shares.

``value_of_asking`` is the expected absolute change in probability, sum over answers of share × |p(answer) − p̄|,
where p̄ = sum of share × p(answer) is the probability the answers average to; ``entropy_reduction`` is the
expected fall in the binary entropy of the probability (in bits), H(p̄) − sum of share × H(p(answer)): the
information the answer gives about the outcome, never negative. Both are measured from p̄ rather than from the
lead's probability now, because the two differ a little (the unknown-field offsets of ``training.partial`` are
one per field, not per combination of fields), and an answer that only closed that gap would look informative.
The probabilities are those of a partly known lead (``training.partial``): each unknown field adds its offset.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.model import LeadEncoder
from training.wording import Wording

MAX_LEVELS = 20  # answers offered per field; rarer categories are left out of the shares
_NUMERIC_BINS = 10  # as the reference statistics' deciles
SHRINKAGE = 20.0  # pseudo-leads of the overall shares added to a conditional count
_LABEL_DIGITS = 3


@dataclass(frozen=True)
class FieldAnswers:
    """The answers one field can take: as a lead sends them, as the model reads them, and how often."""

    name: str
    kind: str
    values: list[Any]  # as a lead sends them: text, true/false, a number
    codes: np.ndarray  # as the model's matrix holds them
    labels: list[str]  # plain text; the service words them with the bundle's Wording
    lows: np.ndarray  # a number's answer: the lowest and highest training value it stands for
    highs: np.ndarray
    shares: np.ndarray  # among training leads that answered
    best_shares: np.ndarray  # among the best customers that answered
    cuts: np.ndarray | None  # a number's bin boundaries (right-closed search), None for categories and booleans
    to_answer: np.ndarray  # a category code, a boolean or a bin → its answer index, -1 when it is not offered

    def answer_index(self, encoded: np.ndarray) -> np.ndarray:
        """The answer index of each encoded value; -1 for missing and for values not offered."""
        encoded = np.asarray(encoded, dtype=float)
        out = np.full(encoded.shape, -1, dtype=np.int64)
        present = ~np.isnan(encoded)
        if self.cuts is not None:
            slots = np.searchsorted(self.cuts, encoded[present], side="right")
        else:
            slots = encoded[present].astype(np.int64)
        inside = (slots >= 0) & (slots < len(self.to_answer))
        found = np.full(slots.shape, -1, dtype=np.int64)
        found[inside] = self.to_answer[slots[inside]]
        out[present] = found
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "values": self.values,
            "codes": self.codes,
            "labels": self.labels,
            "lows": self.lows,
            "highs": self.highs,
            "shares": self.shares,
            "best_shares": self.best_shares,
            "cuts": self.cuts,
            "to_answer": self.to_answer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldAnswers:
        return cls(**data)


def answer_statistics(
    frame: pd.DataFrame, kinds: dict[str, str], encoder: LeadEncoder, best: np.ndarray
) -> dict[str, Any]:
    """What a lead can answer per field, how often, among the best customers, and jointly with each other field.

    ``frame`` holds the training leads, ``best`` marks the best customers among them.
    """
    matrix = encoder.transform(frame)
    best = np.asarray(best, dtype=bool)
    names = list(kinds)
    fields = [_field_answers(name, kind, matrix[:, j], encoder, best) for j, (name, kind) in enumerate(kinds.items())]
    indices = [field.answer_index(matrix[:, j]) for j, field in enumerate(fields)]
    joint: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
    information = np.zeros((len(names), len(names)))
    for c, (condition, rows_c) in enumerate(zip(fields, indices, strict=True)):
        for t in range(c + 1, len(fields)):  # a pair's table read the other way is its transpose
            target, rows_t = fields[t], indices[t]
            counts = _joint_counts(rows_c, len(condition.values), rows_t, len(target.values))
            joint[condition.name][target.name] = counts
            joint[target.name][condition.name] = np.ascontiguousarray(counts.T)
            information[c, t] = information[t, c] = _mutual_information(counts)
    return {
        "fields": {field.name: field.to_dict() for field in fields},
        "joint": joint,
        "information": information,
        "order": names,
        "shrinkage": SHRINKAGE,
    }


def _field_answers(name: str, kind: str, encoded: np.ndarray, encoder: LeadEncoder, best: np.ndarray) -> FieldAnswers:
    if kind == "categorical":
        levels = list(encoder.categories_[name])[:MAX_LEVELS]  # the encoder keeps levels most common first
        codes = np.arange(len(levels), dtype=float)
        to_answer = np.full(len(encoder.categories_[name]), -1, dtype=np.int64)
        to_answer[: len(levels)] = np.arange(len(levels))
        values: list[Any] = levels
        labels = [str(level) for level in levels]
        cuts, lows = None, np.full(len(levels), np.nan)
        highs = lows
    elif kind == "boolean":
        values, codes, labels = [False, True], np.array([0.0, 1.0]), ["no", "yes"]
        to_answer, cuts, lows = np.array([0, 1], dtype=np.int64), None, np.full(2, np.nan)
        highs = lows
    else:
        values, codes, labels, lows, highs, cuts, to_answer = _numeric_answers(encoded)
    offered = FieldAnswers(name, kind, values, codes, labels, lows, highs, np.empty(0), np.empty(0), cuts, to_answer)
    answers = offered.answer_index(encoded)
    return dataclasses.replace(
        offered, shares=_shares(answers, len(values)), best_shares=_shares(answers[best], len(values))
    )


def _numeric_answers(encoded: np.ndarray) -> tuple[Any, ...]:
    """A few distinct values answer as themselves; otherwise decile bins, scored at their median.

    Returns values, codes, labels, lows, highs, cuts and the bin → answer map."""
    finite = encoded[~np.isnan(encoded)]
    distinct = np.unique(finite)
    if len(distinct) <= MAX_LEVELS:
        cuts = (distinct[1:] + distinct[:-1]) / 2
        values = [_plain_number(v) for v in distinct]
        labels = [_number_text(v) for v in distinct]
        return values, distinct.astype(float), labels, distinct, distinct, cuts, np.arange(len(distinct))
    cuts = np.unique(np.quantile(finite, np.linspace(0, 1, _NUMERIC_BINS + 1)[1:-1]))
    slots = np.searchsorted(cuts, finite, side="right")
    values, labels, lows, highs = [], [], [], []
    to_answer = np.full(len(cuts) + 1, -1, dtype=np.int64)
    for slot in range(len(cuts) + 1):
        inside = finite[slots == slot]
        if inside.size == 0:
            continue
        to_answer[slot] = len(values)
        values.append(_plain_number(float(np.median(inside))))
        lows.append(float(inside.min()))
        highs.append(float(inside.max()))
        low, high = _number_text(lows[-1]), _number_text(highs[-1])
        labels.append(low if low == high else f"{low} to {high}")
    codes = np.array(values, dtype=float)
    return values, codes, labels, np.array(lows), np.array(highs), cuts, to_answer


def _plain_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def _number_text(value: float) -> str:
    """A bound as people write it: 12, 0.35, 18,280."""
    value = float(value)
    if value.is_integer():
        return f"{int(value):,}"
    return f"{float(f'{value:.{_LABEL_DIGITS}g}'):,.{max(0, _LABEL_DIGITS - 1)}f}".rstrip("0").rstrip(".")


def _shares(answers: np.ndarray, count: int) -> np.ndarray:
    counts = np.bincount(answers[answers >= 0], minlength=count).astype(float)
    total = counts.sum()
    return counts / total if total else np.full(count, 1.0 / max(count, 1))


def _joint_counts(rows_c: np.ndarray, count_c: int, rows_t: np.ndarray, count_t: int) -> np.ndarray:
    both = (rows_c >= 0) & (rows_t >= 0)
    flat = np.bincount(rows_c[both] * count_t + rows_t[both], minlength=count_c * count_t)
    return flat.reshape(count_c, count_t).astype(np.int32)


def _mutual_information(counts: np.ndarray) -> float:
    total = counts.sum()
    if not total:
        return 0.0
    joint = counts / total
    outer = joint.sum(axis=1, keepdims=True) @ joint.sum(axis=0, keepdims=True)
    present = joint > 0
    return float(np.sum(joint[present] * np.log(joint[present] / outer[present])))


def answer_labels(answers: FieldAnswers, wording: Wording | None) -> list[str]:
    """Each answer as a rep reads it: the spec's label or a humanised value; a number's bin as its range."""
    return [_answer_label(answers, index, wording) for index in range(len(answers.values))]


def _answer_label(answers: FieldAnswers, index: int, wording: Wording | None) -> str:
    """An answer as a rep reads it: the spec's label or a humanised value; a number's bin as its range."""
    if wording is None:
        return answers.labels[index]
    if answers.kind != "numeric":
        return wording.label(answers.name, answers.values[index])
    low, high = float(answers.lows[index]), float(answers.highs[index])
    if math.isnan(low):
        return wording.label(answers.name, answers.values[index])
    low_text, high_text = wording.number(answers.name, low), wording.number(answers.name, high)
    return low_text if low_text == high_text else f"{low_text} to {high_text}"


def question_text(name: str, wording: Wording | None) -> str:
    """The question a rep asks for a field: the spec's wording, or the field's name without one."""
    return wording.question(name) if wording else name


def binary_entropy(p: np.ndarray | float) -> np.ndarray:
    """In bits; 0 at certainty."""
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


@dataclass(slots=True)  # not frozen: a frozen dataclass costs four times as much to build, once per question
class Question:
    """One unknown field, what each answer would make the lead's probability, and what asking is worth."""

    field: str
    column: int
    answers: FieldAnswers
    shares: np.ndarray
    probabilities: np.ndarray
    value_of_asking: float
    entropy_reduction: float


@dataclass(frozen=True)
class Ranking:
    probability: float
    questions: list[Question]


def _values_of_asking(shares: np.ndarray, probabilities: np.ndarray, sizes: list[int]) -> tuple[list, list]:
    """Per question (its answers end to end in ``shares`` and ``probabilities``, ``sizes`` of them each): the
    expected absolute change from the answers' average, and the expected fall in entropy, in bits."""
    starts = np.cumsum([0, *sizes[:-1]])
    expected = np.add.reduceat(shares * probabilities, starts)
    change = np.add.reduceat(shares * np.abs(probabilities - np.repeat(expected, sizes)), starts)
    remaining = np.add.reduceat(shares * binary_entropy(probabilities), starts)
    information = np.maximum(0.0, binary_entropy(expected) - remaining)  # below 0 only by rounding
    return change.tolist(), information.tolist()


class QuestionRanker:
    """Ranks a lead's unknown fields by the expected change their answer makes; one fast-path call per lead."""

    def __init__(
        self,
        fields: Sequence[str],
        statistics: dict[str, Any],
        probabilities: Callable[[np.ndarray], np.ndarray],
        askable: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self.fields = list(fields)
        self.probabilities = probabilities
        by_name = {name: FieldAnswers.from_dict(data) for name, data in statistics["fields"].items()}
        self.answers = [by_name[name] for name in self.fields]
        order = {name: i for i, name in enumerate(statistics["order"])}
        position = [order[name] for name in self.fields]
        self.information = np.asarray(statistics["information"])[np.ix_(position, position)]
        self.joint = statistics["joint"]
        self.shrinkage = float(statistics["shrinkage"])
        self.askable = np.array(
            [askable(name) and len(answers.values) > 1 for name, answers in zip(self.fields, self.answers, strict=True)]
        )
        self.sizes = [len(answers.codes) for answers in self.answers]
        # every field's answers end to end, as columns and codes of the hypothetical rows
        self.answer_columns = np.repeat(np.arange(len(self.fields)), self.sizes)
        self.answer_codes = np.concatenate([np.asarray(a.codes, dtype=float) for a in self.answers] or [np.empty(0)])
        self.answer_slots = [
            (None if a.cuts is None else np.asarray(a.cuts, dtype=float).tolist(), a.to_answer.tolist())
            for a in self.answers
        ]
        # per target, the fields that tell something about it, most first (ties: the first column), and per pair
        # the shares of the target's answers given each answer of the condition: a request only looks them up
        self.informative = [self._informative_fields(target) for target in range(len(self.fields))]
        self.conditional = {
            (condition, target): self._conditional_shares(condition, target)
            for target, conditions in enumerate(self.informative)
            for condition in conditions
        }

    def _informative_fields(self, target: int) -> list[int]:
        information = self.information[:, target]
        informative = [c for c in range(len(self.fields)) if c != target and information[c] > 0]
        return sorted(informative, key=lambda c: -information[c])

    def _conditional_shares(self, condition: int, target: int) -> np.ndarray:
        """(condition's answers, target's answers): the counts of training leads that gave each answer to the
        condition, plus ``shrinkage`` pseudo-leads spread as the target's overall shares, as shares."""
        counts = np.asarray(self.joint[self.fields[condition]][self.fields[target]])
        shares = (counts + self.shrinkage * self.answers[target].shares) / (
            counts.sum(axis=1, keepdims=True) + self.shrinkage
        )
        shares.flags.writeable = False  # every request's questions hold rows of it
        return shares

    def rank(self, row: np.ndarray | Sequence[float], asked: np.ndarray | None = None) -> Ranking:
        """The lead's probability and its questions, best first; unknown = missing (NaN) in the encoded row.

        ``asked`` marks columns not to ask again (asked already, answered "don't know")."""
        row = np.asarray(row, dtype=float)
        unknown = np.isnan(row)
        open_fields = unknown & self.askable if asked is None else unknown & self.askable & ~asked
        candidates = np.flatnonzero(open_fields).tolist()
        offered = open_fields[self.answer_columns]  # every answer of every open field, in column order
        columns = self.answer_columns[offered]
        matrix = np.repeat(row[None, :], 1 + len(columns), axis=0)
        matrix[np.arange(1, 1 + len(columns)), columns] = self.answer_codes[offered]
        scored = self.probabilities(matrix)  # the lead and every hypothetical answer in one call
        if not candidates:
            return Ranking(float(scored[0]), [])
        known = self.known_answers(row, unknown)
        shares = [self.shares(j, known) for j in candidates]
        sizes = [self.sizes[j] for j in candidates]
        value, information = _values_of_asking(np.concatenate(shares), scored[1:], sizes)
        starts = np.cumsum([1, *sizes]).tolist()
        questions = [
            Question(
                self.fields[candidates[k]],
                candidates[k],
                self.answers[candidates[k]],
                shares[k],
                scored[starts[k] : starts[k + 1]],
                value[k],
                information[k],
            )
            for k in np.argsort(-np.asarray(value), kind="stable").tolist()
        ]
        return Ranking(float(scored[0]), questions)

    def known_answers(self, row: np.ndarray, unknown: np.ndarray) -> dict[int, int]:
        """Each known field's answer index, where its value is one the statistics offer."""
        known = {}
        values = row.tolist()
        for j in np.flatnonzero(~unknown).tolist():
            index = self.answer_of(j, values[j])
            if index >= 0:
                known[j] = index
        return known

    def answer_of(self, column: int, value: float) -> int:
        """``FieldAnswers.answer_index`` of one value, with scalar arithmetic: -1 when missing or not offered."""
        if value != value:  # NaN
            return -1
        cuts, to_answer = self.answer_slots[column]
        if cuts is not None:
            slot = bisect.bisect_right(cuts, value)
        elif math.isfinite(value):
            slot = int(value)
        else:  # no slot, as NumPy's cast of infinity to an integer gives
            return -1
        return to_answer[slot] if 0 <= slot < len(to_answer) else -1

    def shares(self, target: int, known: dict[int, int]) -> np.ndarray:
        """The chance of each answer of ``target``, given the known field that tells most about it."""
        condition = self.conditioning_field(target, known)
        if condition is None:
            return self.answers[target].shares
        return self.conditional[condition, target][known[condition]]

    def conditioning_field(self, target: int, known: dict[int, int]) -> int | None:
        """The known field (column) the shares of ``target`` are conditioned on; None with nothing to go on."""
        if known:
            for condition in self.informative[target]:
                if condition in known:
                    return condition
        return None
