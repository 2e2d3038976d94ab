"""Live monitoring: drift of recent leads against the training data, and performance once outcomes arrive."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from training.bundle import Bundle
from training.evaluate import expected_calibration_error
from training.model import numeric_values
from training.reference import level_shares, numeric_shares, population_stability_index

PSI_AMBER, PSI_RED = 0.10, 0.25
AUC_DROP_AMBER, AUC_DROP_RED = 0.03, 0.07
MIN_LEADS_FOR_DRIFT = 200
MIN_OUTCOMES_FOR_PERFORMANCE = 50


def psi_status(psi: float | None) -> str:
    if psi is None:
        return "unknown"
    return "red" if psi >= PSI_RED else "amber" if psi >= PSI_AMBER else "green"


def field_drift(recent: pd.DataFrame, bundle: Bundle) -> dict[str, dict[str, Any]]:
    """PSI per field between recent scored leads and the training data, with the shares behind it."""
    drift = {}
    encoder = bundle.pipeline["encode"]
    for name, reference in bundle.reference["fields"].items():
        column = recent[name] if name in recent.columns else pd.Series([None] * len(recent), dtype=object)
        column = encoder.without_placeholders(name, column)  # missing in the reference too, not unseen levels
        if reference["kind"] == "numeric":
            live = numeric_shares(numeric_values(column), reference["edges"])
        else:
            live = level_shares(column, reference["kind"], reference["levels"])
        psi = population_stability_index(reference["shares"], live) if len(recent) else None
        drift[name] = {
            "psi": psi,
            "status": psi_status(psi),
            "live_missing_share": live[-1],
            "reference_missing_share": reference["shares"][-1],
        }
    return drift


def score_shift(recent: pd.DataFrame, bundle: Bundle) -> dict[str, Any]:
    """How the distribution of served probabilities moved against the holdout's."""
    reference = bundle.reference["scores"]
    if recent.empty:
        return {
            "psi": None,
            "status": "unknown",
            "live_mean": None,
            "holdout_mean": float(np.mean(reference["quantiles"])),
        }
    probabilities = recent["probability"].to_numpy(dtype=float)
    psi = population_stability_index(reference["shares"], numeric_shares(probabilities, reference["edges"]))
    return {
        "psi": psi,
        # like field drift, judged only on enough leads: three unusual leads must not raise an alarm
        "status": psi_status(psi) if len(recent) >= MIN_LEADS_FOR_DRIFT else "unknown",
        "live_mean": float(probabilities.mean()),
        "holdout_mean": float(np.mean(reference["quantiles"])),
    }


def live_performance(scored: pd.DataFrame, bundle: Bundle) -> dict[str, Any]:
    """ROC AUC, Brier and calibration by decile on leads whose outcomes have arrived."""
    n = len(scored)
    positives = int(scored["converted"].sum()) if n else 0
    report: dict[str, Any] = {
        "leads_with_outcomes": n,
        "converted": positives,
        "roc_auc": None,
        "brier": None,
        "ece": None,
        "calibration_by_decile": [],
        "holdout_roc_auc": bundle.metrics["roc_auc"],
    }
    if n == 0:
        report["status"] = "unknown"
        return report
    y = scored["converted"].to_numpy(dtype=int)
    p = scored["probability"].to_numpy(dtype=float)
    report["brier"] = float(np.mean((p - y) ** 2))
    report["ece"] = expected_calibration_error(y, p)
    report["calibration_by_decile"] = _calibration_by_decile(y, p)
    if 0 < positives < n:
        report["roc_auc"] = float(roc_auc_score(y, p))
    report["status"] = _performance_status(report, n)
    return report


def _calibration_by_decile(y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    order = np.argsort(-p, kind="stable")
    rows = []
    for decile, members in enumerate(np.array_split(order, min(10, len(order))), start=1):
        rows.append(
            {
                "decile": decile,
                "leads": len(members),
                "mean_probability": float(p[members].mean()),
                "observed_rate": float(y[members].mean()),
            }
        )
    return rows


def _performance_status(report: dict[str, Any], n: int) -> str:
    if n < MIN_OUTCOMES_FOR_PERFORMANCE or report["roc_auc"] is None:
        return "unknown"
    drop = report["holdout_roc_auc"] - report["roc_auc"]
    return "red" if drop >= AUC_DROP_RED else "amber" if drop >= AUC_DROP_AMBER else "green"


def monitoring_report(recent: pd.DataFrame, scored: pd.DataFrame, bundle: Bundle) -> dict[str, Any]:
    """Everything /v1/monitoring returns, with counts so a reader knows how much to trust it."""
    drift = field_drift(recent, bundle) if len(recent) >= 1 else {}
    worst = max((d["psi"] for d in drift.values() if d["psi"] is not None), default=None)
    enough = len(recent) >= MIN_LEADS_FOR_DRIFT
    return {
        "model_version": bundle.version,
        "window": {
            "scored_leads": len(recent),
            "enough_for_drift": enough,
            "from": _iso(recent["scored_at"].min()) if len(recent) else None,
            "to": _iso(recent["scored_at"].max()) if len(recent) else None,
        },
        "drift": {"status": psi_status(worst) if enough else "unknown", "max_psi": worst, "fields": drift},
        "score_shift": score_shift(recent, bundle),
        "performance": live_performance(scored, bundle),
    }


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()
