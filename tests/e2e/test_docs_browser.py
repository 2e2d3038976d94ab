"""/docs in a real headless Chromium against a real `leadscore serve`: Swagger UI renders from the service alone."""

from __future__ import annotations

from tests.browser import headless_chromium
from tests.conftest import ModelsFolder
from tests.e2e.conftest import ServerFactory

TIMEOUT_MS = 30_000


def test_the_api_docs_render_with_nothing_fetched_from_elsewhere(
    start_server: ServerFactory, models_folder: ModelsFolder
) -> None:
    server = start_server(models_folder.champion)
    problems: list[str] = []
    requests: list[str] = []
    with headless_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server.url + "/docs")
        page.wait_for_selector(".opblock-summary-path")
        paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
    assert {"/v1/leads/score", "/v1/leads/score/batch"} <= set(paths), paths
    assert problems == []
    assert requests and all(url.startswith(server.url) or url.startswith("data:") for url in requests), requests
