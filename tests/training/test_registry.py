"""Promotion: a worse model never becomes champion; promote and rollback move both pointers."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE_SPEC, TrainingEnv
from training.registry import champion_version, list_versions, read_log
from training.synthetic import generate_leads


@pytest.fixture(scope="module")
def leads_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("registry-data")
    good = generate_leads(n=6_000, seed=21)
    # Damage only the training period: the most recent 20%, the holdout, keeps the truth.
    past = np.arange(len(good)) < int(0.8 * len(good))
    rng = np.random.default_rng(0)
    weakened = good.copy()
    for driver in ("owns_home", "contact_role", "credit_check", "lead_source"):
        weakened.loc[past, driver] = rng.permutation(good.loc[past, driver].to_numpy())
    # Labels shuffled throughout: a model without skill. With the truth kept in the holdout, its holdout ROC AUC
    # is a random function of real drivers, and crossed the 0.55 skill line in 2 of 8 shuffles measured.
    shuffled = good.copy()
    shuffled["converted"] = rng.permutation(good["converted"].to_numpy())
    shuffled["deal_value"] = np.where(shuffled["converted"] == 1, good["deal_value"].fillna(1000.0), np.nan)
    paths = {name: root / f"{name}.csv" for name in ("good", "weakened", "shuffled")}
    for name, table in (("good", good), ("weakened", weakened), ("shuffled", shuffled)):
        table.to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def registry_env(tmp_path_factory: pytest.TempPathFactory, leads_files: dict[str, Path]) -> TrainingEnv:
    """A champion trained on real signal, then challengers with scrambled drivers and with shuffled labels."""
    env = TrainingEnv(tmp_path_factory.mktemp("registry"))
    for name in ("good", "weakened", "shuffled"):
        result = env.cli("train", "--data", str(leads_files[name]), "--spec", str(SAMPLE_SPEC))
        assert result.exit_code == 0, result.output
    return env


def _aliases(env: TrainingEnv) -> dict[str, str]:
    return {
        k: str(v) for k, v in mlflow.MlflowClient(env.tracking_uri).get_registered_model("leadscore").aliases.items()
    }


def _runs_newest_first(env: TrainingEnv) -> list:
    client = mlflow.MlflowClient(env.tracking_uri)
    experiment = client.get_experiment_by_name("leadscore").experiment_id
    return client.search_runs([experiment], order_by=["attributes.start_time DESC"])


def test_worse_models_are_not_promoted(registry_env: TrainingEnv) -> None:
    shuffled, weakened, good = list_versions(registry_env.models_dir)
    assert champion_version(registry_env.models_dir) == good["version"]
    assert _aliases(registry_env) == {"champion": "1", "challenger": "3"}
    assert shuffled["roc_auc"] < 0.6 < weakened["roc_auc"] < good["roc_auc"]

    shuffled_run, weakened_run, good_run = _runs_newest_first(registry_env)
    assert good_run.data.tags["leadscore.promotion"] == "promoted"
    assert weakened_run.data.tags["leadscore.promotion"] == "refused"
    assert "ROC AUC is worse than champion" in weakened_run.data.tags["leadscore.promotion_reason"]
    assert weakened_run.data.metrics["gate.champion.roc_auc"] > weakened_run.data.metrics["gate.challenger.roc_auc"]
    assert shuffled_run.data.tags["leadscore.promotion"] == "refused"
    assert "no real skill" in shuffled_run.data.tags["leadscore.promotion_reason"]


def test_promote_and_rollback_move_the_champion_everywhere(registry_env: TrainingEnv) -> None:
    _, newest, first = list_versions(registry_env.models_dir)
    result = registry_env.cli("promote", newest["version"])
    assert result.exit_code == 0, result.output
    assert champion_version(registry_env.models_dir) == newest["version"]
    assert _aliases(registry_env)["champion"] == "2"
    assert (registry_env.models_dir / "champion" / "bundle.joblib").is_file()

    result = registry_env.cli("rollback")
    assert result.exit_code == 0, result.output
    assert champion_version(registry_env.models_dir) == first["version"]
    assert _aliases(registry_env)["champion"] == "1"
    assert [e["action"] for e in read_log(registry_env.models_dir)] == ["promote", "promote", "rollback"]

    listing = registry_env.cli("models", "list")
    assert f"* {first['version']}" in listing.stdout
    *rows, legend = listing.stdout.splitlines()[1:]
    assert legend == "(* marks the champion)"  # a legend, never a line that reads like a bundle's row
    assert [row[2:].split()[0] for row in rows] == [row["version"] for row in list_versions(registry_env.models_dir)]


def test_rollback_with_no_history_and_unknown_versions_fail_cleanly(training_env: TrainingEnv) -> None:
    result = training_env.cli("rollback")
    assert result.exit_code == 2 and result.stderr.strip() == "error: no previous champion to roll back to"
    result = training_env.cli("promote", "no-such-version")
    assert result.exit_code == 2 and "no bundle 'no-such-version'" in result.stderr


def test_a_tampered_bundle_cannot_be_promoted(registry_env: TrainingEnv) -> None:
    newest = list_versions(registry_env.models_dir)[0]
    payload = registry_env.models_dir / newest["version"] / "bundle.joblib"
    original = payload.read_bytes()
    try:
        payload.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        before = champion_version(registry_env.models_dir)
        result = registry_env.cli("promote", newest["version"])
        assert result.exit_code == 2 and "checksum mismatch" in result.stderr
        assert champion_version(registry_env.models_dir) == before
    finally:
        payload.write_bytes(original)


def test_training_reads_a_sql_table(training_env: TrainingEnv, leads_files: dict[str, Path]) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{training_env.root / 'crm.db'}"
    engine = sa.create_engine(url)
    pd.read_csv(leads_files["good"]).to_sql("leads", engine, index=False)
    engine.dispose()
    result = training_env.cli("train", "--data", url, "--table", "leads", "--spec", str(SAMPLE_SPEC), "--no-promote")
    assert result.exit_code == 0, result.output
    assert "trained on 6,000 leads" in result.stdout
    assert champion_version(training_env.models_dir) is None


def _paired_folds(bundle, frame: pd.DataFrame, y: np.ndarray, scramble: bool):
    from training.registry import PairedFolds

    tests = np.array_split(np.arange(len(frame)), 5)
    p = bundle.predict_proba(frame)
    rng = np.random.default_rng(0)
    challenger = [rng.permutation(p[test]) if scramble else p[test] for test in tests]
    return PairedFolds(frame, y, tests, challenger)


@pytest.mark.parametrize("scramble", [False, True])
def test_the_gate_compares_both_models_on_the_same_folds(models_folder, scramble: bool) -> None:
    from training.bundle import load_bundle
    from training.registry import paired_gate

    champion = load_bundle(models_folder.champion)
    leads = generate_leads(n=4_000, seed=31)
    frame, y = leads[champion.fields], leads["converted"].to_numpy()
    folds = _paired_folds(champion, frame, y, scramble)
    decision = paired_gate(champion, folds, frame.head(1_000), y[:1_000], models_folder.root)
    assert decision.challenger["paired_roc_auc_se"] >= 0
    if scramble:
        assert not decision.promote
        assert "paired folds" in decision.reason and decision.challenger["paired_roc_auc_mean"] < -0.1
    else:
        assert decision.promote, decision.reason
        assert decision.challenger["paired_log_loss_mean"] == pytest.approx(0.0, abs=1e-12)
