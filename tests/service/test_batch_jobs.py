"""Where batches are scored: small ones inline on the event loop, large ones on at most `batch_threads` threads."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest
from pydantic import ValidationError
from starlette.datastructures import State

from service.scoring import BatchJob, run_batch
from service.settings import ServiceSettings
from tests.conftest import AppFactory


class Tracker:
    """A batch's work that records which thread ran it and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.threads: set[int] = set()

    def work(self) -> tuple[dict, int]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.get_ident())
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return {"scored": 1}, 0  # the reply, and a score-log ticket with nothing to wait for


def _run_together(jobs: list[BatchJob], threads: int) -> tuple[list[dict], int]:
    async def main() -> tuple[list[dict], int]:
        state = State({"batch_limiter": anyio.CapacityLimiter(threads), "settings": ServiceSettings()})
        replies = await asyncio.gather(*(run_batch(state, job) for job in jobs))
        return list(replies), threading.get_ident()

    return asyncio.run(main())


@pytest.mark.parametrize("threads", [1, 2])
def test_large_batches_run_at_most_batch_threads_at_a_time(threads: int) -> None:
    tracker = Tracker()
    replies, loop_thread = _run_together([BatchJob(tracker.work, small=False) for _ in range(5)], threads)
    assert replies == [{"scored": 1}] * 5
    assert tracker.most_at_once == threads
    assert loop_thread not in tracker.threads


def test_small_batches_are_scored_inline_on_the_event_loop() -> None:
    tracker = Tracker()
    replies, loop_thread = _run_together([BatchJob(tracker.work, small=True) for _ in range(3)], 1)
    assert replies == [{"scored": 1}] * 3
    assert tracker.threads == {loop_thread}


def test_the_service_takes_its_batch_threads_from_settings(make_client: AppFactory) -> None:
    assert make_client(batch_threads=3).app.state.batch_limiter.total_tokens == 3
    with pytest.raises(ValidationError, match="batch_threads"):
        ServiceSettings(batch_threads=0)
