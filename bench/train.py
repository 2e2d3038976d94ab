"""Training and batch scoring at scale.

- Full `leadscore train` on generated leads (100k and 1M rows): wall time and peak RSS, and the ratio to a
  bare LightGBM fit with its default settings (read + encode + fit) on the same data, in the same run.
- Batch scoring: `leadscore score`'s path (chunked read, encoder, compiled trees, grade, percentile, write)
  against plain `pipeline.predict_proba` over the same file in the same chunks; probabilities compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, print_table, python, save_results, scratch_dir

SIZES = [int(n) for n in os.environ.get("BENCH_TRAIN_ROWS", "100000,1000000").split(",")]

BARE_FIT = """
import json, sys, time
import pandas as pd
from lightgbm import LGBMClassifier
from training.bundle import load_bundle

bundle = load_bundle(sys.argv[2])
start = time.perf_counter()
frame = pd.read_csv(sys.argv[1], low_memory=False)
encoder = bundle.pipeline["encode"]
matrix = encoder.transform(frame)
model = LGBMClassifier(verbose=-1)
model.fit(matrix, frame["converted"], categorical_feature=encoder.categorical_indices_)
print(json.dumps({"seconds": time.perf_counter() - start, "rounds": model.n_estimators}))
"""


def peak_rss_of(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run under /usr/bin/time-like accounting: rusage of exactly this child."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    out = process.stdout.read().decode()
    err = process.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024**2, out


def batch_scoring(bundle_dir: Path, data: Path, work: Path) -> dict:
    """leadscore score's path vs plain predict_proba, same file, same chunks, in this process.

    The first run compiles the trees (and caches them); the second loads them from the cache.
    """
    import numpy as np
    import pandas as pd

    from training.batch import DEFAULT_CHUNK_ROWS, score_file
    from training.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    start = time.perf_counter()
    chunks = pd.read_csv(data, chunksize=DEFAULT_CHUNK_ROWS, low_memory=False)
    plain = np.concatenate([bundle.pipeline.predict_proba(chunk)[:, 1] for chunk in chunks])
    plain_seconds = time.perf_counter() - start
    out = work / "scores.parquet"
    os.environ["LEADSCORE_CACHE_DIR"] = str(work / "tree-cache")
    timings = {}
    for run in ("cold", "warm"):
        start = time.perf_counter()
        report = score_file(bundle, data, out, show_progress=False)
        timings[run] = time.perf_counter() - start
    ours = pd.read_parquet(out)["probability"].to_numpy()
    return {
        "rows": report.rows,
        "plain_seconds": plain_seconds,
        "cold_seconds": timings["cold"],
        "warm_seconds": timings["warm"],
        "max_abs_difference": float(np.max(np.abs(ours - plain))),
    }


def scoring_table(scoring: dict) -> None:
    n, plain_s = scoring["rows"], scoring["plain_seconds"]
    table = [["pipeline.predict_proba", f"{plain_s:.2f}", f"{n / plain_s:,.0f}", "1.00", "-"]]
    for run, label in (
        ("cold", "leadscore score, first run (compiles trees)"),
        ("warm", "leadscore score, trees cached"),
    ):
        seconds = scoring[f"{run}_seconds"]
        table.append(
            [
                label,
                f"{seconds:.2f}",
                f"{n / seconds:,.0f}",
                f"{plain_s / seconds:.2f}",
                f"{scoring['max_abs_difference']:.1e}",
            ]
        )
    print_table(
        f"Batch scoring of {n:,} leads (read, score, grade, write; chunks of 100,000; same file)",
        ["path", "seconds", "leads/s", "ratio", "max |Δp|"],
        table,
    )


def main() -> None:
    from training.synthetic import generate_leads, write_leads

    work = scratch_dir("train")
    env = {"LEADSCORE_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "PYTHONPATH": str(REPO)}
    rows, results = [], {}
    batch = None
    for n in SIZES:
        data = work / f"leads-{n}.csv"
        write_leads(generate_leads(n, seed=1), data)
        models = work / f"models-{n}"
        train_s, train_gib, _ = peak_rss_of(
            [
                python(),
                "-m",
                "training.cli",
                "train",
                "--data",
                str(data),
                "--spec",
                str(REPO / "data/specs/sample.yaml"),
                "--output-dir",
                str(models),
            ],
            env,
        )
        bundle_dir = (models / "champion").resolve()
        bare_s, bare_gib, bare_out = peak_rss_of([python(), "-c", BARE_FIT, str(data), str(bundle_dir)], env)
        bare_fit = json.loads(bare_out.strip().splitlines()[-1])
        metrics = json.loads((bundle_dir / "metrics.json").read_text())
        results[n] = {
            "train_seconds": train_s,
            "train_peak_gib": train_gib,
            "bare_seconds": bare_s,
            "bare_fit_seconds": bare_fit["seconds"],
            "bare_peak_gib": bare_gib,
            "model": metrics.get("model_family"),
            "trees": metrics.get("best_iteration"),
            "roc_auc": metrics["roc_auc"],
            "ece": metrics["ece"],
        }
        rows.append(
            [
                f"{n:,}",
                f"{train_s:.1f}",
                f"{bare_s:.1f}",
                f"{train_s / bare_s:.2f}",
                f"{train_gib:.2f}",
                f"{bare_gib:.2f}",
                str(metrics.get("model_family")),
                str(metrics.get("best_iteration") or "-"),
                f"{metrics['roc_auc']:.3f}",
                f"{metrics['ece']:.3f}",
            ]
        )
        batch = (bundle_dir, data)
    print_table(
        "Training (wall seconds and peak RSS of each process; bare = read + encode + LightGBM fit, default settings)",
        ["leads", "train s", "bare fit s", "ratio", "train GiB", "bare GiB", "model", "trees", "ROC AUC", "ECE"],
        rows,
    )
    scoring = batch_scoring(*batch, work)
    scoring_table(scoring)
    save_results("train", {"training": results, "scoring": scoring})


if __name__ == "__main__":
    main()
