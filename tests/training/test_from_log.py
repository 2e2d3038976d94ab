"""`leadscore dataset --from-log`: first scores, latest outcomes and the label window, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from service.store import ScoreBatch, ScoreRecord, ScoreStore, build_engine, database_url
from tests.conftest import TrainingEnv
from training.cli import app
from training.data import prepare_leads, read_table
from training.durations import parse_duration
from training.errors import LeadscoreError
from training.from_log import (
    MODEL_VERSION,
    LogDataset,
    dataset_from_log,
    label_leads,
    lead_table,
    read_first_scores,
    write_dataset,
)
from training.spec import DatasetSpec, read_spec, write_spec

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = DatasetSpec(
    name="crm",
    target="won",
    positive="yes",
    id="crm_id",
    time="created",
    value="deal",
    exclude=["owner_after_sale"],
    pii=["email"],
    missing_values={"fields": {"city": ["Select"], "email": ["n/a"]}},
)


def _first_scores(ages_days: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": list(ages_days),
            MODEL_VERSION: "v1",
            "scored_at": pd.Series([NOW - timedelta(days=d) for d in ages_days.values()], dtype="datetime64[us, UTC]"),
            "pages": range(len(ages_days)),
        }
    )


def _outcomes(converted: dict[str, bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {"lead_id": list(converted), "converted": list(converted.values()), "outcome_value": [None] * len(converted)}
    )


def test_the_label_window_decides_leads_without_an_outcome() -> None:
    first = _first_scores({"old-won": 200, "old-silent": 91, "new-silent": 89, "new-lost": 5})
    labelled, counts = label_leads(first, _outcomes({"old-won": True, "new-lost": False}), timedelta(days=90), now=NOW)
    assert dict(zip(labelled["lead_id"], labelled["converted"], strict=True)) == {
        "old-won": True,
        "old-silent": False,  # no outcome for longer than the window: not converted
        "new-lost": False,
    }  # new-silent's outcome may still come: left out
    assert (counts.leads, counts.with_outcome, counts.assumed_not_converted, counts.left_out) == (4, 2, 1, 1)
    assert counts.rows == 3


def test_a_longer_window_leaves_more_leads_out() -> None:
    first = _first_scores({"a": 200, "b": 91, "c": 89})
    _, counts = label_leads(first, _outcomes({}), parse_duration("180d", "--label-window"), now=NOW)
    assert (counts.assumed_not_converted, counts.left_out) == (1, 2)


@pytest.mark.parametrize(("text", "days"), [("90d", 90), ("12w", 84), ("48h", 2), (" 7d ", 7)])
def test_label_windows_read_as_durations(text: str, days: int) -> None:
    assert parse_duration(text, "--label-window") == timedelta(days=days)


def test_a_bad_label_window_is_a_one_line_error(training_env: TrainingEnv, tmp_path: Path) -> None:
    result = training_env.cli(
        "dataset", "--from-log", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--spec", str(tmp_path / "s.yaml"),
        "--out", str(tmp_path / "o.csv"), "--label-window", "3 months",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--label-window '3 months' is not a duration: give a whole number of hours, days or weeks" in result.output


def test_a_missing_score_log_is_a_one_line_error(training_env: TrainingEnv, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    write_spec(SPEC, spec)
    missing = tmp_path / "nowhere.db"
    result = training_env.cli(
        "dataset", "--from-log", "--database-url", f"sqlite:///{missing}", "--spec", str(spec),
        "--out", str(tmp_path / "o.csv"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"SQLite database {missing} not found" in result.output
    assert not missing.exists()  # not created by looking


def test_dataset_says_where_the_leads_come_from(training_env: TrainingEnv, tmp_path: Path) -> None:
    result = training_env.cli("dataset", "--spec", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 2
    assert "--from-log" in result.output


@pytest.fixture()
def filled_log(database_url: str) -> Iterator[str]:
    """A score log written by the real store: rescored leads, leads without outcomes, outcomes revised."""
    store = ScoreStore(database_url, flush_interval_s=0.01)
    store.start()

    def score(lead: str | None, days_ago: float, version: str, pages: int, city: str) -> ScoreRecord:
        fields = {"pages": pages, "city": city, "probability": pages / 100}  # a lead field named like a score column
        return ScoreRecord(lead, version, 0.5, "B", NOW - timedelta(days=days_ago), fields)

    try:
        store.enqueue(score("rescored", 120, "v1", 3, "Leeds"))
        store.flush()
        store.enqueue(score("old-silent", 100, "v1", 4, "Select"))
        store.flush()
        store.enqueue(
            ScoreBatch.of_records(
                [
                    score("rescored", 10, "v2", 30, "York"),  # a later score: not the fields the model saw first
                    score("new-silent", 10, "v2", 5, "Hull"),
                    score("revised", 10, "v2", 6, "Bath"),
                    score(None, 10, "v2", 7, "Ely"),  # no lead id: no outcome can ever join it
                ]
            )
        )
        store.flush()
        store.enqueue(score("late-clock", 50, "v2", 8, "Wells"))  # written last, scored earlier than the batch
        store.flush()
        store.enqueue(score("late-clock", 20, "v2", 80, "Ripon"))
        store.flush()
        store.record_outcome("rescored", True, 1200.0, None)
        store.record_outcome("revised", True, 50.0, None)
        store.record_outcome("revised", False, None, None)  # the latest report counts
        store.record_outcome("late-clock", False, None, None)
        store.record_outcome("never-scored", True, None, None)
    finally:
        store.stop()
    yield database_url


def test_first_scores_and_latest_outcomes_from_the_log(filled_log: str) -> None:
    dataset = dataset_from_log(filled_log, SPEC, "90d", now=NOW)
    table = dataset.table.set_index("crm_id")
    assert sorted(table.index) == ["late-clock", "old-silent", "rescored", "revised"]
    assert table.loc["rescored", "pages"] == 3 and table.loc["rescored", "city"] == "Leeds"
    assert table.loc["rescored", MODEL_VERSION] == "v1"
    assert table.loc["rescored", "created"] == pd.Timestamp(NOW - timedelta(days=120))
    assert table.loc["late-clock", "pages"] == 8
    assert table.loc["rescored", "probability"] == pytest.approx(0.03)  # the lead field, not the score
    assert table["won"].to_dict() == {
        "late-clock": "not yes",
        "old-silent": "not yes",  # no outcome for longer than the window
        "rescored": "yes",
        "revised": "not yes",  # reported converted, then not: the latest report counts
    }
    assert table.loc["rescored", "deal"] == 1200.0 and pd.isna(table.loc["revised", "deal"])
    counts = dataset.counts
    assert (counts.leads, counts.with_outcome, counts.assumed_not_converted, counts.left_out) == (5, 3, 1, 1)
    assert list(dataset.table.columns[:2]) == ["crm_id", "created"] and dataset.table.columns[-1] == MODEL_VERSION


def test_reading_a_write_at_a_time_gives_the_same_first_scores(filled_log: str) -> None:
    engine = build_engine(database_url(filled_log))
    try:
        whole, one_by_one = read_first_scores(engine), read_first_scores(engine, blobs_per_read=1)
    finally:
        engine.dispose()
    key = ["lead_id"]
    pd.testing.assert_frame_equal(
        whole.sort_values(key).reset_index(drop=True), one_by_one.sort_values(key).reset_index(drop=True)
    )
    assert len(whole) == 5


def test_the_written_table_trains_with_the_spec_beside_it(filled_log: str, tmp_path: Path) -> None:
    dataset = dataset_from_log(filled_log, SPEC, "90d", now=NOW)
    for out in (tmp_path / "leads.csv", tmp_path / "leads.parquet"):
        spec_out = write_dataset(dataset, out, Path("crm.yaml"))
        spec = read_spec(spec_out)
        assert spec.exclude == [MODEL_VERSION] and spec.pii == []  # the log holds neither excluded fields nor PII
        assert spec.missing_values.fields == {"city": ["Select"]}
        leads = prepare_leads(read_table(out), spec, min_per_class=1)
        assert sorted(leads.kinds) == ["city", "pages", "probability"]
        assert leads.converted.sum() == 1 and len(leads.converted) == 4
        assert leads.time is not None  # in UTC: CSV keeps it without the zone
        assert pd.to_datetime(leads.time.min(), utc=True) == pd.Timestamp(NOW - timedelta(days=120))


def test_dataset_reads_the_database_the_service_uses(filled_log: str, tmp_path: Path) -> None:
    spec = tmp_path / "crm.yaml"
    write_spec(SPEC, spec)
    out = tmp_path / "leads.csv"
    result = CliRunner().invoke(
        app,
        ["dataset", "--from-log", "--spec", str(spec), "--out", str(out), "--label-window", "1000d"],
        env={"LEADSCORE_DATABASE_URL": filled_log},
    )
    assert result.exit_code == 0, result.output
    assert "5 leads in the score log: 3 with an outcome, 0 counted as not converted" in result.output
    assert "2 left out (no outcome yet, first scored within 1000d)" in result.output
    assert f"wrote 3 leads to {out} and their spec to {tmp_path / 'leads.spec.yaml'}" in result.output
    assert sorted(pd.read_csv(out)["crm_id"]) == ["late-clock", "rescored", "revised"]


def test_a_database_without_a_score_log_is_a_one_line_error(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).touch()  # an empty SQLite file
    with pytest.raises(LeadscoreError, match="holds no score log"):
        dataset_from_log(database_url, SPEC)


def test_nothing_to_write_when_every_lead_waits_for_its_outcome(tmp_path: Path) -> None:
    labelled, counts = label_leads(_first_scores({"a": 5, "b": 80}), _outcomes({}), timedelta(days=90), now=NOW)
    assert (counts.rows, counts.left_out) == (0, 2)
    with pytest.raises(LeadscoreError, match="nothing to write"):
        write_dataset(LogDataset(lead_table(labelled, SPEC), SPEC, counts), tmp_path / "leads.csv", Path("crm.yaml"))
    assert not (tmp_path / "leads.csv").exists()
