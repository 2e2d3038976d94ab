"""The model bundle: the only contract between training and serving.

A bundle is a directory: ``bundle.joblib`` (a pickle, hence code) and ``bundle.json`` (the sidecar that
records its sha256 and the library versions that wrote it), plus readable reports. ``load_bundle``
checks the checksum before unpickling anything and refuses bundles from other library versions.

A checksum proves a bundle unchanged, not where it came from: anyone who can write the models folder can
write a pickle and its checksum. With a signing key (``LEADSCORE_BUNDLE_KEY``), training also writes
``bundle.sig``, an HMAC-SHA256 over the bundle's checksum and its sidecar, and every load with the key set
refuses, before unpickling, a bundle whose signature is missing or wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from training.errors import LeadscoreError
from training.schema import FieldSchema
from training.wording import Wording

FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.joblib"
SIDECAR_FILE = "bundle.json"
SIGNATURE_FILE = "bundle.sig"
SIGNING_KEY_VARIABLE = "LEADSCORE_BUNDLE_KEY"
# Pickled estimators are only safe to load with the library versions that wrote them.
PINNED_LIBRARIES = ("scikit-learn", "lightgbm")
REPORTED_LIBRARIES = (*PINNED_LIBRARIES, "numpy", "pandas", "leadscore")


class BundleError(LeadscoreError):
    """A bundle that must not be loaded: missing, tampered with, or written by other library versions."""


@dataclass
class Bundle:
    """Everything training learned, in one object the service loads."""

    version: str
    created_at: str
    spec: dict[str, Any]
    pipeline: Pipeline
    schema: list[FieldSchema]
    metrics: dict[str, Any]
    importance: list[dict[str, Any]]
    profile: dict[str, Any]
    grades: dict[str, Any]
    reference: dict[str, Any]
    examples: list[dict[str, Any]]
    example_probabilities: list[float]
    leakage: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    split: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    # None only in bundles written before wording existed; filled with humanised defaults when built or loaded.
    wording: Wording | None = None

    def __post_init__(self) -> None:
        if self.wording is None:
            self.wording = default_wording(self)

    @property
    def fields(self) -> list[str]:
        return [f.name for f in self.schema]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated conversion probability per row."""
        return self.pipeline.predict_proba(frame)[:, 1]


def default_wording(bundle: Bundle) -> Wording:
    """The spec's words for a bundle's fields: older bundles kept their spec and schema but no Wording."""
    return Wording.from_spec(bundle.spec, {f.name: f.kind for f in bundle.schema})


