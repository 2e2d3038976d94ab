"""The sales-ops page and its JSON read, in-process over a real bundle and a real SQLite score log."""

from __future__ import annotations

import base64
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.charts import importance_chart
from service.dashboard import health
from service.monitoring import MIN_LEADS_FOR_DRIFT, MIN_OUTCOMES_FOR_PERFORMANCE, score_shift
from service.store import StoreUnavailable
from tests.conftest import ADMIN_KEY, SAMPLE_SPEC, SCORING_KEY, AppFactory, ModelsFolder, Trained
from training.synthetic import generate_leads
from training.wording import capitalised

NO_KEY = {"X-API-Key": ""}
SVG_PREFIX = "data:image/svg+xml;base64,"


def _leads(n: int, seed: int, **fixed: object) -> list[dict[str, Any]]:
    frame = generate_leads(n=n, seed=seed).drop(
        columns=["converted", "deal_value", "account_manager_assigned", "created_at"]
    )
    for name, value in fixed.items():
        frame[name] = value
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _score(client: TestClient, leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reply = client.post("/v1/leads/score/batch", json={"leads": leads})
    assert reply.status_code == 200, reply.text
    client.app.state.store.flush()
    return reply.json()["results"]


def _dashboard(client: TestClient, **params: object) -> dict[str, Any]:
    reply = client.get("/v1/dashboard", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _lights(data: dict[str, Any]) -> dict[str, str]:
    return {item["id"]: item["colour"] for item in data["health"]["items"]}


# ---------------------------------------------------------------- the page


def test_page_is_served_without_a_key_and_loads_only_its_own_files(client: TestClient) -> None:
    for path in ("/", "/dashboard"):
        reply = client.get(path, headers=NO_KEY)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["content-security-policy"]
    html = client.get("/dashboard").text
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references and all(not ref.startswith(("http", "//")) for ref in references)
    for ref in references:
        if not ref.startswith("data:"):
            assert client.get(f"/{ref}", headers=NO_KEY).status_code == 200, ref


def test_page_assets_have_their_types_and_nothing_else_is_served(client: TestClient) -> None:
    script = client.get("/dashboard/assets/dashboard.js", headers=NO_KEY)
    assert script.headers["content-type"].startswith("text/javascript")
    assert client.get("/dashboard/assets/dashboard.css").headers["content-type"].startswith("text/css")
    assert client.get("/dashboard/assets/dashboard.html").status_code == 404
    assert client.get("/dashboard/assets/..%2Fdashboard.py").status_code == 404
    # data reaches the page as text only: markup from the server could never run
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text


# ---------------------------------------------------------------- auth


def test_data_needs_a_reader_key_and_the_page_knows_it(client: TestClient) -> None:
    assert client.get("/v1/dashboard/access", headers=NO_KEY).json() == {"key_required": True}
    assert client.get("/v1/dashboard", headers=NO_KEY).status_code == 401
    assert client.get("/v1/dashboard", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/v1/dashboard", headers={"X-API-Key": SCORING_KEY}).status_code == 200
    assert client.get("/v1/dashboard", headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_open_access_needs_no_key(make_client: AppFactory) -> None:
    client = make_client(api_keys=[], admin_keys=[])
    assert client.get("/v1/dashboard/access", headers=NO_KEY).json() == {"key_required": False}
    assert client.get("/v1/dashboard", headers=NO_KEY).status_code == 200


# ---------------------------------------------------------------- the model, in plain words


def test_describes_the_champion_from_its_bundle(client: TestClient, trained: Trained) -> None:
    bundle = trained.bundle
    data = _dashboard(client)
    assert data["model"]["version"] == bundle.version
    assert data["model"]["created_at"] == bundle.created_at
    headline = data["headline"]
    assert headline["roc_auc"] == pytest.approx(bundle.metrics["roc_auc"])
    top = bundle.metrics["lift_by_decile"][0]
    assert f"convert at {top['rate']:.1%} vs {bundle.metrics['base_rate']:.1%} overall" in headline["top_sentence"]
    assert [card["id"] for card in headline["cards"]] == ["auc", "top-decile", "gain", "calibration"]


def test_the_ranking_card_says_how_sure_it_is_and_what_a_baseline_reaches(client: TestClient, trained: Trained) -> None:
    metrics = trained.bundle.metrics
    cv_auc = metrics["cv"]["metrics"]["roc_auc"]
    headline = _dashboard(client)["headline"]
    note = headline["cards"][0]["note"]
    assert f"{cv_auc['mean']:.2f} ± {cv_auc['sd']:.2f}" in note
    assert f"simple logistic regression reaches {metrics['baselines']['logistic_regression']['roc_auc']:.2f}" in note
    assert headline["model_family"] == metrics["model_family"]
    assert headline["cross_validation"]["log_loss"]["sd"] > 0


def test_grades_carry_their_thresholds_and_expected_conversion(client: TestClient, trained: Trained) -> None:
    table = trained.bundle.grades["table"]
    grades = _dashboard(client)["grades"]
    assert [row["grade"] for row in grades] == [row["grade"] for row in table]
    for shown, stored in zip(grades, table, strict=True):
        assert shown["min_probability"] == pytest.approx(stored["min_probability"])
        assert shown["expected_conversion"] == pytest.approx(stored["expected_conversion"])
    first, last = table[0], table[-1]
    assert grades[0]["chance_range"] == f"{first['min_probability']:.1%} or more"
    assert grades[-1]["chance_range"] == f"below {table[-2]['min_probability']:.1%}"
    assert last["min_probability"] == 0.0


def test_best_customer_questions_keep_the_profile_order(client: TestClient, trained: Trained) -> None:
    traits = trained.bundle.profile["traits"]
    questions = _dashboard(client)["profile"]["questions"]
    assert [q["question"] for q in questions] == [t["question"] for t in traits]
    assert [q["evidence"] for q in questions] == [t["evidence"] for t in traits]
    top = questions[0]
    assert top["rank"] == 1 and top["question"] == "Do you own your home?"
    assert top["lift"] == pytest.approx(traits[0]["lift"]) and top["lift"] > 1


def test_the_cli_the_page_and_the_api_word_the_profile_alike(
    client: TestClient, trained: Trained, sample_csv: Path
) -> None:
    """`leadscore profile`, the sales-ops page's data and /v1/model/profile: one question, one answer line."""
    printed = trained.env.cli("profile", "--data", str(sample_csv), "--spec", str(SAMPLE_SPEC), "--top", "15")
    assert printed.exit_code == 0, printed.output
    api = client.get("/v1/model/profile").json()["traits"]
    page = _dashboard(client)["profile"]["questions"]
    budget = next(t for t in api if t["field"] == "stated_budget")
    shown = next(q for q in page if q["field"] == "stated_budget")
    assert (shown["question"], shown["evidence"]) == (budget["question"], budget["evidence"])
    assert budget["question"] == "What budget do you have in mind?"
    assert re.fullmatch(r"\$\d{1,3}(,\d{3})* or more: \d+% of best customers, \d+% of all leads", budget["evidence"])
    assert f"{budget['question']} {budget['evidence']} (" in printed.stdout
    wording = client.get("/v1/model").json()["wording"]["stated_budget"]
    assert (wording["question"], wording["unit"], wording["askable"]) == (budget["question"], "money", True)
    for trait in api:
        assert f"{trait['question']} {trait['evidence']} (" in printed.stdout


def test_the_importance_chart_names_fields_as_the_spec_words_them(trained: Trained) -> None:
    bundle = trained.bundle
    figure = importance_chart(bundle.importance, bundle.wording)
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert "Home owner" in labels and "Owns home" not in labels  # the sample spec names owns_home "home owner"
    assert labels[-1] == capitalised(bundle.wording.field_name(bundle.importance[0]["field"]))  # largest on top


def test_charts_are_svg_images_drawn_once_per_model_version(client: TestClient, models_folder: ModelsFolder) -> None:
    charts = _dashboard(client)["charts"]
    assert [chart["id"] for chart in charts] == ["gain", "lift", "calibration", "importance"]
    for chart in charts:
        assert chart["image"].startswith(SVG_PREFIX)
        svg = base64.b64decode(chart["image"].removeprefix(SVG_PREFIX))
        assert b"<svg" in svg and b"<script" not in svg
        assert chart["title"] and chart["caption"]
    assert _dashboard(client)["charts"] == charts  # the same model draws the same charts
    models_folder.point_champion_at(models_folder.second)
    reloaded = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert reloaded.json()["reloaded"] is True
    after = _dashboard(client)
    assert after["model"]["version"] == models_folder.second
    assert [c["image"] for c in after["charts"]] != [c["image"] for c in charts]


# ---------------------------------------------------------------- recent leads and health


def test_grade_mix_counts_only_the_last_scored_leads(client: TestClient, trained: Trained) -> None:
    _score(client, _leads(15, seed=3))
    newest = _score(client, _leads(20, seed=4))
    mix = _dashboard(client, recent_leads=20)["grade_mix"]
    assert mix["leads"] == 20 and mix["error"] is None
    expected = Counter(result["grade"] for result in newest)
    assert {row["grade"]: row["count"] for row in mix["grades"] if row["count"]} == dict(expected)
    shares = {row["grade"]: row["expected_share"] for row in mix["grades"]}
    assert shares == {row["grade"]: row["share_of_leads"] for row in trained.bundle.grades["table"]}
    assert _dashboard(client)["grade_mix"]["leads"] == 35


def test_recent_leads_is_bounded(client: TestClient) -> None:
    assert client.get("/v1/dashboard", params={"recent_leads": 0}).status_code == 422


def test_lights_are_grey_until_there_is_enough_to_judge(client: TestClient) -> None:
    _score(client, _leads(12, seed=5))
    data = _dashboard(client)
    assert _lights(data) == {"drift": "grey", "scores": "grey", "performance": "grey"}
    assert data["health"]["overall"] == "grey"
    items = {item["id"]: item for item in data["health"]["items"]}
    assert f"12 of the {MIN_LEADS_FOR_DRIFT:,}" in items["drift"]["detail"]
    assert f"0 of the {MIN_OUTCOMES_FOR_PERFORMANCE:,}" in items["performance"]["detail"]


def _report_outcomes(client: TestClient, results: list[dict[str, Any]], converted: list[bool]) -> None:
    for result, outcome in zip(results, converted, strict=True):
        reply = client.post(f"/v1/leads/{result['lead_id']}/outcome", json={"converted": outcome})
        assert reply.status_code == 200


def test_lights_are_green_when_leads_look_like_training_and_outcomes_follow_the_scores(client: TestClient) -> None:
    results = _score(client, _leads(1_000, seed=6))
    ranked = sorted(results, key=lambda r: r["probability"], reverse=True)[:120]
    outcomes_for = ranked + sorted(results, key=lambda r: r["probability"])[:120]
    _report_outcomes(client, outcomes_for, [True] * 120 + [False] * 120)
    data = _dashboard(client)
    assert _lights(data) == {"drift": "green", "scores": "green", "performance": "green"}
    assert data["health"]["overall"] == "green" and data["health"]["overall_text"] == "All clear"


def test_lights_turn_red_when_leads_change_and_outcomes_contradict_the_scores(
    make_client: AppFactory, tmp_path: Path, trained: Trained
) -> None:
    client = make_client(database_url=f"sqlite:///{tmp_path / 'shifted.db'}")
    shifted = _leads(300, seed=7, owns_home=True, lead_source="referral", contact_role="decision_maker")
    results = _score(client, shifted)
    order = sorted(results, key=lambda r: r["probability"])
    _report_outcomes(client, order[:60] + order[-60:], [True] * 60 + [False] * 60)
    data = _dashboard(client)
    assert _lights(data) == {"drift": "red", "scores": "red", "performance": "red"}
    assert data["health"]["overall"] == "red"
    items = {item["id"]: item for item in data["health"]["items"]}
    wording = trained.bundle.wording
    spec_names = [capitalised(wording.field_name(name)) for name in ("owns_home", "lead_source", "contact_role")]
    assert any(f"Biggest change: {name} (PSI" in items["drift"]["detail"] for name in spec_names)
    assert "Live AUC 0.00" in items["performance"]["detail"]


def test_the_model_still_shows_when_the_score_log_is_down(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*_: object) -> None:
        raise StoreUnavailable("cannot read recent scores: the database is unavailable")

    monkeypatch.setattr(client.app.state.store, "recent_scores", unavailable)
    data = _dashboard(client)
    assert set(_lights(data).values()) == {"grey"}
    assert data["health"]["items"][0]["headline"] == "Score log unreachable"
    assert "unavailable" in data["grade_mix"]["error"]
    assert len(data["charts"]) == 4 and data["model"]["version"]


# ---------------------------------------------------------------- the lights' rules, case by case


def _report(
    scored: int = 1_000,
    drift: str = "green",
    shift_psi: float = 0.01,
    shift: str = "green",
    outcomes: int = 500,
    converted: int = 50,
    live_auc: float | None = 0.8,
    performance: str = "green",
) -> dict[str, Any]:
    """The shape of monitoring_report, with the numbers a case needs."""
    return {
        "window": {"scored_leads": scored, "enough_for_drift": scored >= MIN_LEADS_FOR_DRIFT},
        "drift": {"status": drift, "max_psi": 0.12, "fields": {"owns_home": {"psi": 0.12}, "region": {"psi": 0.02}}},
        "score_shift": {"psi": shift_psi, "status": shift, "live_mean": 0.13, "holdout_mean": 0.12},
        "performance": {
            "leads_with_outcomes": outcomes,
            "converted": converted,
            "roc_auc": live_auc,
            "holdout_roc_auc": 0.82,
            "status": performance,
        },
    }


def test_amber_is_passed_through_and_names_the_field_that_moved() -> None:
    lights = health(_report(drift="amber", performance="amber", live_auc=0.77))
    items = {item["id"]: item for item in lights["items"]}
    assert items["drift"]["colour"] == "amber" and "Owns home (PSI 0.12)" in items["drift"]["detail"]
    assert items["performance"]["colour"] == "amber" and "down 0.05" in items["performance"]["detail"]
    assert lights["overall"] == "amber" and lights["overall_text"] == "Worth a look"


def test_a_few_leads_never_raise_an_alarm_on_score_shift(trained: Trained) -> None:
    few = pd.DataFrame({"probability": [0.99] * (MIN_LEADS_FOR_DRIFT - 1)})
    assert score_shift(few, trained.bundle)["status"] == "unknown"
    assert score_shift(pd.concat([few, few.head(1)]), trained.bundle)["status"] == "red"
    lights = health(_report(scored=MIN_LEADS_FOR_DRIFT - 1, drift="unknown", shift_psi=2.0, shift="unknown"))
    items = {item["id"]: item for item in lights["items"]}
    assert items["scores"]["colour"] == "grey" and items["drift"]["colour"] == "grey"
    assert lights["overall"] == "green" and lights["overall_text"] == "All clear so far"


def test_one_sided_outcomes_cannot_be_judged() -> None:
    lights = health(_report(converted=0, live_auc=None, performance="unknown"))
    item = {item["id"]: item for item in lights["items"]}["performance"]
    assert item["colour"] == "grey" and item["headline"] == "Needs both won and lost leads"
