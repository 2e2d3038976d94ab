"""A bundle is a pickle: it loads only when its checksum and library versions check out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import Trained
from training.bundle import BUNDLE_FILE, SIDECAR_FILE, BundleError, load_bundle, save_bundle, smoke_test


@pytest.fixture()
def bundle_copy(trained: Trained, tmp_path: Path) -> Path:
    target = tmp_path / trained.bundle.version
    shutil.copytree(trained.bundle_dir, target)
    return target


def test_round_trip_scores_identically(trained: Trained, bundle_copy: Path, sample_leads: pd.DataFrame) -> None:
    loaded = load_bundle(bundle_copy)
    rows = sample_leads.head(500)
    assert np.array_equal(loaded.predict_proba(rows), trained.bundle.predict_proba(rows))
    assert loaded.version == trained.bundle.version
    assert loaded.versions["scikit-learn"] == trained.bundle.versions["scikit-learn"]
    smoke_test(loaded)


def test_a_tampered_byte_is_refused(bundle_copy: Path) -> None:
    payload = bytearray((bundle_copy / BUNDLE_FILE).read_bytes())
    payload[len(payload) // 2] ^= 0x01
    (bundle_copy / BUNDLE_FILE).write_bytes(bytes(payload))
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_bundle(bundle_copy)


def test_a_bundle_from_another_scikit_learn_is_refused(bundle_copy: Path) -> None:
    sidecar = json.loads((bundle_copy / SIDECAR_FILE).read_text())
    sidecar["versions"]["scikit-learn"] = "0.24.2"
    (bundle_copy / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.raises(BundleError, match=r"written with scikit-learn 0\.24\.2"):
        load_bundle(bundle_copy)


def test_a_missing_sidecar_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / SIDECAR_FILE).unlink()
    with pytest.raises(BundleError, match="not found"):
        load_bundle(bundle_copy)


def test_smoke_test_catches_a_bundle_that_scores_differently(bundle_copy: Path) -> None:
    bundle = load_bundle(bundle_copy)
    bundle.example_probabilities = [p + 1e-6 for p in bundle.example_probabilities]
    with pytest.raises(BundleError, match="smoke test"):
        smoke_test(bundle)


def test_bundles_are_never_overwritten_and_failures_leave_nothing(bundle_copy: Path, tmp_path: Path) -> None:
    bundle = load_bundle(bundle_copy)
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(bundle, bundle_copy)
    target = tmp_path / "new"
    with pytest.raises(FileNotFoundError):
        save_bundle(bundle, target, {"plots/missing.png": tmp_path / "nope.png"})
    assert not target.exists()
    assert not list(tmp_path.glob(".new*"))


def test_a_matching_checksum_over_garbage_is_still_refused(bundle_copy: Path) -> None:
    import hashlib

    garbage = b"not a pickle"
    (bundle_copy / BUNDLE_FILE).write_bytes(garbage)
    sidecar = json.loads((bundle_copy / SIDECAR_FILE).read_text())
    sidecar["sha256"] = hashlib.sha256(garbage).hexdigest()
    (bundle_copy / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.raises(BundleError, match="cannot be loaded"):
        load_bundle(bundle_copy)
