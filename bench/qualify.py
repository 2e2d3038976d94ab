"""Are the next questions the right ones? Holdout log loss and ROC AUC after 1, 2, 3 and 5 answers, per policy.

For each table (the generated sample leads, and the CoIL 2000 Caravan customers from the islp wheel) one model
is trained with ``fit_and_evaluate``; then every holdout lead starts with nothing known and its fields are
revealed one at a time, in the order a policy picks among the fields a rep may ask (the bundle's wording), with
its true value (a field the lead left empty stays missing once asked). After each step the same model scores
the lead from the revealed fields alone, every other field unknown, as the next-question route scores a partly
known lead (the serving fast path with the bundle's unknown-field offsets, ``training.partial``). Policies:
- next question: per lead, the field ``training.questions.QuestionRanker`` puts first given what is known;
- profile order: the fields of the best-customer profile's traits, best first, then the rest by importance;
- importance order: the bundle's global importance (holdout ROC AUC lost when a field is shuffled);
- random order: the mean over 20 random orders.

A second table gives, per step, how far the next-question policy is ahead of the better of the profile and
importance orders on each metric, with a paired bootstrap standard error: on a few thousand holdout leads two
orders that pick nearly the same fields differ by less than their noise.

`python bench/qualify.py` runs both tables; `--short` a 3,000-lead generated table only (the test suite runs
a smaller one through ``run_policies``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, print_table, save_results
from bench.quality import caravan_frame

STEPS = (1, 2, 3, 5)
RANDOM_ORDERS = 20
POLICIES = ("next question", "profile order", "importance order", "random order")
BOOTSTRAP = 200  # resamples of the holdout for the standard error of a margin


def fitted_model(frame: pd.DataFrame, spec: Path, seed: int = 0):
    """One model on the table, as `leadscore train` fits it; its holdout leads and outcomes."""
    from training.data import prepare_leads
    from training.spec import read_spec
    from training.train import TrainOptions, fit_and_evaluate

    return fit_and_evaluate(prepare_leads(frame, read_spec(spec)), TrainOptions(seed=seed))


def _metrics(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    return float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])), float(roc_auc_score(y, p))


def askable(bundle) -> list[str]:
    return [name for name in bundle.fields if bundle.wording.askable(name)]


def profile_order(bundle) -> list[str]:
    """Fields as the profile ranks its traits, then the fields it does not name by global importance."""
    named = list(dict.fromkeys(trait["field"] for trait in bundle.profile["traits"]))
    ordered = [*named, *(name for name in importance_order(bundle) if name not in named)]
    return [name for name in ordered if bundle.wording.askable(name)]


def importance_order(bundle) -> list[str]:
    return [row["field"] for row in bundle.importance if bundle.wording.askable(row["field"])]


def _static_probabilities(ranker, truth: np.ndarray, order: list[str]) -> np.ndarray:
    """(leads, steps): the same fields revealed for every lead, in ``order``, scored as the ranker scores a partly
    known lead."""
    columns = [ranker.fields.index(name) for name in order]
    out = np.empty((len(truth), len(STEPS)))
    for k, step in enumerate(STEPS):
        matrix = np.full(truth.shape, np.nan)
        revealed = columns[:step]
        matrix[:, revealed] = truth[:, revealed]
        out[:, k] = ranker.probabilities(matrix)
    return out


def _adaptive_probabilities(ranker, truth: np.ndarray) -> np.ndarray:
    """(leads, steps): each lead's probability after each step, asking what the ranker puts first."""
    out = np.empty((len(truth), len(STEPS)))
    for i, lead in enumerate(truth):
        row, asked = np.full(lead.shape, np.nan), np.zeros(lead.shape, dtype=bool)
        for step in range(1, max(STEPS) + 1):
            questions = ranker.rank(row, asked).questions
            if questions:
                column = questions[0].column
                asked[column] = True
                row[column] = lead[column]
            if step in STEPS:
                out[i, STEPS.index(step)] = ranker.rank(row, asked).probability
    return out


@dataclass
class PolicyRun:
    """Every holdout lead's probability after each step, per policy (random: one array per random order)."""

    y: np.ndarray
    probabilities: dict[str, np.ndarray]
    randoms: list[np.ndarray]

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        """Per policy, (log loss, ROC AUC) after each of STEPS questions."""
        curves = {name: _curve(self.y, p) for name, p in self.probabilities.items()}
        random = [_curve(self.y, p) for p in self.randoms]
        curves["random order"] = [tuple(np.mean([c[k] for c in random], axis=0)) for k in range(len(STEPS))]
        return curves


def _curve(y: np.ndarray, probabilities: np.ndarray) -> list[tuple[float, float]]:
    return [_metrics(y, probabilities[:, k]) for k in range(len(STEPS))]


