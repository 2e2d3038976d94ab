"""Which bundle is the champion: the quality gate, promotion, rollback, and the list of versions.

The local pointer is ``models/champion`` (a link to a version directory); every move is appended to
``models/promotions.jsonl``. When the bundle was registered in MLflow, the registry alias moves with it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.bundle import Bundle, BundleError, load_bundle, read_sidecar, verify_bundle
from training.errors import LeadscoreError
from training.evaluate import expected_calibration_error
from training.tracking import CHAMPION, set_alias

CHAMPION_LINK = "champion"
PROMOTIONS_LOG = "promotions.jsonl"
MIN_SKILL_AUC = 0.55


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger may replace the champion, with both scores on the challenger's holdout."""

    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def holdout_scores(bundle: Bundle, frame: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    p = bundle.predict_proba(frame)
    return {"roc_auc": float(roc_auc_score(y, p)), "ece": expected_calibration_error(y, p)}


def quality_gate(
    challenger: Bundle,
    holdout: pd.DataFrame,
    y: np.ndarray,
    models_dir: Path,
    auc_margin: float = 0.01,
    ece_margin: float = 0.01,
    min_auc: float = MIN_SKILL_AUC,
) -> GateDecision:
    """Promote only a model with skill whose ROC AUC and ECE are not worse than the champion's beyond the margins."""
    mine = holdout_scores(challenger, holdout, y)
    current = champion_version(models_dir)
    if mine["roc_auc"] < min_auc:
        reason = f"holdout ROC AUC {mine['roc_auc']:.3f} is below {min_auc:.2f}: the model has no real skill"
        return GateDecision(False, reason, mine, None, current)
    if current is None:
        return GateDecision(True, "no current champion", mine)
    try:
        champion = load_bundle(models_dir / CHAMPION_LINK)
    except BundleError as exc:
        return GateDecision(True, f"current champion {current} cannot be loaded ({exc})", mine, None, current)
    if champion.spec.get("name") != challenger.spec.get("name"):
        return GateDecision(
            False,
            f"champion {current} was trained on dataset {champion.spec.get('name')!r}, this model on "
            f"{challenger.spec.get('name')!r}; promote explicitly with --force",
            mine,
            None,
            current,
        )
    theirs = holdout_scores(champion, holdout, y)
    worse_auc = mine["roc_auc"] < theirs["roc_auc"] - auc_margin
    worse_ece = mine["ece"] > theirs["ece"] + ece_margin
    if worse_auc or worse_ece:
        what = "ROC AUC" if worse_auc else "calibration (ECE)"
        return GateDecision(
            False, f"{what} is worse than champion {current}'s on the new holdout", mine, theirs, current
        )
    return GateDecision(True, f"at least as good as champion {current} on the new holdout", mine, theirs, current)


@dataclass(frozen=True)
class PairedFolds:
    """The challenger's out-of-fold probabilities, fold by fold, on development rows of the new data."""

    frame: pd.DataFrame  # the development rows' fields, as the champion reads them
    y: np.ndarray
    tests: list[np.ndarray]  # positions into frame, one array per fold
    challenger: list[np.ndarray]  # calibrated out-of-fold probabilities, one array per fold


def _fold_figures(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from training.evaluate import classification_metrics

    figures = classification_metrics(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
        "log_loss": float(figures["log_loss"]),
        "ece": float(figures["ece"]),
    }


def paired_differences(folds: PairedFolds, champion: Bundle) -> dict[str, dict[str, float]]:
    """Challenger minus champion per fold, on the same rows: mean, sd and standard error of each difference."""
    p_champion = champion.predict_proba(folds.frame)
    differences: dict[str, list[float]] = {"roc_auc": [], "log_loss": [], "ece": []}
    for test, p_challenger in zip(folds.tests, folds.challenger, strict=True):
        mine, theirs = _fold_figures(folds.y[test], p_challenger), _fold_figures(folds.y[test], p_champion[test])
        for name in differences:
            if np.isfinite(mine[name]) and np.isfinite(theirs[name]):
                differences[name].append(mine[name] - theirs[name])
    summary = {}
    for name, values in differences.items():
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        summary[name] = {"mean": float(np.mean(values)), "sd": sd, "se": sd / np.sqrt(max(len(values), 1))}
    return summary


def paired_gate(
    challenger: Bundle,
    folds: PairedFolds,
    holdout: pd.DataFrame,
    y: np.ndarray,
    models_dir: Path,
    auc_margin: float = 0.01,
    ece_margin: float = 0.01,
    min_auc: float = MIN_SKILL_AUC,
) -> GateDecision:
    """The champion and the challenger scored on the same cross-validation folds of the new data.

    The challenger is refused when it is worse beyond the noise the folds show: its mean ROC AUC lower by more
    than the margin and by more than two standard errors, or its mean log loss higher by more than two standard
    errors (and 0.001), or its mean ECE higher by more than the ECE margin. The holdout comparison still guards
    against development rows that no longer describe the newest leads.
    """
    on_holdout = quality_gate(challenger, holdout, y, models_dir, auc_margin, ece_margin, min_auc)
    if on_holdout.champion is None:  # no skill, no champion, another dataset, or a champion that cannot load
        return on_holdout
    current = on_holdout.champion_version
    diff = paired_differences(folds, load_bundle(models_dir / CHAMPION_LINK))
    paired = {f"paired_{name}_{part}": value for name, d in diff.items() for part, value in d.items()}
    mine, theirs = {**on_holdout.challenger, **paired}, on_holdout.champion
    auc, loss, ece = diff["roc_auc"], diff["log_loss"], diff["ece"]
    folds_said = f"over {len(folds.tests)} paired folds"
    if auc["mean"] < -auc_margin and auc["mean"] + 2 * auc["se"] < 0:
        reason = f"ROC AUC is {-auc['mean']:.3f} ± {auc['se']:.3f} below champion {current}'s {folds_said}"
    elif loss["mean"] > max(2 * loss["se"], 0.001):
        reason = f"log loss is {loss['mean']:.4f} ± {loss['se']:.4f} above champion {current}'s {folds_said}"
    elif ece["mean"] > ece_margin:
        reason = f"calibration (ECE) is {ece['mean']:.3f} worse than champion {current}'s {folds_said}"
    elif not on_holdout.promote:
        reason = on_holdout.reason
    else:
        reason = (
            f"at least as good as champion {current} on the same folds of the new data "
            f"(ROC AUC {auc['mean']:+.3f} ± {auc['se']:.3f}, log loss {loss['mean']:+.4f} ± {loss['se']:.4f}) "
            f"and on the new holdout"
        )
        return GateDecision(True, reason, mine, theirs, current)
    return GateDecision(False, reason, mine, theirs, current)


def champion_version(models_dir: Path) -> str | None:
    link = Path(models_dir) / CHAMPION_LINK
    if link.is_symlink():
        return Path(os.readlink(link)).name
    if link.is_dir():
        return read_sidecar(link).get("version")
    return None


def _point_champion_at(models_dir: Path, version: str) -> None:
    """Swap the link atomically: readers see the old champion or the new one, never neither."""
    link = models_dir / CHAMPION_LINK
    staging = models_dir / f".{CHAMPION_LINK}.{os.getpid()}"
    if staging.is_symlink() or staging.exists():
        staging.unlink()
    staging.symlink_to(version, target_is_directory=True)
    if link.is_dir() and not link.is_symlink():
        raise LeadscoreError(f"{link} is a directory, not a link; move it away before promoting")
    os.replace(staging, link)


def _append_log(models_dir: Path, entry: dict[str, Any]) -> None:
    with (models_dir / PROMOTIONS_LOG).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def read_log(models_dir: Path) -> list[dict[str, Any]]:
    path = Path(models_dir) / PROMOTIONS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def promote(models_dir: Path, version: str, reason: str, action: str = "promote") -> dict[str, Any]:
    """Make a verified bundle the champion, here and in the MLflow registry when it was registered."""
    from training.bundle import now_iso

    models_dir = Path(models_dir)
    target = models_dir / version
    if not (target / "bundle.json").is_file():
        known = ", ".join(v["version"] for v in list_versions(models_dir)) or "none"
        raise LeadscoreError(f"no bundle {version!r} in {models_dir}; versions: {known}")
    sidecar = verify_bundle(target)
    registered = sidecar.get("mlflow")
    if registered:
        set_alias(registered["tracking_uri"], registered["registered_name"], CHAMPION, registered["registered_version"])
    previous = champion_version(models_dir)
    _point_champion_at(models_dir, version)
    entry = {"at": now_iso(), "action": action, "version": version, "previous": previous, "reason": reason}
    _append_log(models_dir, entry)
    return entry


def champion_history(models_dir: Path) -> list[str]:
    """The stack of champions: promotions push, rollbacks pop."""
    stack: list[str] = []
    for entry in read_log(models_dir):
        if entry["action"] == "promote":
            stack.append(entry["version"])
        elif entry["action"] == "rollback" and stack:
            stack.pop()
    return stack


def rollback(models_dir: Path) -> dict[str, Any]:
    """Restore the champion before the current one."""
    stack = champion_history(models_dir)
    if len(stack) < 2:
        raise LeadscoreError("no previous champion to roll back to")
    return promote(models_dir, stack[-2], reason=f"rollback from {stack[-1]}", action="rollback")


def list_versions(models_dir: Path) -> list[dict[str, Any]]:
    """Every bundle in the models folder, newest first, with its holdout figures and status."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    current = champion_version(models_dir)
    rows = []
    for path in sorted(models_dir.iterdir(), reverse=True):
        if path.name.startswith(".") or path.name == CHAMPION_LINK or not (path / "bundle.json").is_file():
            continue
        sidecar = read_sidecar(path)
        rows.append(
            {
                "version": sidecar.get("version", path.name),
                "created_at": sidecar.get("created_at"),
                "dataset": sidecar.get("dataset"),
                "roc_auc": sidecar.get("holdout", {}).get("roc_auc"),
                "ece": sidecar.get("holdout", {}).get("ece"),
                "registered_version": (sidecar.get("mlflow") or {}).get("registered_version"),
                "champion": sidecar.get("version") == current,
            }
        )
    return rows


def record_registration(bundle_dir: Path, registration: dict[str, Any]) -> None:
    """Note the MLflow run and registered version in the sidecar (outside the checksummed pickle)."""
    path = Path(bundle_dir) / "bundle.json"
    sidecar = read_sidecar(bundle_dir)
    sidecar["mlflow"] = registration
    path.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
