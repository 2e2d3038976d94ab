"""`leadscore log prune` and `leadscore log erase` against a real score log, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.store import ScoreBatch, ScoreStore
from training.cli import app

NOW = datetime.now(UTC)


def _batch(lead_ids: list[str], at: datetime) -> ScoreBatch:
    n = len(lead_ids)
    return ScoreBatch(lead_ids, ["v1"] * n, [0.5] * n, ["A"] * n, [at] * n, {"region": ["north"] * n})


@pytest.fixture()
def score_log(database_url: str) -> str:
    """A score log holding three scores from 200 days ago and two from yesterday, one outcome each way."""
    store = ScoreStore(database_url, flush_interval_s=0.02)
    store.start()
    store.enqueue(_batch(["old-1", "old-2", "old-3"], NOW - timedelta(days=200)))
    store.enqueue(_batch(["new-1", "new-2"], NOW - timedelta(days=1)))
    store.record_outcome("new-1", converted=True, value=None, occurred_at=None)
    store.stop()
    return database_url


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["log", *args], env=env)


def test_prune_removes_what_is_older_and_prints_the_counts(score_log: str) -> None:
    result = run("prune", "--older-than", "180d", "--database-url", score_log)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("removed what was stored before ") and lines[0].endswith(" UTC:")
    assert lines[1:] == [
        "  scores                  3",
        "  lead fields             3  (1 batch rows deleted, 0 rewritten)",
        "  index entries           0  (0 chunks)",
        "  dead letters            0",
        "  outcomes             kept  (--outcomes removes those reported before the cutoff)",
    ]
    again = run("prune", "--older-than", "12h", "--outcomes", "--database-url", score_log)
    assert "  scores                  2" in again.stdout and "  outcomes                0" in again.stdout


def test_erase_removes_one_lead_and_names_what_it_removed(score_log: str) -> None:
    result = run("erase", "new-1", env={"LEADSCORE_DATABASE_URL": score_log})  # the service's setting

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "erased lead 'new-1': scores 1, logged fields 1, score batches rewritten 1, score batches deleted 0, "
        "index entries 0, outcomes 1, dead letters 0\n"
    )
    unknown = run("erase", "new-1", "--database-url", score_log)
    assert unknown.exit_code == 2 and unknown.stderr == "error: nothing is stored about lead 'new-1'; nothing erased\n"


@pytest.mark.parametrize("duration", ["180", "6mo", "0d", "-3d", "d", "1.5d"])
def test_a_duration_that_is_not_one_is_refused_in_one_line(duration: str, tmp_path: Path) -> None:
    result = run("prune", "--older-than", duration, "--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == (
        f"error: --older-than {duration!r} is not a duration: "
        "give a whole number of hours, days or weeks, like 180d, 12w or 36h\n"
    )


def test_a_missing_score_log_is_named_in_one_line(tmp_path: Path) -> None:
    result = run("erase", "L1", "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2 and result.stderr.startswith("error: no score log at sqlite:///")
    assert not (tmp_path / "none.db").exists()
