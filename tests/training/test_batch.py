"""`leadscore score` streams files in chunks and gives the same probabilities as the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import Trained
from training.synthetic import generate_leads


@pytest.fixture(scope="module")
def fresh_leads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    leads = generate_leads(n=5_000, seed=11)
    leads.loc[::9, "lead_source"] = "never-seen"
    path = tmp_path_factory.mktemp("score") / "fresh.csv"
    leads.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_match_the_pipeline_chunk_by_chunk(
    trained: Trained, fresh_leads: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"scores{suffix}"
    result = trained.env.cli(
        "score",
        "--model",
        str(trained.bundle_dir),
        "--data",
        str(fresh_leads),
        "--out",
        str(out),
        "--chunk-rows",
        "777",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    leads = pd.read_csv(fresh_leads)
    assert list(scored.columns) == ["lead_id", "probability", "grade", "percentile"]
    assert scored["lead_id"].tolist() == leads["lead_id"].tolist()
    expected = trained.bundle.predict_proba(leads)
    assert np.max(np.abs(scored["probability"].to_numpy() - expected)) <= 1e-9
    assert set(scored["grade"]) == {"A", "B", "C", "D"}
    assert scored["percentile"].between(0, 100).all()
    top = scored.nlargest(100, "probability")
    assert (top["grade"] == "A").all()


def test_parquet_input_streams_in_batches(trained: Trained, fresh_leads: Path, tmp_path: Path) -> None:
    source = tmp_path / "fresh.parquet"
    pd.read_csv(fresh_leads).to_parquet(source, row_group_size=1000)
    out = tmp_path / "scores.csv"
    result = trained.env.cli(
        "score",
        "--model",
        str(trained.bundle_dir),
        "--data",
        str(source),
        "--out",
        str(out),
        "--chunk-rows",
        "1000",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 5_000


def test_a_failed_run_leaves_no_output(trained: Trained, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    good = generate_leads(n=300, seed=1).to_csv(index=False)
    broken.write_text(good + 'L9,"unterminated\n')
    out = tmp_path / "scores.csv"
    result = trained.env.cli(
        "score",
        "--model",
        str(trained.bundle_dir),
        "--data",
        str(broken),
        "--out",
        str(out),
        "--chunk-rows",
        "100",
        "--no-progress",
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".scores*"))


def test_a_tampered_model_is_not_used(trained: Trained, fresh_leads: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained.bundle_dir, copy)
    with (copy / "bundle.joblib").open("ab") as handle:
        handle.write(b"\0")
    result = trained.env.cli(
        "score", "--model", str(copy), "--data", str(fresh_leads), "--out", str(tmp_path / "x.csv"), "--no-progress"
    )
    assert result.exit_code == 2 and "checksum mismatch" in result.stderr


def test_csv_cells_that_spreadsheets_would_run_are_escaped(trained: Trained, tmp_path: Path) -> None:
    """OWASP's CSV-injection rule: a text cell starting with = + - @ tab or CR gets a leading quote; Parquet
    keeps the value as it is, and numbers are never touched."""
    leads = generate_leads(n=8, seed=3)
    hostile = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "ok=1", "L-safe"]
    leads["lead_id"] = hostile
    data = tmp_path / "leads.parquet"
    leads.to_parquet(data)
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"scores{suffix}"
        result = trained.env.cli(
            "score", "--model", str(trained.bundle_dir), "--data", str(data), "--out", str(out), "--no-progress"
        )
        assert result.exit_code == 0, result.output
        written = pd.read_csv(out, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(out)
        expected = [f"'{v}" for v in hostile[:6]] + hostile[6:] if suffix == ".csv" else hostile
        assert written["lead_id"].tolist() == expected
        assert (written["probability"] > 0).all()
