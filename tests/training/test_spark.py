"""`leadscore score --engine spark`: the registered model on Spark (local mode) equals in-process scoring row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import Trained
from training.synthetic import generate_leads

pytest.importorskip("pyspark", reason="the spark extra is installed by make install-dev")

SPARK_LEADS = 100_000
MASTER = "local[2]"


def in_process(trained: Trained, data: Path, out: Path) -> pd.DataFrame:
    result = trained.env.cli("score", "--model", str(trained.bundle_dir), "--data", str(data), "--out", str(out))
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out)


def on_spark(trained: Trained, model: str, data: Path, out: Path) -> pd.DataFrame:
    args = ["score", "--engine", "spark", "--master", MASTER, "--model", model, "--data", str(data), "--out", str(out)]
    result = trained.env.cli(*args)
    assert result.exit_code == 0, result.output
    assert f"on {MASTER}" in result.output
    parts = sorted(out.glob("part-*.parquet"))
    assert parts and (out / "_SUCCESS").is_file()
    return pd.read_parquet(out)


def assert_same_rows(spark: pd.DataFrame, local: pd.DataFrame) -> None:
    """Lead by lead (ids are unique): Spark may hand a folder's parts to its tasks in any order."""
    assert len(spark) == len(local) and local["lead_id"].is_unique
    spark, local = (frame.sort_values("lead_id", ignore_index=True) for frame in (spark, local))
    assert spark["lead_id"].tolist() == local["lead_id"].tolist()
    np.testing.assert_allclose(spark["probability"], local["probability"], rtol=0, atol=1e-9)
    assert spark["grade"].tolist() == local["grade"].tolist()
    np.testing.assert_array_equal(spark["percentile"], local["percentile"])


@pytest.mark.slow
def test_spark_scores_a_csv_as_leadscore_score_does(trained: Trained, tmp_path: Path) -> None:
    data = tmp_path / "leads.csv"
    generate_leads(n=SPARK_LEADS, seed=41).to_csv(data, index=False)
    local = in_process(trained, data, tmp_path / "local.parquet")
    spark = on_spark(trained, str(trained.bundle_dir), data, tmp_path / "spark")
    assert_same_rows(spark, local)
    assert local["grade"].nunique() > 2


@pytest.mark.slow
def test_spark_reads_parquet_parts_with_the_registered_model(trained: Trained, tmp_path: Path) -> None:
    """A folder of Parquet parts with integer numbers, 0/1 flags and a field left out, scored via the registry."""
    leads = generate_leads(n=3_000, seed=42).drop(columns=["stated_budget"])
    leads["owns_home"] = leads["owns_home"].astype("Int64")
    leads["pages_viewed"] = leads["pages_viewed"].astype("int64")
    folder = tmp_path / "parts"
    folder.mkdir()
    for index in range(3):
        leads.iloc[index * 1_000 : (index + 1) * 1_000].to_parquet(folder / f"part-{index}.parquet", index=False)
    local = pd.concat(
        [in_process(trained, part, tmp_path / f"local-{part.stem}.parquet") for part in sorted(folder.iterdir())]
    )
    spark = on_spark(trained, "models:/leadscore@champion", folder, tmp_path / "spark")
    assert_same_rows(spark, local)
