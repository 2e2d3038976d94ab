"""The faster tree paths are derived from the booster and must agree with it on every row."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.conftest import SAMPLE_SPEC, Trained
from training.bundle import Bundle
from training.data import prepare_leads
from training.engine import TreeEngine
from training.model import CalibratedBooster
from training.spec import read_spec
from training.synthetic import generate_leads
from training.train import TrainOptions, fit_and_evaluate


@pytest.fixture(scope="module")
def trees(trained: Trained) -> Trained:
    """The trained bundle when its model has trees; otherwise a LightGBM bundle trained for these tests."""
    model = trained.bundle.pipeline["model"]
    if isinstance(model, CalibratedBooster):
        return trained
    table = prepare_leads(generate_leads(n=6_000, seed=5), read_spec(SAMPLE_SPEC))
    bundle: Bundle = fit_and_evaluate(table, TrainOptions(families=("lightgbm",), folds=3)).bundle
    return Trained(trained.env, trained.bundle_dir, bundle, trained.stdout)


@pytest.fixture(scope="module")
def engine(trees: Trained) -> TreeEngine:
    return TreeEngine(trees.bundle.pipeline["model"], compiled=True, threads=2)


@pytest.fixture(scope="module")
def matrix(trees: Trained) -> np.ndarray:
    """Fresh leads plus the awkward values: missing, unseen codes, and every split threshold ±1 ulp."""
    encoder = trees.bundle.pipeline["encode"]
    rows = encoder.transform(generate_leads(n=20_000, seed=99))
    rng = np.random.default_rng(1)
    rows[rng.random(rows.shape) < 0.1] = np.nan
    categorical = encoder.categorical_indices_
    rows[rng.random(len(rows)) < 0.05, categorical[0]] = 999.0  # a code never seen
    thresholds = _split_thresholds(trees)
    edges = np.repeat(rows[:1], len(thresholds) * 3, axis=0)
    for i, (feature, value) in enumerate(thresholds):
        for j, nudged in enumerate((np.nextafter(value, -np.inf), value, np.nextafter(value, np.inf))):
            edges[3 * i + j, feature] = nudged
    return np.vstack([rows, edges])


def _split_thresholds(trees: Trained) -> list[tuple[int, float]]:
    dump = trees.bundle.pipeline["model"].booster_.dump_model()
    found: set[tuple[int, float]] = set()

    def walk(node: dict) -> None:
        if "split_feature" in node and node.get("decision_type") == "<=":
            found.add((node["split_feature"], float(node["threshold"])))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    return sorted(found)[:400]


def test_compiled_trees_match_lightgbm(trees: Trained, engine: TreeEngine, matrix: np.ndarray) -> None:
    assert engine.name == "lleaves"
    model = trees.bundle.pipeline["model"]
    expected = model.raw_score(matrix)
    assert np.max(np.abs(engine.raw(matrix) - expected)) <= 1e-12
    probabilities = model.predict_proba(matrix)[:, 1]
    assert np.max(np.abs(engine.probabilities(matrix) - probabilities)) <= 1e-12


def test_single_row_fast_path_matches_lightgbm(trees: Trained, engine: TreeEngine, matrix: np.ndarray) -> None:
    model = trees.bundle.pipeline["model"]
    sample = matrix[::50]
    one_by_one = np.array([engine.raw(row[None, :])[0] for row in sample])
    assert np.array_equal(one_by_one, model.raw_score(sample))


def test_single_row_contributions_match_lightgbm(trees: Trained, engine: TreeEngine, matrix: np.ndarray) -> None:
    booster = trees.bundle.pipeline["model"].booster_
    sample = matrix[::200]
    fast = np.vstack([engine.raw_contributions(row[None, :]) for row in sample])
    expected = booster.predict(sample, pred_contrib=True, num_iteration=trees.bundle.pipeline["model"].best_iteration_)
    assert np.max(np.abs(fast - expected)) <= 1e-12


def test_single_row_path_is_safe_across_threads(trees: Trained, engine: TreeEngine, matrix: np.ndarray) -> None:
    model = trees.bundle.pipeline["model"]
    sample = matrix[:400]
    expected = model.raw_score(sample)
    mismatches: list[int] = []

    def work(offset: int) -> None:
        for i in range(offset, len(sample), 4):
            if engine.raw(sample[i : i + 1])[0] != expected[i]:
                mismatches.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_without_compiled_trees_lightgbm_scores_batches(trees: Trained, matrix: np.ndarray) -> None:
    plain = TreeEngine(trees.bundle.pipeline["model"], compiled=False)
    assert plain.name == "lightgbm"
    assert np.array_equal(plain.raw(matrix[:1000]), trees.bundle.pipeline["model"].raw_score(matrix[:1000]))


def test_compiled_trees_are_cached_and_checked(trees: Trained, matrix: np.ndarray, tmp_path) -> None:
    from training.engine import compile_trees

    model = trees.bundle.pipeline["model"]
    first = compile_trees(model, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("*.o")
    stamp = cache.stat().st_mtime_ns
    second = compile_trees(model, cache_dir=tmp_path)
    assert cache.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert np.array_equal(first.predict(matrix[:500], n_jobs=1), second.predict(matrix[:500], n_jobs=1))

    cache.write_bytes(cache.read_bytes()[:-8] + b"tampered")
    third = compile_trees(model, cache_dir=tmp_path)
    assert cache.read_bytes()[-8:] != b"tampered"  # refused and rebuilt
    assert np.max(np.abs(third.predict(matrix[:500], n_jobs=1) - model.raw_score(matrix[:500]))) <= 1e-12
