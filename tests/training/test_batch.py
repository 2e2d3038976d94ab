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


def _score(trained: Trained, data: Path, out: Path, *extra: str):
    return trained.env.cli(
        "score", "--model", str(trained.bundle_dir), "--data", str(data), "--out", str(out), "--no-progress", *extra
    )


def test_a_semicolon_file_is_refused_naming_the_separator_and_scored_with_sep(
    trained: Trained, fresh_leads: Path, tmp_path: Path
) -> None:
    leads = pd.read_csv(fresh_leads)
    data = tmp_path / "semicolons.csv"
    leads.to_csv(data, sep=";", index=False)
    refused = _score(trained, data, tmp_path / "refused.csv")
    assert refused.exit_code == 2
    assert refused.stderr.count("\n") == 1 and "separated by ';'" in refused.stderr and "--sep ';'" in refused.stderr
    assert not (tmp_path / "refused.csv").exists()

    result = _score(trained, data, tmp_path / "scores.csv", "--sep", ";")
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "scores.csv")
    assert scored["lead_id"].tolist() == leads["lead_id"].tolist()
    assert np.max(np.abs(scored["probability"].to_numpy() - trained.bundle.predict_proba(leads))) <= 1e-9


def test_column_names_match_whatever_their_case(trained: Trained, fresh_leads: Path, tmp_path: Path) -> None:
    leads = pd.read_csv(fresh_leads)
    data = tmp_path / "upper.csv"
    leads.rename(columns=lambda name: f" {name.upper()}").to_csv(data, index=False)
    result = _score(trained, data, tmp_path / "scores.csv", "--chunk-rows", "1000")
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "scores.csv")
    assert scored.columns[0] == " LEAD_ID" and scored[" LEAD_ID"].tolist() == leads["lead_id"].tolist()
    assert np.max(np.abs(scored["probability"].to_numpy() - trained.bundle.predict_proba(leads))) <= 1e-9
    assert scored["probability"].nunique() > 1_000


def test_a_file_without_the_models_fields_is_refused_naming_them(
    trained: Trained, fresh_leads: Path, tmp_path: Path
) -> None:
    leads = pd.read_csv(fresh_leads)
    fields = trained.bundle.fields
    unrelated = tmp_path / "unrelated.csv"
    leads.rename(columns={name: f"x_{name}" for name in fields}).to_csv(unrelated, index=False)
    result = _score(trained, unrelated, tmp_path / "scores.csv")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "none of the model's fields" in result.stderr and all(name in result.stderr for name in fields)

    mostly_missing = tmp_path / "mostly-missing.csv"
    leads.drop(columns=fields[: len(fields) // 2 + 1]).to_csv(mostly_missing, index=False)
    result = _score(trained, mostly_missing, tmp_path / "scores.csv")
    assert result.exit_code == 2 and f"{len(fields) // 2 + 1} of the model's {len(fields)} fields" in result.stderr
    assert fields[0] in result.stderr and not (tmp_path / "scores.csv").exists()

    one_missing = tmp_path / "one-missing.csv"
    leads.drop(columns=fields[0]).to_csv(one_missing, index=False)
    result = _score(trained, one_missing, tmp_path / "scores.csv")
    assert result.exit_code == 0 and f"scored as unanswered: {fields[0]}" in result.stderr


def test_the_id_and_kept_columns_are_carried_when_the_spec_names_no_id(
    trained: Trained, fresh_leads: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    from training.batch import FileLayout, score_file

    leads = pd.read_csv(fresh_leads)
    no_id = replace(trained.bundle, spec={**trained.bundle.spec, "id": None})
    found = score_file(no_id, fresh_leads, tmp_path / "found.csv", show_progress=False)
    assert found.id_column == "lead_id"
    assert pd.read_csv(tmp_path / "found.csv")["lead_id"].tolist() == leads["lead_id"].tolist()

    data = tmp_path / "crm.csv"
    leads.rename(columns={"lead_id": "Ref"}).to_csv(data, index=False)
    layout = FileLayout(id_column="ref", keep=("email", "REGION"))
    report = score_file(no_id, data, tmp_path / "kept.parquet", chunk_rows=700, show_progress=False, layout=layout)
    kept = pd.read_parquet(tmp_path / "kept.parquet")
    assert report.id_column == "Ref"
    assert list(kept.columns) == ["Ref", "email", "region", "probability", "grade", "percentile"]
    assert kept["Ref"].tolist() == leads["lead_id"].tolist() and kept["email"].tolist() == leads["email"].tolist()

    result = _score(trained, data, tmp_path / "cli.csv", "--id", "Ref", "--keep", "email", "--keep", "city")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "cli.csv").columns)[:3] == ["Ref", "email", "city"]
    unknown = _score(trained, data, tmp_path / "x.csv", "--keep", "fax")
    assert unknown.exit_code == 2 and "--keep 'fax' is not a column" in unknown.stderr
