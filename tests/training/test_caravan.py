"""Real data: the CoIL 2000 Caravan insurance customers, shipped in the islp package."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CARAVAN_SPEC, TrainingEnv, caravan_path
from training.data import prepare_leads
from training.spec import read_spec
from training.train import cross_validated_auc

HOME_OR_CAR = {"MHKOOP", "MHHUUR", "PPERSAUT", "APERSAUT"}


@pytest.fixture(scope="module")
def caravan() -> pd.DataFrame:
    return pd.read_csv(caravan_path())


def test_caravan_five_fold_auc(caravan: pd.DataFrame) -> None:
    scores = cross_validated_auc(prepare_leads(caravan, read_spec(CARAVAN_SPEC)), folds=5)
    assert len(scores) == 5
    assert np.mean(scores) >= 0.74, scores


def test_caravan_trains_end_to_end(training_env: TrainingEnv) -> None:
    result = training_env.cli("train", "--data", str(caravan_path()), "--spec", str(CARAVAN_SPEC))
    assert result.exit_code == 0, result.output
    assert "stratified random" in result.stdout
    bundle_dir = (training_env.models_dir / "champion").resolve()
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.65 and metrics["ece"] < 0.05
    profile = json.loads((bundle_dir / "profile.json").read_text())
    fields = {trait["field"] for trait in profile["traits"]}
    assert fields & HOME_OR_CAR, fields
    schema = {f["name"]: f for f in json.loads((bundle_dir / "schema.json").read_text())}
    assert schema["MOSTYPE"]["kind"] == "categorical"


def test_profile_command_prints_questions(training_env: TrainingEnv) -> None:
    result = training_env.cli("profile", "--data", str(caravan_path()), "--spec", str(CARAVAN_SPEC), "--top", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "Ask new leads, most telling first:"
    first = result.stdout.splitlines()[2]
    assert first.startswith(" 1. How much does the customer pay for car insurance a year? f ")  # PPERSAUT, worded
    assert "of best customers" in first and "PPERSAUT" not in result.stdout
