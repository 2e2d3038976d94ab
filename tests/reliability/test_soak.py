"""Load and soak, fast version: the single-lead maximum, then 30 s at 80% of it (10 minutes in bench/soak.py).

Zero errors, every request of the schedule answered, p99 reported, server memory growth under 5% from a third
of the way in to the end, and every answered score written to the score log (none failed, none dropped).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Trained
from tests.e2e.server import SCORING_KEY, Server
from tests.reliability import load
from tests.reliability.conftest import suite_server
from tests.reliability.figures import report

PACED_SECONDS = 30
MAX_SECONDS = 5
SHARE = 0.8
MAX_RSS_GROWTH = 0.05


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, trained: Trained) -> Iterator[Server]:
    with suite_server(tmp_path_factory, trained, "soak") as server:
        yield server


@pytest.fixture(scope="module")
def soak(server: Server) -> load.SoakReport:
    """Measure the maximum, run paced, and report both."""
    bodies = load.lead_bodies(2_000, seed=7)
    payloads = load.build_requests("127.0.0.1", server.port, "/v1/leads/score", SCORING_KEY, bodies)
    result = load.run_soak(server.pid, "127.0.0.1", server.port, payloads, PACED_SECONDS, SHARE, MAX_SECONDS)
    report(f"Load and soak: single lead, 1 worker, {PACED_SECONDS} s paced", load.HEADER, result.rows())
    report("Soak: server memory and score log", load.MEMORY_HEADER, [result.memory_row()])
    return result


def test_flat_out_every_request_is_answered(soak: load.SoakReport) -> None:
    assert soak.maximum.errors == 0
    assert soak.maximum.rate > 100  # a floor far below any real figure: only a broken run gets here


def test_paced_run_sends_its_whole_schedule_without_an_error(soak: load.SoakReport) -> None:
    paced = soak.paced
    assert paced.sent == round(SHARE * soak.maximum.rate * PACED_SECONDS)
    assert paced.errors == 0, (paced.statuses, paced.failures)
    assert paced.ok == paced.sent and len(paced.latencies_s) == paced.sent


def test_server_memory_does_not_grow(soak: load.SoakReport) -> None:
    assert soak.rss_growth < MAX_RSS_GROWTH, soak.memory_row()


def test_every_answered_score_reaches_the_score_log(soak: load.SoakReport) -> None:
    answered = soak.maximum.requests - soak.maximum.errors + soak.paced.ok
    assert soak.score_log.written == answered
    assert soak.score_log.failed == soak.score_log.dropped == 0


def test_the_server_log_stays_clean(soak: load.SoakReport, server: Server) -> None:
    log = server.log_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
