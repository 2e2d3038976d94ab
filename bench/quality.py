"""Model quality: the chosen model against three references on the same cross-validation folds, and stability.

For each table (generated leads of several sizes, and the CoIL 2000 Caravan customers from the islp wheel):
out-of-fold ROC AUC, log loss and ECE of
- leadscore's choice (family, settings and calibration chosen by ``training.selection``; its figures are
  cross-fitted: every map is fitted on other folds than the ones it is judged on),
- LightGBM with its default settings, scikit-learn's HistGradientBoosting with defaults, and plain logistic
  regression (one-hot categories, imputed and scaled numbers),
all on the same folds. Then stability on Caravan: its last 1,000 rows set aside, `fit_and_evaluate` with seeds
0-4 on the rest; the spread of ROC AUC and of buyers found in the top 20% of the set-aside rows.

`python bench/quality.py` runs everything; `--short` only the 2,000-lead table (the test suite runs that).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, print_table, save_results

GENERATED_ROWS = [int(n) for n in os.environ.get("BENCH_QUALITY_ROWS", "2000,20000,200000").split(",")]
STABILITY_SEEDS = range(5)
EVALUATION_ROWS = 1_000
FOLDS = 5


def caravan_frame() -> pd.DataFrame:
    import ISLP

    return pd.read_csv(Path(os.path.dirname(ISLP.__file__)) / "data" / "Caravan.csv")


def tables(short: bool) -> list[tuple[str, pd.DataFrame, Path]]:
    from training.synthetic import generate_leads

    sample, caravan = REPO / "data/specs/sample.yaml", REPO / "data/specs/caravan.yaml"
    sizes = GENERATED_ROWS[:1] if short else GENERATED_ROWS
    found = [(f"generated {n:,}", generate_leads(n, seed=1), sample) for n in sizes]
    return found if short else [*found, ("Caravan (CoIL 2000)", caravan_frame(), caravan)]


def _pooled(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from training.evaluate import classification_metrics

    figures = classification_metrics(y, np.clip(p, 1e-15, 1 - 1e-15))
    return {"roc_auc": figures["roc_auc"], "log_loss": figures["log_loss"], "ece": figures["ece"]}


def reference_out_of_fold(name: str, matrix: np.ndarray, y: np.ndarray, folds, encoder) -> np.ndarray:
    """A reference's out-of-fold probabilities (averaged over repeats), on the predicted rows in order."""
    from threadpoolctl import threadpool_limits

    categorical = encoder.categorical_indices_
    total, count = np.zeros(len(y)), np.zeros(len(y))
    with threadpool_limits(1):  # one thread, as leadscore's cross-validation: threads that wait cost more
        for fold in folds.folds:
            model, test = _fit_reference(name, matrix, y, fold, categorical, encoder)
            total[fold.test] += model.predict_proba(test)[:, 1]
            count[fold.test] += 1
    return (total / np.maximum(count, 1))[folds.predicted]


