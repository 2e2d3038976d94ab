"""The sales-ops page: a static page at / and /dashboard, and the one JSON read it draws from.

The page itself holds no data, so it is served without a key; everything it shows comes from
`GET /v1/dashboard`, which takes a reader key like the other read routes. Numbers come with the plain-words
sentences a sales-ops manager reads, built here so every client says the same thing. Charts are SVG drawn
from the bundle (see `service.charts`), so the page loads nothing from elsewhere and works offline.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any

import orjson
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from service.auth import ReaderDep
from service.champion import ServingModel
from service.charts import charts_for, field_label
from service.follow import champion_fields
from service.monitoring import (
    AUC_DROP_AMBER,
    AUC_DROP_RED,
    MIN_LEADS_FOR_DRIFT,
    MIN_OUTCOMES_FOR_PERFORMANCE,
    PSI_AMBER,
    PSI_RED,
    monitoring_report,
)
from service.routes import serving_model
from service.store import StoreUnavailable
from training.bundle import Bundle
from training.profile import worded_profile
from training.wording import Wording

router = APIRouter()

DEFAULT_RECENT_LEADS = 500
MAX_RECENT_LEADS = 100_000
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "qualify.js": "text/javascript; charset=utf-8",
    "qualify.css": "text/css; charset=utf-8",
}
# The page may talk only to this service: no CDN, no inline script, nothing framed elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Holdout ROC AUC in words, highest bar first.
MODEL_WORDS = {
    "lightgbm": "gradient-boosted trees",
    "logistic": "an additive logistic model",
    "blend": "a blend of gradient-boosted trees and an additive logistic model",
}
AUC_WORDS = ((0.80, "Strong"), (0.70, "Good"), (0.60, "Fair"), (0.0, "Weak"))
# Expected calibration error in words: how far predicted chances sit from what happened, on average.
ECE_WORDS = ((0.02, "Honest"), (0.05, "Roughly right"), (1.0, "Off: use the ranking, not the numbers"))
COLOUR_ORDER = {"red": 3, "amber": 2, "green": 1, "grey": 0}
OVERALL_WORDS = {
    "green": "All clear",
    "amber": "Worth a look",
    "red": "Needs attention",
    "grey": "Not enough data yet",
}


# ---------------------------------------------------------------- the page and its files


@lru_cache
def _static(name: str) -> bytes:
    return resources.files("service").joinpath("static", name).read_bytes()


def _page() -> Response:
    return Response(_static("dashboard.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/", include_in_schema=False)
def home() -> Response:
    """The sales-ops page is the service's front door."""
    return _page()


@router.get("/dashboard", include_in_schema=False)
def dashboard_page() -> Response:
    """The sales-ops page; it asks for a key only if the service wants one."""
    return _page()


