"""Retraining from the score log, end to end: generated leads scored by a real server, outcomes posted from the
generator's ground truth, then `leadscore retrain` — on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import SAMPLE_SPEC, TrainingEnv
from tests.e2e.conftest import ServerFactory
from training.bundle import Bundle, load_bundle
from training.from_log import MODEL_VERSION
from training.synthetic import generate_leads

LEADS = 3_000
SINGLE = 100  # scored one by one; the rest in batches
BATCH = 500
REVISED = 30  # leads first reported with the wrong outcome, then corrected
NOT_SENT = ["converted", "deal_value", "account_manager_assigned", "created_at"]


@dataclass(frozen=True)
class FromFile:
    """Generated leads (oldest first) and the model trained on them from the file: the champion that scores them."""

    root: Path
    leads: pd.DataFrame
    bundle: Bundle


@pytest.fixture(scope="module")
def from_file(tmp_path_factory: pytest.TempPathFactory) -> FromFile:
    root = tmp_path_factory.mktemp("from-file")
    leads = generate_leads(n=LEADS, seed=23).sort_values("created_at", kind="stable", ignore_index=True)
    path = root / "leads.parquet"
    leads.to_parquet(path, index=False)
    result = TrainingEnv(root).cli("train", "--data", str(path), "--spec", str(SAMPLE_SPEC), "--folds", "1")
    assert result.exit_code == 0, result.output
    return FromFile(root, leads, load_bundle((root / "models" / "champion").resolve()))


def _requests(leads: pd.DataFrame) -> list[dict]:
    sent = leads.drop(columns=NOT_SENT)
    return sent.astype(object).where(sent.notna(), None).to_dict("records")


def _score_through_the_service(client: httpx.Client, requests: list[dict]) -> None:
    """The oldest leads one by one, then the rest in batches, in the order they were created."""
    for lead in requests[:SINGLE]:
        assert client.post("/v1/leads/score", json=lead).status_code == 200
    for start in range(SINGLE, len(requests), BATCH):
        reply = client.post("/v1/leads/score/batch", json={"leads": requests[start : start + BATCH]}).json()
        assert reply["failed"] == 0


def _post_outcomes(client: httpx.Client, leads: pd.DataFrame) -> None:
    """Each lead's true outcome; the first few first get the wrong one, corrected later."""

    def post(lead_id: str, converted: bool) -> None:
        reply = client.post(f"/v1/leads/{lead_id}/outcome", json={"converted": converted})
        assert reply.status_code == 200, reply.text

    truth = list(zip(leads["lead_id"], leads["converted"].astype(bool), strict=True))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pair: post(pair[0], not pair[1]), truth[:REVISED]))
        list(pool.map(lambda pair: post(*pair), truth))


def test_retrain_from_the_score_log_matches_training_from_the_file(
    from_file: FromFile, start_server: ServerFactory, database_url: str, tmp_path: Path
) -> None:
    env = TrainingEnv(tmp_path / "training")
    shutil.copytree(from_file.root, env.root, symlinks=True)  # the file model as champion, MLflow beside it
    server = start_server(env.models_dir / "champion", database_url)
    with server.client() as client:
        _score_through_the_service(client, _requests(from_file.leads))
        _post_outcomes(client, from_file.leads)
    server.stop()  # the score log is written in the background: stopping writes what is queued

    table = tmp_path / "from-log.parquet"
    result = env.cli(
        "retrain", "--spec", str(SAMPLE_SPEC), "--database-url", database_url, "--out", str(table), "--folds", "1"
    )
    assert result.exit_code == 0, result.output
    assert f"{LEADS:,} leads in the score log: {LEADS:,} with an outcome, 0 counted as not converted" in result.output
    assert f"wrote {LEADS:,} leads to {table}" in result.output

    written = pd.read_parquet(table).set_index("lead_id")
    truth = from_file.leads.set_index("lead_id")
    assert (written["converted"] == truth["converted"].loc[written.index]).all()  # latest outcome, corrections too
    assert (written[MODEL_VERSION] == from_file.bundle.version).all()
    for name in ("full_name", "email", "account_manager_assigned"):  # never logged, so never in the table
        assert name not in written.columns
    pd.testing.assert_series_equal(
        written["pages_viewed"], truth["pages_viewed"].loc[written.index], check_dtype=False
    )  # the fields as scored

    new_dir = Path(re.search(r"^bundle: (\S+)$", result.output, re.MULTILINE).group(1))
    retrained = load_bundle(new_dir)
    assert retrained.metrics["n"] == from_file.bundle.metrics["n"]
    assert retrained.metrics["roc_auc"] == pytest.approx(from_file.bundle.metrics["roc_auc"], abs=0.02)
    verdict = re.search(rf"^(promoted to champion|not promoted): .*{from_file.bundle.version}", result.output, re.M)
    assert verdict is not None  # the quality gate judged the new model against the champion
    champion = (env.models_dir / "champion").resolve()
    previous = env.models_dir / from_file.bundle.version
    assert champion == (new_dir if verdict.group(1) == "promoted to champion" else previous)
    print(
        f"holdout ROC AUC from the file {from_file.bundle.metrics['roc_auc']:.4f}, "
        f"from the score log {retrained.metrics['roc_auc']:.4f}; {verdict.group(0)}"
    )