def new_version() -> str:
    """Sortable by creation time, unique without coordination."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in REPORTED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def signing_key() -> bytes | None:
    """The bundle signing key from the environment (LEADSCORE_BUNDLE_KEY), None when unset or empty."""
    key = os.environ.get(SIGNING_KEY_VARIABLE, "")
    return key.encode() if key else None


def signature(key: bytes, purpose: str, digest: str, attached: bytes = b"") -> str:
    """HMAC-SHA256 of a file's sha256 and what is attached to it, for one purpose (a bundle, compiled trees),
    so that a signature made for one kind of file never vouches for another."""
    message = b"\n".join([b"leadscore", purpose.encode(), digest.encode(), attached])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_matches(key: bytes, expected: str, path: Path) -> bool:
    """Whether the signature file at ``path`` holds ``expected`` (compared in constant time)."""
    try:
        found = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(found, expected)


def _bundle_signature(key: bytes, directory: Path, payload_digest: str) -> str:
    return signature(key, "bundle", payload_digest, (directory / SIDECAR_FILE).read_bytes())


def save_bundle(bundle: Bundle, directory: Path, extra_files: dict[str, Path] | None = None) -> Path:
    """Write the bundle into a new directory atomically (a failure leaves nothing behind); signed when a
    signing key is set."""
    if directory.exists():
        raise BundleError(f"{directory} already exists; bundles are never overwritten")
    staging = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        joblib.dump(bundle, staging / BUNDLE_FILE, compress=3)
        digest = sha256_of(staging / BUNDLE_FILE)
        _write_json(staging / SIDECAR_FILE, sidecar_for(bundle, digest))
        key = signing_key()
        if key:
            (staging / SIGNATURE_FILE).write_text(_bundle_signature(key, staging, digest) + "\n", encoding="ascii")
        _write_reports(bundle, staging)
        for name, source in (extra_files or {}).items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def sidecar_for(bundle: Bundle, sha256: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "version": bundle.version,
        "created_at": bundle.created_at,
        "sha256": sha256,
        "versions": bundle.versions,
        "dataset": bundle.spec.get("name"),
        "holdout": {k: bundle.metrics.get(k) for k in ("roc_auc", "pr_auc", "brier", "ece")},
    }


def _write_reports(bundle: Bundle, directory: Path) -> None:
    """Readable copies of what the bundle holds, for people and for MLflow."""
    _write_json(directory / "metrics.json", bundle.metrics)
    _write_json(directory / "importance.json", bundle.importance)
    _write_json(directory / "profile.json", bundle.profile)
    _write_json(directory / "grades.json", bundle.grades)
    _write_json(directory / "schema.json", [f.to_dict() for f in bundle.schema])


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def read_sidecar(directory: Path) -> dict[str, Any]:
    path = Path(directory) / SIDECAR_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"no bundle at {directory}: {SIDECAR_FILE} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BundleError(f"{path} is not valid JSON; the bundle cannot be trusted") from None


def verify_bundle(directory: Path) -> dict[str, Any]:
    """Check checksum and library versions without unpickling; returns the sidecar."""
    directory = Path(directory)
    sidecar = read_sidecar(directory)
    payload = directory / BUNDLE_FILE
    if not payload.is_file():
        raise BundleError(f"no {BUNDLE_FILE} in {directory}")
    if sidecar.get("format") != FORMAT_VERSION:
        raise BundleError(f"bundle format {sidecar.get('format')!r} in {directory} is not {FORMAT_VERSION}")
    digest = sha256_of(payload)
    if digest != sidecar.get("sha256"):
        raise BundleError(f"checksum mismatch for {payload}: the file changed after it was written; refusing to load")
    _check_signature(directory, digest)
    installed = library_versions()
    for library in PINNED_LIBRARIES:
        wrote = sidecar.get("versions", {}).get(library)
        if wrote != installed[library]:
            raise BundleError(
                f"bundle {sidecar.get('version')} was written with {library} {wrote}, this install has "
                f"{installed[library]}; retrain, or install {library}=={wrote}"
            )
    return sidecar


def _check_signature(directory: Path, payload_digest: str) -> None:
    """With a signing key set, only a bundle signed with it may be unpickled."""
    key = signing_key()
    if key is None:
        return
    if not (directory / SIGNATURE_FILE).is_file():
        raise BundleError(
            f"bundle in {directory} is not signed and {SIGNING_KEY_VARIABLE} is set: refusing to load it; "
            "train it again with the key set"
        )
    if not signature_matches(key, _bundle_signature(key, directory, payload_digest), directory / SIGNATURE_FILE):
        raise BundleError(
            f"bundle in {directory} is not signed with this {SIGNING_KEY_VARIABLE} (or was changed after signing): "
            "refusing to load it"
        )


def load_bundle(directory: Path | str) -> Bundle:
    """Load a bundle only after its checksum, signature (with a signing key set) and library versions check out."""
    directory = Path(directory)
    sidecar = verify_bundle(directory)
    try:
        bundle = joblib.load(directory / BUNDLE_FILE)
    except Exception as exc:  # a checksum-valid file that still fails to unpickle
        raise BundleError(f"{directory / BUNDLE_FILE} cannot be loaded ({type(exc).__name__}); retrain it") from None
    if not isinstance(bundle, Bundle) or bundle.version != sidecar.get("version"):
        raise BundleError(f"{directory / BUNDLE_FILE} does not hold bundle {sidecar.get('version')}")
    if getattr(bundle, "wording", None) is None:  # unpickling skips __post_init__
        bundle.wording = default_wording(bundle)
    return bundle


def smoke_test(bundle: Bundle, tolerance: float = 1e-9) -> None:
    """Score the bundle's example leads and compare with what training recorded."""
    got = bundle.predict_proba(pd.DataFrame(bundle.examples, columns=bundle.fields))
    expected = np.asarray(bundle.example_probabilities)
    if got.shape != expected.shape or not np.all(np.abs(got - expected) <= tolerance):
        raise BundleError(f"bundle {bundle.version} failed its smoke test: example scores differ from training")
