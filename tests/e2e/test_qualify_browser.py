"""The reps' qualification page in a real headless Chromium against a real `leadscore serve`."""

from __future__ import annotations

from pathlib import Path

from tests.browser import headless_chromium
from tests.conftest import REPO, ModelsFolder, Trained
from tests.e2e.conftest import SCORING_KEY, ServerFactory
from tests.e2e.test_dashboard_browser import TIMEOUT_MS, _record_problems

SCREENSHOT = REPO / "test-artifacts" / "qualify.png"


def test_a_rep_answers_three_questions_in_a_real_browser(
    start_server: ServerFactory, models_folder: ModelsFolder, trained: Trained
) -> None:
    server = start_server(models_folder.champion)
    response = server.client().get("/qualify")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    problems: list[str] = []
    requests: list[str] = []
    wording = trained.bundle.wording

    with headless_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        _record_problems(page, problems)
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server.url + "/qualify")
        page.fill("#key-input", SCORING_KEY)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#answers .answer")

        # what the rep knows before asking: where the lead came from
        page.select_option("#known-field", "lead_source")
        page.select_option("#known-value", label=wording.label("lead_source", "referral"))
        page.click("#known-form button[type=submit]")
        page.wait_for_function("document.querySelectorAll('#known li').length === 1")
        page.wait_for_selector("#answers .answer")

        seen = []
        for _ in range(3):
            field = page.get_attribute("#question", "data-field")
            probability = page.inner_text("#probability")
            seen.append((field, probability, page.inner_text("#question")))
            assert page.inner_text("#question") == wording.question(field)
            comparison = page.inner_text("#answers .comparison")
            assert "of best customers" in comparison and "of all leads" in comparison
            page.click("#answers .answer >> nth=-1")  # the last answer offered
            page.wait_for_function(
                "field => document.querySelector('#question').dataset.field !== field "
                "|| !document.querySelector('#no-questions').hidden",
                arg=field,
            )
        final = page.inner_text("#probability")
        asked = [field for field, _, _ in seen]
        assert len(set(asked)) == 3 and "lead_source" not in asked
        assert page.get_attribute("#question", "data-field") not in asked
        assert len({probability for _, probability, _ in seen} | {final}) >= 2  # answers move the probability
        assert page.eval_on_selector_all("#known li", "items => items.length") == 4
        assert page.inner_text("#grade").startswith("Grade ")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    assert problems == []
    assert all(url.startswith(server.url) or url.startswith("data:") for url in requests), requests
    assert Path(SCREENSHOT).stat().st_size > 20_000
