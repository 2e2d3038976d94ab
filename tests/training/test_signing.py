"""Bundles trusted by origin: with LEADSCORE_BUNDLE_KEY set, only what training signed with it is unpickled,
and the compiled-trees cache is signed the same way."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Trained
from training.bundle import (
    BUNDLE_FILE,
    SIDECAR_FILE,
    SIGNATURE_FILE,
    SIGNING_KEY_VARIABLE,
    BundleError,
    load_bundle,
    save_bundle,
)

KEY = "bundle-signing-key-for-tests"


class _Marker:
    """A pickle that, once unpickled, creates a file: what an attacker's bundle would do with os.system."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


@pytest.fixture()
def signed_bundle(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's bundle saved again with the key set, as `leadscore train` writes it."""
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, KEY)
    return save_bundle(trained.bundle, tmp_path / "signed" / trained.bundle.version)


def _plant_pickle(directory: Path, marker: Path) -> None:
    """Replace the bundle with a hostile pickle and recompute the sidecar's checksum, as an attacker can."""
    payload = pickle.dumps(_Marker(marker))
    (directory / BUNDLE_FILE).write_bytes(payload)
    sidecar = json.loads((directory / SIDECAR_FILE).read_text())
    sidecar["sha256"] = hashlib.sha256(payload).hexdigest()
    (directory / SIDECAR_FILE).write_text(json.dumps(sidecar))


def test_a_signed_bundle_loads_with_its_key(signed_bundle: Path, trained: Trained) -> None:
    assert (signed_bundle / SIGNATURE_FILE).is_file()
    assert load_bundle(signed_bundle).version == trained.bundle.version


def test_with_a_key_an_unsigned_bundle_is_refused_before_unpickling(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = shutil.copytree(trained.bundle_dir, tmp_path / "unsigned")
    marker = tmp_path / "ran"
    _plant_pickle(copy, marker)
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, KEY)
    with pytest.raises(BundleError, match="not signed"):
        load_bundle(copy)
    assert not marker.exists()
    monkeypatch.delenv(SIGNING_KEY_VARIABLE)
    with pytest.raises(BundleError):  # without a key the checksum alone is checked: the pickle runs
        load_bundle(copy)
    assert marker.exists()


@pytest.mark.parametrize("tamper", ["pickle", "sidecar", "other key"])
def test_with_a_key_a_wrongly_signed_bundle_is_refused_before_unpickling(
    signed_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    marker = tmp_path / "ran"
    if tamper == "pickle":
        _plant_pickle(signed_bundle, marker)
    elif tamper == "sidecar":
        sidecar = json.loads((signed_bundle / SIDECAR_FILE).read_text())
        (signed_bundle / SIDECAR_FILE).write_text(json.dumps({**sidecar, "dataset": "other"}))
    else:
        monkeypatch.setenv(SIGNING_KEY_VARIABLE, "another-key")
    with pytest.raises(BundleError, match="not signed with this"):
        load_bundle(signed_bundle)
    assert not marker.exists()


def test_compiled_trees_are_signed_with_the_key(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.engine import compile_trees

    model = trained.bundle.pipeline["model"]
    model = getattr(model, "trees", model)  # a blend's trees are what gets compiled
    compile_trees(model, cache_dir=tmp_path)  # written without a key: no signature
    (cache,) = tmp_path.glob("*.o")
    assert not cache.with_suffix(".sig").exists()

    monkeypatch.setenv(SIGNING_KEY_VARIABLE, KEY)
    compile_trees(model, cache_dir=tmp_path)
    assert cache.with_suffix(".sig").is_file()  # the unsigned object was refused and rebuilt, signed
    stamp = cache.stat().st_mtime_ns
    signed = compile_trees(model, cache_dir=tmp_path)
    assert cache.stat().st_mtime_ns == stamp  # a signed object is loaded, not rebuilt

    forged = cache.read_bytes()[:-8] + b"tampered"  # object and checksum both replaced, as an attacker can
    cache.write_bytes(forged)
    cache.with_suffix(".sha256").write_text(hashlib.sha256(forged).hexdigest() + "\n")
    rebuilt = compile_trees(model, cache_dir=tmp_path)
    assert cache.read_bytes()[-8:] != b"tampered"
    matrix = np.zeros((4, len(trained.bundle.fields)))
    assert np.array_equal(rebuilt.predict(matrix, n_jobs=1), signed.predict(matrix, n_jobs=1))