def _fit_reference(name: str, matrix: np.ndarray, y: np.ndarray, fold, categorical: list[int], encoder):
    """One reference fitted on a fold's training rows, and the fold's test rows as it reads them."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier

    from training.train import logistic_baseline

    test = matrix[fold.test]
    if name == "LightGBM, defaults":
        model = LGBMClassifier(verbose=-1, n_jobs=1).fit(
            matrix[fold.train], y[fold.train], categorical_feature=categorical or "auto"
        )
        return model, test
    if name == "HistGradientBoosting, defaults":
        mask = np.zeros(matrix.shape[1], dtype=bool)
        mask[categorical] = True
        # codes above 254 do not fit HistGradientBoosting's categories: those levels count as missing
        train = np.where(mask & (matrix[fold.train] > 254), np.nan, matrix[fold.train])
        model = HistGradientBoostingClassifier(categorical_features=mask if mask.any() else None)
        return model.fit(train, y[fold.train]), np.where(mask & (test > 254), np.nan, test)
    return logistic_baseline(encoder).fit(matrix[fold.train], y[fold.train]), test


REFERENCES = ("LightGBM, defaults", "HistGradientBoosting, defaults", "logistic regression")


def compare_on_folds(label: str, frame: pd.DataFrame, spec_path: Path) -> dict:
    from training.data import prepare_leads
    from training.folds import cv_folds
    from training.model import LeadEncoder
    from training.selection import select_model
    from training.spec import read_spec

    table = prepare_leads(frame, read_spec(spec_path))
    encoder = LeadEncoder(table.kinds).fit(table.features)
    matrix, y = encoder.transform(table.features), table.converted.astype(int)
    folds = cv_folds(y, table.time, FOLDS, seed=0)
    start = time.perf_counter()
    selection = select_model(matrix, y, folds, list(table.kinds.values()), encoder.categorical_indices_)
    seconds = time.perf_counter() - start
    y_oof = y[folds.predicted]
    chosen = selection.chosen
    results = {"leadscore": {**_pooled(y_oof, 1 / (1 + np.exp(-chosen.cross_fitted))), "seconds": seconds}}
    raw = chosen.oof.raw + (chosen.intercept if chosen.name == "blend" else 0.0)
    results["leadscore"]["ece_uncalibrated"] = _pooled(y_oof, 1 / (1 + np.exp(-raw)))["ece"]
    results["leadscore"]["chosen"] = f"{chosen.name} ({chosen.calibration})"
    for name in REFERENCES:
        start = time.perf_counter()
        results[name] = {
            **_pooled(y_oof, reference_out_of_fold(name, matrix, y, folds, encoder)),
            "seconds": time.perf_counter() - start,
        }
    return {"table": label, "rows": len(y), "positives": int(y.sum()), "folds": folds.describe(), "models": results}


def quality_rows(result: dict) -> list[list[str]]:
    models = result["models"]
    ours = models["leadscore"]
    best_loss = min(models[name]["log_loss"] for name in REFERENCES)
    best_auc = max(models[name]["roc_auc"] for name in REFERENCES)
    rows = []
    for name, figures in models.items():
        rows.append(
            [
                result["table"] if name == "leadscore" else "",
                f"{name}: {figures['chosen']}" if name == "leadscore" else name,
                f"{figures['roc_auc']:.4f}",
                f"{figures['log_loss']:.4f}",
                f"{figures['ece']:.4f}",
                f"{figures['seconds']:.1f}",
            ]
        )
    rows.append(
        [
            "",
            "leadscore − best reference",
            f"{ours['roc_auc'] - best_auc:+.4f}",
            f"{ours['log_loss'] - best_loss:+.4f}",
            f"uncalibrated {ours['ece_uncalibrated']:.4f}",
            "",
        ]
    )
    return rows


def stability() -> dict:
    """Seeds 0-4 trained on Caravan less its last 1,000 rows; spread of figures on those 1,000 rows."""
    from sklearn.metrics import roc_auc_score

    from training.data import prepare_leads
    from training.spec import read_spec
    from training.train import TrainOptions, fit_and_evaluate

    frame = caravan_frame()
    learn, evaluation = frame.iloc[:-EVALUATION_ROWS].reset_index(drop=True), frame.iloc[-EVALUATION_ROWS:]
    spec = read_spec(REPO / "data/specs/caravan.yaml")
    y = (evaluation[spec.target] == spec.positive).to_numpy().astype(int)
    runs = []
    for seed in STABILITY_SEEDS:
        fitted = fit_and_evaluate(prepare_leads(learn, spec), TrainOptions(seed=seed))
        p = fitted.bundle.predict_proba(evaluation.drop(columns=[spec.target]))
        top = np.argsort(-p, kind="stable")[: len(p) // 5]
        runs.append(
            {
                "seed": seed,
                "roc_auc": float(roc_auc_score(y, p)),
                "top_20_buyers": int(y[top].sum()),
                "family": fitted.bundle.metrics["model_family"],
            }
        )
    aucs, buyers = [r["roc_auc"] for r in runs], [r["top_20_buyers"] for r in runs]
    return {
        "runs": runs,
        "roc_auc_spread": max(aucs) - min(aucs),
        "top_20_buyers_spread": max(buyers) - min(buyers),
        "buyers": len(y) and int(y.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="only the smallest generated table")
    args = parser.parse_args()
    results = [compare_on_folds(label, frame, spec) for label, frame, spec in tables(args.short)]
    print_table(
        "Out-of-fold quality on the same folds (lower log loss and ECE are better)",
        ["table", "model", "ROC AUC", "log loss", "ECE", "seconds"],
        [row for result in results for row in quality_rows(result)],
    )
    saved: dict = {"quality": results}
    if not args.short:
        saved["stability"] = found = stability()
        print_table(
            f"Stability on Caravan: trained on all but the last {EVALUATION_ROWS:,} rows with seeds 0-4, "
            f"judged on those rows ({found['buyers']} buyers)",
            ["seed", "model", "ROC AUC", "buyers in top 20%"],
            [[str(r["seed"]), r["family"], f"{r['roc_auc']:.4f}", str(r["top_20_buyers"])] for r in found["runs"]]
            + [["spread", "", f"{found['roc_auc_spread']:.4f}", str(found["top_20_buyers_spread"])]],
        )
    save_results("quality", saved)


if __name__ == "__main__":
    main()
