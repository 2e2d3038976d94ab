"""Spark batch scoring against in-process `leadscore score`, on the same 1M-lead file and the same two cores.

- `leadscore score` (in process, compiled trees on 2 threads) is the baseline; it runs twice and the second
  run, with the trees cached, is kept.
- `leadscore score --engine spark --master local[2]`: a bundle folder, then the registered model
  `models:/leadscore@champion`; both are packed as the pyfunc model with typed fields and scored through
  `mlflow.pyfunc.spark_udf`. Wall time of each command,
  JVM start and model loading included; outputs compared lead by lead with the baseline.
- Where a Spark worker's time goes: the same steps timed one by one in this process on 100,000 leads shaped as
  Spark hands them over.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, print_table, python, save_results, scratch_dir, train_bundle

ROWS = int(os.environ.get("BENCH_SPARK_ROWS", "1000000"))
MASTER = "local[2]"
PROFILE_ROWS = 100_000


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:6])} failed: {done.stderr[-3000:]}")
    return time.perf_counter() - start


def register(bundle_dir: Path, tracking_uri: str) -> str:
    import pandas as pd

    from training.bundle import load_bundle
    from training.tracking import log_training_run, set_alias

    bundle = load_bundle(bundle_dir)
    example = pd.DataFrame(bundle.examples, columns=bundle.fields)
    tracked = log_training_run(bundle, bundle_dir, {}, example, tracking_uri, "bench", "leadscore")
    set_alias(tracking_uri, "leadscore", "champion", tracked.registered_version)
    return "models:/leadscore@champion"


def max_difference(ours: Path, baseline: Path) -> float:
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(ours).sort_values("lead_id", ignore_index=True)
    b = pd.read_parquet(baseline).sort_values("lead_id", ignore_index=True)
    assert a["lead_id"].tolist() == b["lead_id"].tolist() and a["grade"].tolist() == b["grade"].tolist()
    return float(np.max(np.abs(a["probability"].to_numpy() - b["probability"].to_numpy())))


def worker_profile(bundle_dir: Path, data: Path, work: Path) -> list[list[str]]:
    """µs per lead of each step a Spark Python worker takes, on one core, for a batch of 100,000 leads."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models.utils import _enforce_schema

    from service.pyfunc import lead_columns, lead_frame, model_signature
    from training.batch import score_frame
    from training.bundle import load_bundle
    from training.tracking import save_pyfunc_model

    bundle = load_bundle(bundle_dir)
    kinds = {f.name: f.kind for f in bundle.schema}
    columns = [bundle.spec["id"], *bundle.fields]
    frame = pd.read_csv(data, nrows=PROFILE_ROWS, usecols=columns)
    # as Spark hands it over: numbers as doubles, everything else as Python objects (text, true/false)
    frame = frame.astype({name: "float64" if kinds.get(name) == "numeric" else object for name in columns})
    scorer = mlflow.pyfunc.load_model(str(save_pyfunc_model(bundle_dir, work / "profile-model", typed=True)))
    scorer = scorer.unwrap_python_model().scorer
    steps = []

    def step(label: str, action) -> None:
        start = time.perf_counter()
        action()
        steps.append([label, f"{(time.perf_counter() - start) / len(frame) * 1e6:.2f}"])

    step(
        "MLflow schema check, typed fields (Spark)",
        lambda: _enforce_schema(frame, model_signature(bundle, True).inputs),
    )
    step(
        "MLflow schema check, fields of any type (registered)",
        lambda: _enforce_schema(frame, model_signature(bundle).inputs),
    )
    prepared = {}
    step("fields read as the service's validation does", lambda: prepared.update(frame=lead_frame(scorer, frame)))
    step(
        "encode, trees, grade, percentile (score_frame, as leadscore score)",
        lambda: score_frame(bundle, prepared["frame"], scorer.engine),
    )
    step(
        "for comparison: Scorer.score_columns (a reply per lead; reasons)",
        lambda: scorer.score_columns(lead_columns(scorer, frame), len(frame), "none"),
    )
    return steps


def main() -> None:
    from training.synthetic import generate_leads, write_leads

    work = scratch_dir("spark")
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {"PYTHONPATH": str(REPO), "LEADSCORE_MLFLOW_TRACKING_URI": tracking_uri, "LEADSCORE_CACHE_DIR": str(work)}
    bundle_dir = train_bundle(20_000, seed=3, work=work)
    data = work / "leads.csv"
    write_leads(generate_leads(ROWS, seed=4), data)
    model_uri = register(bundle_dir, tracking_uri)

    score = [python(), "-m", "training.cli", "score", "--no-progress", "--data", str(data)]
    baseline = work / "local.parquet"
    timed([*score, "--model", str(bundle_dir), "--out", str(baseline)], env)  # compiles and caches the trees
    local_s = timed([*score, "--model", str(bundle_dir), "--out", str(baseline)], env)
    rows = [["leadscore score (in process, 2 threads)", f"{local_s:.1f}", f"{ROWS / local_s:,.0f}", "1.00", "-"]]
    results = {"rows": ROWS, "local_seconds": local_s}
    spark = [*score, "--engine", "spark", "--master", MASTER]
    for label, model, key in (
        (f"Spark {MASTER}, --model bundle folder", str(bundle_dir), "spark_typed"),
        (f"Spark {MASTER}, --model {model_uri}", model_uri, "spark_registered"),
    ):
        out = work / key
        seconds = timed([*spark, "--model", model, "--out", str(out)], env)
        difference = max_difference(out, baseline)
        results[key] = {"seconds": seconds, "max_abs_difference": difference}
        rows.append(
            [label, f"{seconds:.1f}", f"{ROWS / seconds:,.0f}", f"{local_s / seconds:.2f}", f"{difference:.1e}"]
        )
    print_table(
        f"Batch scoring of {ROWS:,} leads from one CSV on 2 cores (wall seconds of each command)",
        ["engine", "seconds", "leads/s", "ratio", "max |Δp|"],
        rows,
    )
    profile = worker_profile(bundle_dir, data, work)
    results["worker_us_per_lead"] = {label: float(value) for label, value in profile}
    print_table(f"Where a Spark worker's time goes ({PROFILE_ROWS:,} leads, one core)", ["step", "µs/lead"], profile)
    save_results("spark", results)


if __name__ == "__main__":
    main()
