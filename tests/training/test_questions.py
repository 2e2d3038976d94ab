"""The next-question ranking: answer statistics from training, conditioned shares, and the planted drivers first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from service.champion import question_ranker
from service.scorer import Scorer
from tests.conftest import Trained
from training.questions import SHRINKAGE, QuestionRanker, binary_entropy
from training.synthetic import GROUND_TRUTH, generate_leads

# Effects GROUND_TRUTH states on a field as it is sent (numbers through a transform are left out: weaker here).
_PLANTED_LEVEL_FIELDS = [
    "contact_role",
    "credit_check",
    "income_band",
    "purchase_timeframe",
    "lead_source",
    "inquiry_type",
]
_PLANTED_FLAGS = ["owns_home", "saboteur_in_group", "demo_requested", "competitor_contract"]


@pytest.fixture(scope="module")
def ranker(trained: Trained) -> QuestionRanker:
    return question_ranker(trained.bundle, Scorer(trained.bundle))


def _row(trained: Trained, **known: object) -> np.ndarray:
    return Scorer(trained.bundle).encode([known]).matrix[0]


def _known(ranker: QuestionRanker, row: np.ndarray) -> dict[int, int]:
    return ranker.known_answers(row, np.isnan(row))


def top_planted_drivers(count: int) -> list[str]:
    """The fields whose planted effect varies most across generated leads: the ones worth asking first."""
    leads = generate_leads(n=20_000, seed=0)
    spread = {}
    for name in _PLANTED_LEVEL_FIELDS:
        spread[name] = leads[name].map(GROUND_TRUTH[name]).fillna(0.0).astype(float).var()
    for name in _PLANTED_FLAGS:
        spread[name] = (GROUND_TRUTH[name] * leads[name].astype(float)).var()
    return sorted(spread, key=lambda name: -spread[name])[:count]


def test_the_first_question_for_a_blank_lead_is_a_planted_top_driver(trained: Trained, ranker: QuestionRanker) -> None:
    ranking = ranker.rank(np.full(len(ranker.fields), np.nan))
    assert ranking.questions[0].field in top_planted_drivers(3)
    noise = {"region", "product_line", "company_size", "city"}
    assert not noise & {q.field for q in ranking.questions[:5]}


def test_every_unknown_field_is_ranked_by_value_of_asking(trained: Trained, ranker: QuestionRanker) -> None:
    row = _row(trained, contact_role="decision_maker", owns_home=True)
    ranking = ranker.rank(row)
    fields = [q.field for q in ranking.questions]
    assert "contact_role" not in fields and "owns_home" not in fields
    assert len(fields) == int(ranker.askable.sum()) - 2
    values = [q.value_of_asking for q in ranking.questions]
    assert values == sorted(values, reverse=True)
    for q in ranking.questions:  # the definition: expected absolute change from what the answers average to
        assert q.shares.sum() == pytest.approx(1.0)
        average = float(q.shares @ q.probabilities)
        assert q.value_of_asking == pytest.approx(float(q.shares @ np.abs(q.probabilities - average)))
        information = binary_entropy(average) - q.shares @ binary_entropy(q.probabilities)
        assert q.entropy_reduction == pytest.approx(information) and q.entropy_reduction >= 0


def test_the_share_of_an_answer_follows_the_known_field_it_depends_on(trained: Trained, ranker: QuestionRanker) -> None:
    """The generator plants home ownership rising with income (12% + 9% per band): the share of "owns home: yes"
    must rise with the known income band, around the overall share."""
    owns_home = ranker.fields.index("owns_home")
    yes = ranker.answers[owns_home].values.index(True)
    overall = ranker.answers[owns_home].shares[yes]
    low = ranker.shares(owns_home, _known(ranker, _row(trained, income_band="<30k")))[yes]
    high = ranker.shares(owns_home, _known(ranker, _row(trained, income_band="150k+")))[yes]
    assert low < overall - 0.05 and high > overall + 0.15
    assert high == pytest.approx(0.12 + 0.09 * 4, abs=0.06) and low == pytest.approx(0.12, abs=0.04)
    # a field with no planted link to home ownership leaves its shares near the overall ones
    region = ranker.shares(owns_home, _known(ranker, _row(trained, region="north")))[yes]
    assert region == pytest.approx(overall, abs=0.03)


def test_the_most_informative_known_field_is_the_one_conditioned_on(trained: Trained, ranker: QuestionRanker) -> None:
    owns_home = ranker.fields.index("owns_home")
    known = _known(ranker, _row(trained, income_band="150k+", region="north", inquiry_type="pricing"))
    assert ranker.fields[ranker.conditioning_field(owns_home, known)] == "income_band"
    assert ranker.conditioning_field(owns_home, {}) is None


def test_a_known_value_finds_its_answer_as_the_array_lookup_does(ranker: QuestionRanker) -> None:
    for column, answers in enumerate(ranker.answers):
        edges = [] if answers.cuts is None else list(answers.cuts)
        values = [*answers.codes, *edges, np.nan, -1.0, -0.5, 2.5, 1e12, -1e12, np.inf, len(answers.to_answer)]
        with np.errstate(invalid="ignore"):  # NumPy warns when it casts infinity to an integer
            expected = answers.answer_index(np.array(values)).tolist()
        assert [ranker.answer_of(column, float(value)) for value in values] == expected, answers.name


def test_rare_known_answers_are_shrunk_toward_the_overall_shares() -> None:
    """Two training leads gave answer 0 to the known field; both then answered 1 to the target."""
    statistics = _two_field_statistics(joint=[[0, 2], [300, 100]])
    ranker = QuestionRanker(["known", "target"], statistics, lambda matrix: np.full(len(matrix), 0.5))
    overall = statistics["fields"]["target"]["shares"]
    shares = ranker.shares(1, {0: 0})
    np.testing.assert_allclose(shares, (np.array([0, 2]) + SHRINKAGE * overall) / (2 + SHRINKAGE))
    many = ranker.shares(1, {0: 1})  # 400 leads: the data speak
    np.testing.assert_allclose(many, (np.array([300, 100]) + SHRINKAGE * overall) / (400 + SHRINKAGE))
    assert shares[1] < 0.5  # two leads answering yes do not make yes certain
    assert many[0] == pytest.approx(0.75, abs=0.01)


def _two_field_statistics(joint: list[list[int]]) -> dict:
    counts = np.array(joint, dtype=np.int32)

    def field(name: str, shares: np.ndarray) -> dict:
        return {
            "name": name, "kind": "boolean", "values": [False, True], "codes": np.array([0.0, 1.0]),
            "labels": ["no", "yes"], "lows": np.full(2, np.nan), "highs": np.full(2, np.nan), "shares": shares,
            "best_shares": shares, "cuts": None, "to_answer": np.array([0, 1]),
        }  # fmt: skip

    total = counts.sum()
    return {
        "fields": {
            "known": field("known", counts.sum(axis=1) / total),
            "target": field("target", counts.sum(axis=0) / total),
        },
        "joint": {"known": {"target": counts}, "target": {"known": counts.T.copy()}},
        "information": np.array([[0.0, 0.1], [0.1, 0.0]]),
        "order": ["known", "target"],
        "shrinkage": SHRINKAGE,
    }


def test_numbers_answer_in_the_bins_of_the_reference_deciles(trained: Trained, ranker: QuestionRanker) -> None:
    budget = ranker.answers[ranker.fields.index("stated_budget")]
    assert list(budget.cuts) == trained.bundle.reference["fields"]["stated_budget"]["edges"]
    assert len(budget.values) == len(budget.cuts) + 1
    assert (
        np.all(np.diff(budget.codes) > 0)
        and np.all(budget.lows <= budget.codes)
        and np.all(budget.codes <= budget.highs)
    )
    assert budget.shares == pytest.approx(np.full(10, 0.1), abs=0.02)
    # a field with a few values answers with each of them
    assert trained.bundle.reference["answers"]["fields"]["owns_home"]["values"] == [False, True]


def test_best_customer_shares_show_the_planted_trait(trained: Trained) -> None:
    owns_home = trained.bundle.reference["answers"]["fields"]["owns_home"]
    yes = owns_home["values"].index(True)
    assert owns_home["best_shares"][yes] > 1.5 * owns_home["shares"][yes]


def test_every_hypothetical_answer_is_scored_in_one_call(trained: Trained) -> None:
    scorer = Scorer(trained.bundle)
    calls: list[int] = []

    def counted(matrix: np.ndarray) -> np.ndarray:
        calls.append(len(matrix))
        return scorer.probabilities(matrix)

    ranker = QuestionRanker(scorer.fields, trained.bundle.reference["answers"], counted)
    ranking = ranker.rank(_row(trained, lead_source="referral"))
    assert calls == [1 + sum(len(q.answers.values) for q in ranking.questions)]
    frame = pd.DataFrame(
        [{"lead_source": "referral", q.field: v} for q in ranking.questions for v in q.answers.values],
        columns=trained.bundle.fields,
    )
    expected = trained.bundle.predict_proba(frame)
    np.testing.assert_allclose(
        np.concatenate([q.probabilities for q in ranking.questions]), expected, rtol=0, atol=1e-9
    )