def run_policies(fitted, max_leads: int | None = None, seed: int = 0) -> PolicyRun:
    """Reveal every holdout lead's fields in each policy's order."""
    from service.scorer import Scorer
    from training.partial import partly_known_probabilities
    from training.questions import QuestionRanker

    bundle = fitted.bundle
    holdout, y = fitted.holdout, np.asarray(fitted.y_holdout)
    if max_leads is not None and len(holdout) > max_leads:
        chosen = np.random.default_rng(seed).choice(len(holdout), max_leads, replace=False)
        holdout, y = holdout.iloc[chosen].reset_index(drop=True), y[chosen]
    scorer = Scorer(bundle)
    truth = bundle.pipeline["encode"].transform(holdout)
    statistics = bundle.reference["answers"]
    probabilities = partly_known_probabilities(scorer.probabilities, statistics, scorer.fields)
    ranker = QuestionRanker(scorer.fields, statistics, probabilities, bundle.wording.askable)
    rng = np.random.default_rng(seed)
    fields = askable(bundle)
    return PolicyRun(
        y,
        {
            "next question": _adaptive_probabilities(ranker, truth),
            "profile order": _static_probabilities(ranker, truth, profile_order(bundle)),
            "importance order": _static_probabilities(ranker, truth, importance_order(bundle)),
        },
        [_static_probabilities(ranker, truth, list(rng.permutation(fields))) for _ in range(RANDOM_ORDERS)],
    )


def margins(run: PolicyRun, resamples: int = BOOTSTRAP, seed: int = 0) -> list[dict[str, float]]:
    """Per step, how far the next-question policy is ahead of the best static order on each metric (log loss:
    theirs − ours; AUC: ours − theirs; positive is ahead), with the standard error of that margin over bootstrap
    resamples of the holdout leads (the same resample for every policy: the margin is paired)."""
    rng = np.random.default_rng(seed)
    ours = run.probabilities["next question"]
    others = [p for name, p in run.probabilities.items() if name != "next question"]
    rows = []
    for k in range(len(STEPS)):
        point = _margin(run.y, ours[:, k], [p[:, k] for p in others])
        spread = []
        for _ in range(resamples):
            pick = rng.integers(0, len(run.y), len(run.y))
            spread.append(_margin(run.y[pick], ours[pick, k], [p[pick, k] for p in others]))
        error = np.std(spread, axis=0, ddof=1)
        rows.append({"log_loss": point[0], "log_loss_se": error[0], "roc_auc": point[1], "roc_auc_se": error[1]})
    return rows


def _margin(y: np.ndarray, ours: np.ndarray, others: list[np.ndarray]) -> tuple[float, float]:
    loss, auc = _metrics(y, ours)
    theirs = [_metrics(y, p) for p in others]
    return min(t[0] for t in theirs) - loss, auc - max(t[1] for t in theirs)


def margin_rows(table: str, rows: list[dict[str, float]]) -> list[list[str]]:
    return [
        [
            table,
            str(step),
            f"{row['log_loss']:+.4f} ± {row['log_loss_se']:.4f}",
            f"{row['roc_auc']:+.3f} ± {row['roc_auc_se']:.3f}",
        ]
        for step, row in zip(STEPS, rows, strict=True)
    ]


def policy_rows(table: str, curves: dict[str, list[tuple[float, float]]]) -> list[list[str]]:
    rows = []
    for policy in POLICIES:
        figures = curves[policy]
        rows.append([table, policy] + [f"{loss:.4f}" for loss, _ in figures] + [f"{auc:.3f}" for _, auc in figures])
    return rows


def best_at_every_step(curves: dict[str, list[tuple[float, float]]]) -> dict[str, bool]:
    """Whether the next-question policy has the lowest log loss and the highest ROC AUC at every step."""
    ours = curves["next question"]
    others = [curves[name] for name in POLICIES if name != "next question"]
    return {
        "log_loss": all(ours[k][0] <= min(o[k][0] for o in others) for k in range(len(STEPS))),
        "roc_auc": all(ours[k][1] >= max(o[k][1] for o in others) for k in range(len(STEPS))),
    }


def tables(short: bool) -> list[tuple[str, pd.DataFrame, Path]]:
    from training.synthetic import generate_leads

    sample, caravan = REPO / "data/specs/sample.yaml", REPO / "data/specs/caravan.yaml"
    if short:
        return [("generated 3,000", generate_leads(3_000, seed=1), sample)]
    return [("sample (20,000)", generate_leads(20_000, seed=0), sample), ("Caravan", caravan_frame(), caravan)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a 3,000-lead generated table only")
    parser.add_argument("--max-leads", type=int, default=None, help="score at most this many holdout leads")
    args = parser.parse_args()
    rows, ahead, results = [], [], {}
    for name, frame, spec in tables(args.short):
        fitted = fitted_model(frame, spec)
        run = run_policies(fitted, args.max_leads)
        curves, margin = run.curves(), margins(run)
        label = f"{name}, {len(fitted.holdout):,} holdout"
        rows += policy_rows(label, curves)
        ahead += margin_rows(label, margin)
        results[name] = {"curves": curves, "best": best_at_every_step(curves), "margins": margin}
        print(f"{name}: next question best at every step: {results[name]['best']}", flush=True)
    header = ["table", "policy", *(f"log loss @{k}" for k in STEPS), *(f"AUC @{k}" for k in STEPS)]
    print_table("Holdout log loss and ROC AUC after k questions, nothing known at the start", header, rows)
    print_table(
        f"Next question ahead of the best static order (± standard error, {BOOTSTRAP} paired bootstrap resamples)",
        ["table", "questions", "log loss", "ROC AUC"],
        ahead,
    )
    save_results("qualify", results)


if __name__ == "__main__":
    main()
