"""The sales-ops page in a real headless Chromium against a real `leadscore serve`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.browser import headless_chromium
from tests.conftest import REPO, ModelsFolder, Trained
from tests.e2e.conftest import SCORING_KEY, Server, ServerFactory
from training.synthetic import generate_leads

SCREENSHOT = REPO / "test-artifacts" / "dashboard.png"
LEADS = 250  # enough for the drift lights to be judged (200), and outcomes for live accuracy (50)
TIMEOUT_MS = 30_000


def _score_leads(server: Server, n: int) -> None:
    """Score leads, report what became of them, and wait until the score log holds them all."""
    frame = generate_leads(n=n, seed=21)
    outcomes = frame["converted"].astype(bool).tolist()
    frame = frame.drop(columns=["converted", "deal_value", "account_manager_assigned", "created_at"])
    leads = frame.astype(object).where(frame.notna(), None).to_dict("records")
    with server.client() as client:
        assert client.post("/v1/leads/score/batch", json={"leads": leads}).json()["scored"] == n
        for lead, converted in zip(leads, outcomes, strict=True):
            client.post(f"/v1/leads/{lead['lead_id']}/outcome", json={"converted": converted}).raise_for_status()
        deadline = time.monotonic() + 10
        while client.get("/v1/dashboard").json()["grade_mix"]["leads"] < n:
            assert time.monotonic() < deadline, "scores did not reach the score log"
            time.sleep(0.1)


def _record_problems(page: Any, problems: list[str]) -> None:
    """Collect what a person would see as breakage: console errors and uncaught exceptions."""

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))


def _rendered_charts(page: Any) -> list[dict[str, float]]:
    """Size of each chart image the browser actually decoded."""
    return page.eval_on_selector_all(
        "#charts figure img",
        """images => images.map(img => {
            const box = img.getBoundingClientRect();
            return {natural: img.naturalWidth, width: box.width, height: box.height, done: img.complete};
        })""",
    )


def test_sales_ops_page_in_a_real_browser(
    start_server: ServerFactory, models_folder: ModelsFolder, trained: Trained
) -> None:
    server = start_server(models_folder.champion)
    _score_leads(server, LEADS)
    with server.client() as client:
        top = client.get("/v1/model/profile").json()["traits"][0]
    problems: list[str] = []
    requests: list[str] = []

    with headless_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        _record_problems(page, problems)
        page.on("request", lambda request: requests.append(request.url))

        page.goto(server.url + "/")
        page.wait_for_selector("#key-input", state="visible")
        assert page.is_hidden("#content")
        page.fill("#key-input", SCORING_KEY)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#charts figure img")
        page.wait_for_function("[...document.querySelectorAll('#charts img')].every(img => img.complete)")

        assert trained.bundle.version in page.inner_text("#model-line")
        assert page.is_hidden("#champion-notice")
        first = page.inner_text("#questions li:first-child")
        assert top["question"] in first and top["evidence"] in first  # the API's words, as the page shows them
        charts = _rendered_charts(page)
        assert len(charts) >= 3
        assert all(c["done"] and c["natural"] > 0 and c["width"] > 200 and c["height"] > 100 for c in charts), charts
        badges = page.eval_on_selector_all(
            "#health [data-status]",
            "els => els.map(e => [e.dataset.status, e.querySelector('.status-badge').className])",
        )
        assert [status for status, _ in badges] == ["drift", "scores", "performance"]
        judged = ("green", "amber", "red")  # enough leads and outcomes were sent for every light to be judged
        assert all(any(colour in badge for colour in judged) for _, badge in badges), badges
        assert page.is_visible("#overall")
        counts = page.eval_on_selector_all("#grade-mix .mix-row", "rows => rows.length")
        assert counts == len(trained.bundle.grades["names"])
        assert f"The last {LEADS} leads" in page.inner_text("#mix-summary")
        assert len(page.query_selector_all("#grades tr")) == len(trained.bundle.grades["table"])

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        page.reload()  # the key is asked for once per tab, not on every visit
        page.wait_for_selector("#charts figure img")
        assert page.is_hidden("#key-panel")

        assert problems == []
        assert all(url.startswith(server.url) or url.startswith("data:") for url in requests), requests

        page.click("#forget-key")
        page.fill("#key-input", "not-the-key")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#key-error", state="visible")
        assert "not accepted" in page.inner_text("#key-error")
        assert page.is_hidden("#content")
    assert Path(SCREENSHOT).stat().st_size > 50_000


def test_the_page_says_when_the_champion_is_not_serving_yet(
    start_server: ServerFactory, models_folder: ModelsFolder
) -> None:
    server = start_server(models_folder.champion, env={"LEADSCORE_RELOAD_INTERVAL_S": "0"})
    models_folder.point_champion_at(models_folder.second)
    with headless_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url + "/")
        page.fill("#key-input", SCORING_KEY)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#champion-notice", state="visible")
        notice = page.inner_text("#champion-notice")
    assert f"serving {models_folder.first}, champion {models_folder.second}" in notice
    assert "restart" in notice