@router.get("/qualify", include_in_schema=False)
def qualify_page() -> Response:
    """The reps' qualification page: the next question to ask a lead; the same key and CSP as the sales-ops page."""
    return Response(_static("qualify.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/dashboard/assets/{name}", include_in_schema=False)
def dashboard_asset(name: str) -> Response:
    """The pages' scripts and style sheets, shipped inside the package (only these names are served)."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return Response(_static(name), media_type=ASSETS[name], headers=PAGE_HEADERS)


@router.get("/v1/dashboard/access", include_in_schema=False)
def dashboard_access(request: Request) -> dict[str, bool]:
    """Whether the page must ask for a key, so it can ask before its first read instead of failing one."""
    return {"key_required": not request.app.state.settings.open_access}


# ---------------------------------------------------------------- what the model is and how good it is


def _date_text(iso: str | None) -> str | None:
    """23 Nov 2026: the date a manager reads, from the bundle's ISO timestamp."""
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{moment.day} {moment:%b %Y}"


def _word(value: float, scale: tuple[tuple[float, str], ...], higher_is_better: bool) -> str:
    for bound, word in scale:
        if (value >= bound) if higher_is_better else (value <= bound):
            return word
    return scale[-1][1]


def model_summary(model: ServingModel) -> dict[str, Any]:
    """Which model is serving, since when, and on how many held-out leads it was judged."""
    bundle = model.bundle
    return {
        "version": bundle.version,
        "created_at": bundle.created_at,
        "trained_on": _date_text(bundle.created_at),
        "dataset": bundle.spec.get("name"),
        "loaded_at": model.loaded_at.isoformat(),
        "holdout_leads": int(bundle.metrics.get("n", 0)),
        "holdout_converted": int(bundle.metrics.get("positives", 0)),
    }


def cross_validated_sentence(metrics: dict[str, Any]) -> str:
    """How sure the ranking figure is: the cross-validated mean and spread, and against the simple baseline."""
    cv = metrics.get("cv")
    baseline = metrics.get("baselines", {}).get("logistic_regression", {}).get("roc_auc")
    parts = []
    if cv:
        auc = cv["metrics"]["roc_auc"]
        parts.append(
            f" Across {cv['fold_count']} cross-validation folds: {auc['mean']:.2f} ± {auc['sd']:.2f} "
            f"({MODEL_WORDS.get(cv['chosen'], cv['chosen'])}, chosen as the most accurate of "
            f"{len(cv['candidates'])} candidates)."
        )
    if baseline is not None:
        parts.append(f" A simple logistic regression reaches {baseline:.2f} on the same leads.")
    return "".join(parts)


def headline(bundle: Bundle) -> dict[str, Any]:
    """How good the model is, as four numbers each with the sentence that explains it."""
    metrics = bundle.metrics
    auc, base_rate, ece = float(metrics["roc_auc"]), float(metrics["base_rate"]), float(metrics["ece"])
    deciles = metrics["lift_by_decile"]
    top, top_two = deciles[0], deciles[min(1, len(deciles) - 1)]
    top_share = top["cumulative_leads_share"]
    top_sentence = f"The top {top_share:.0%} of leads convert at {top['rate']:.1%} vs {base_rate:.1%} overall" + (
        f" ({top['lift']:.1f}× the average)." if top["lift"] is not None else "."
    )
    cards = [
        {
            "id": "auc",
            "title": "How well it ranks leads",
            "value": f"{auc:.2f}",
            "badge": _word(auc, AUC_WORDS, higher_is_better=True),
            "note": f"Given a lead that converted and one that did not, it scores the converter higher "
            f"{auc:.0%} of the time (holdout ROC AUC; 0.50 is a coin toss)." + cross_validated_sentence(metrics),
        },
        {
            "id": "top-decile",
            "title": f"Top {top_share:.0%} of leads",
            "value": f"{top['rate']:.0%}",
            "badge": None,
            "note": top_sentence,
        },
        {
            "id": "gain",
            "title": f"Best {top_two['cumulative_leads_share']:.0%} of leads",
            "value": f"{(top_two['cumulative_gain'] or 0):.0%}",
            "badge": None,
            "note": f"of all conversions come from the best-scored {top_two['cumulative_leads_share']:.0%} of leads.",
        },
        {
            "id": "calibration",
            "title": "Predicted chances",
            "value": f"±{ece * 100:.1f} pts",
            "badge": _word(ece, ECE_WORDS, higher_is_better=False),
            "note": "Average gap between a lead's predicted chance and how often such leads really converted.",
        },
    ]
    return {
        "roc_auc": auc,
        "base_rate": base_rate,
        "top_decile_rate": float(top["rate"]),
        "top_decile_lift": top["lift"],
        "ece": ece,
        "cross_validation": metrics.get("cv", {}).get("metrics"),
        "model_family": metrics.get("model_family"),
        "top_sentence": top_sentence,
        "measured_on": f"Measured on {int(metrics.get('n', 0)):,} recent leads the model never saw in training "
        f"({int(metrics.get('positives', 0)):,} of them converted).",
        "cards": cards,
    }


def grade_rows(bundle: Bundle) -> list[dict[str, Any]]:
    """Each grade's cut-off and the conversion to expect from it, measured on the holdout."""
    rows = []
    ceiling: float | None = None  # the cut-off of the grade above, best grade first
    for row in bundle.grades.get("table", []):
        expected = row.get("expected_conversion")
        floor = float(row.get("min_probability") or 0.0)
        rows.append(
            {
                "grade": row["grade"],
                "min_probability": floor,
                "chance_range": _chance_range(floor, ceiling),
                "share_of_leads": float(row.get("share_of_leads") or 0.0),
                "expected_conversion": expected,
                "sentence": (
                    f"about {round(expected * 100)} in 100 convert" if expected is not None else "no test leads"
                ),
            }
        )
        ceiling = floor
    return rows


def _chance_range(floor: float, ceiling: float | None) -> str:
    """A grade's band of predicted chances in words: 32.1% or more, 12.1% to 32.1%, below 4.2%."""
    if ceiling is None:
        return f"{floor:.1%} or more"
    if floor <= 0.0:
        return f"below {ceiling:.1%}"
    return f"{floor:.1%} to {ceiling:.1%}"


def qualification_questions(bundle: Bundle) -> dict[str, Any]:
    """The best-customer profile as a ranked list: what to ask, and how much more often best customers say yes."""
    profile = worded_profile(bundle.profile, bundle.wording)
    questions = []
    for rank, trait in enumerate(profile["traits"], start=1):
        questions.append(
            {
                "rank": rank,
                "field": trait["field"],
                "question": trait["question"],
                "answer": trait["answer"],
                "evidence": trait["evidence"],
                "share_best": float(trait["share_best"]),
                "share_all": float(trait["share_all"]),
                "lift": float(trait["lift"]),
            }
        )
    return {
        "definition": profile.get("definition"),
        "n_best": profile.get("n_best"),
        "n_all": profile.get("n_all"),
        "questions": questions,
    }


# ---------------------------------------------------------------- health: drift and live performance


def _colour(monitoring_status: str) -> str:
    """Monitoring says unknown when it cannot judge; the page shows that as grey, never as green."""
    return monitoring_status if monitoring_status in {"green", "amber", "red"} else "grey"


def drift_status(report: dict[str, Any], wording: Wording | None = None) -> dict[str, Any]:
    """Do new leads look like the ones the model learned from? The field that moved most, by PSI."""
    n = report["window"]["scored_leads"]
    drift = report["drift"]
    item = {"id": "drift", "title": "New leads vs training data", "colour": _colour(drift["status"])}
    if not report["window"]["enough_for_drift"]:
        return item | {
            "colour": "grey",
            "headline": "Not enough recent leads to judge yet",
            "detail": f"{n:,} of the {MIN_LEADS_FOR_DRIFT:,} scored leads needed.",
        }
    fields = {name: d["psi"] for name, d in drift["fields"].items() if d["psi"] is not None}
    worst = max(fields, key=fields.__getitem__) if fields else None
    headlines = {
        "green": "New leads look like the leads the model learned from",
        "amber": "New leads are starting to differ from the training data",
        "red": "New leads differ a lot from the training data: consider retraining",
        "grey": "Cannot compare new leads with the training data",
    }
    detail = f"Based on the last {n:,} scored leads."
    if worst is not None:
        detail = f"Biggest change: {field_label(worst, wording)} (PSI {fields[worst]:.2f}). " + detail
    return item | {"headline": headlines[item["colour"]], "detail": detail, "value": drift["max_psi"]}


def score_shift_status(report: dict[str, Any]) -> dict[str, Any]:
    """Are the predicted chances moving? Monitoring judges it only on as many leads as drift needs."""
    n = report["window"]["scored_leads"]
    shift = report["score_shift"]
    item: dict[str, Any] = {"id": "scores", "title": "Predicted chances", "value": shift["psi"]}
    if shift["status"] == "unknown":
        return item | {
            "colour": "grey",
            "headline": "Not enough recent leads to judge yet",
            "detail": f"{n:,} of the {MIN_LEADS_FOR_DRIFT:,} scored leads needed.",
        }
    colour = _colour(shift["status"])
    headlines = {
        "green": "Predicted chances are in line with testing",
        "amber": "Predicted chances are drifting from testing",
        "red": "Predicted chances have moved a lot since testing",
        "grey": "Cannot compare predicted chances with testing",
    }
    detail = (
        f"Average predicted chance {shift['live_mean']:.1%} now vs {shift['holdout_mean']:.1%} when tested "
        f"(PSI {shift['psi']:.2f}), over the last {n:,} scored leads."
    )
    return item | {"colour": colour, "headline": headlines[colour], "detail": detail}


def performance_status(report: dict[str, Any]) -> dict[str, Any]:
    """Is it still ranking well on leads whose outcomes came back? Live ROC AUC against the holdout's."""
    perf = report["performance"]
    n, converted = perf["leads_with_outcomes"], perf["converted"]
    item: dict[str, Any] = {"id": "performance", "title": "Live accuracy", "value": perf["roc_auc"]}
    if n < MIN_OUTCOMES_FOR_PERFORMANCE:
        return item | {
            "colour": "grey",
            "headline": "Waiting for outcomes",
            "detail": f"{n:,} of the {MIN_OUTCOMES_FOR_PERFORMANCE:,} leads with a reported outcome needed "
            f"({converted:,} converted so far).",
        }
    if perf["roc_auc"] is None:
        return item | {
            "colour": "grey",
            "headline": "Needs both won and lost leads",
            "detail": f"All {n:,} reported outcomes are the same; accuracy needs some of each.",
        }
    colour = _colour(perf["status"])
    drop = perf["holdout_roc_auc"] - perf["roc_auc"]
    headlines = {
        "green": "Ranking leads as well as when it was tested",
        "amber": "Ranking leads a little worse than when it was tested",
        "red": "Ranking leads clearly worse than when tested: consider retraining",
        "grey": "Cannot judge live accuracy",
    }
    detail = (
        f"Live AUC {perf['roc_auc']:.2f} on {n:,} leads with outcomes ({converted:,} converted) vs "
        f"{perf['holdout_roc_auc']:.2f} when tested ({'down' if drop > 0 else 'up'} {abs(drop):.2f})."
    )
    return item | {"colour": colour, "headline": headlines[colour], "detail": detail}


def health(report: dict[str, Any] | None, error: str | None = None, wording: Wording | None = None) -> dict[str, Any]:
    """The three status lights and one overall verdict: the worst light that could be judged."""
    if report is None:
        unavailable = {"colour": "grey", "headline": "Score log unreachable", "detail": error or "", "value": None}
        items = [
            {"id": "drift", "title": "New leads vs training data", **unavailable},
            {"id": "scores", "title": "Predicted chances", **unavailable},
            {"id": "performance", "title": "Live accuracy", **unavailable},
        ]
    else:
        items = [drift_status(report, wording), score_shift_status(report), performance_status(report)]
    colours = [item["colour"] for item in items]
    overall = max(colours, key=COLOUR_ORDER.__getitem__)
    text = OVERALL_WORDS[overall]
    if overall == "green" and "grey" in colours:
        text += " so far"  # some lights could not be judged yet
    return {"overall": overall, "overall_text": text, "items": items}


def thresholds() -> list[dict[str, str]]:
    """What each colour means, with the numbers, so nobody has to guess why a light is amber."""
    return [
        {
            "title": "New leads vs training data, and predicted chances",
            "text": f"Population stability index (PSI) of each field and of the scores, recent leads against the "
            f"training data: green below {PSI_AMBER:.2f}, amber from {PSI_AMBER:.2f}, red from {PSI_RED:.2f}. "
            f"Judged once {MIN_LEADS_FOR_DRIFT:,} leads have been scored.",
        },
        {
            "title": "Live accuracy",
            "text": f"ROC AUC on leads whose outcomes were reported, against the AUC measured in testing: green "
            f"while it is less than {AUC_DROP_AMBER:.2f} lower, amber from {AUC_DROP_AMBER:.2f} lower, red from "
            f"{AUC_DROP_RED:.2f} lower. Judged once {MIN_OUTCOMES_FOR_PERFORMANCE:,} outcomes have arrived.",
        },
        {"title": "Grey", "text": "Not enough data yet to judge; the numbers say how much more is needed."},
    ]


# ---------------------------------------------------------------- recent leads


def grade_mix(recent: pd.DataFrame, bundle: Bundle, limit: int) -> dict[str, Any]:
    """How the last `limit` scored leads split across grades, next to the split seen in testing."""
    last = recent.head(limit)
    counts = last["grade"].value_counts().to_dict() if len(last) else {}
    expected = {row["grade"]: row.get("share_of_leads") for row in bundle.grades.get("table", [])}
    names = list(bundle.grades.get("names") or expected)
    names += sorted(set(counts) - set(names))  # grades of an earlier model with more grades
    total = len(last)
    return {
        "leads": total,
        "requested": limit,
        "from": _iso(last["scored_at"].min()) if total else None,
        "to": _iso(last["scored_at"].max()) if total else None,
        "grades": [
            {
                "grade": name,
                "count": int(counts.get(name, 0)),
                "share": counts.get(name, 0) / total if total else None,
                "expected_share": expected.get(name),
            }
            for name in names
        ],
    }


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame({"grade": pd.Series(dtype=object), "scored_at": pd.Series(dtype="datetime64[ns, UTC]")})


# ---------------------------------------------------------------- the JSON read


def dashboard_payload(
    model: ServingModel,
    recent: pd.DataFrame | None,
    scored: pd.DataFrame | None,
    window: int,
    limit: int,
    error: str | None = None,
) -> dict[str, Any]:
    """Everything the page shows, in one document; recent and scored are None when the score log is down."""
    bundle = model.bundle
    report = None if recent is None or scored is None else monitoring_report(recent.head(window), scored, bundle)
    return {
        "model": model_summary(model),
        "headline": headline(bundle),
        "grades": grade_rows(bundle),
        "profile": qualification_questions(bundle),
        "charts": charts_for(bundle),
        "health": health(report, error, bundle.wording),
        "grade_mix": grade_mix(_empty_scores() if recent is None else recent, bundle, limit) | {"error": error},
        "thresholds": thresholds(),
    }


@router.get(
    "/v1/dashboard",
    dependencies=[ReaderDep],
    responses={
        200: {"description": "Model, quality in plain words, charts (SVG data URIs), health lights, grade mix."},
        401: {"description": "Missing or invalid API key."},
        503: {"description": "No model is loaded yet."},
    },
)
def dashboard_data(
    request: Request,
    recent_leads: Annotated[int, Query(ge=1, le=MAX_RECENT_LEADS, description="Scored leads in the grade mix.")] = (
        DEFAULT_RECENT_LEADS
    ),
) -> Response:
    """Everything the sales-ops page shows; when the score log is down the model's part still comes back."""
    model = serving_model(request)
    store = request.app.state.store
    window = request.app.state.settings.monitoring_window
    recent = scored = None
    error = None
    try:
        recent = store.recent_scores(max(window, recent_leads))
        scored = store.scored_outcomes()
    except StoreUnavailable as exc:
        error = str(exc)
    payload = dashboard_payload(model, recent, scored, window, recent_leads, error)
    payload["model"] |= champion_fields(request.app.state.settings, model.version, model.source)
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
