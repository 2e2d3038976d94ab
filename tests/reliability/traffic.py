"""Background traffic for fault tests: threads that keep calling a real server and record how each call ended."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

# How a call ended: an HTTP status, or the name of the transport error.
Outcome = int | str
Call = Callable[[httpx.Client, int], httpx.Response]


@dataclass(frozen=True)
class Attempt:
    """One call: when it was sent and answered (monotonic seconds), how it ended, and what it answered."""

    started: float
    ended: float
    outcome: Outcome
    scored: int = 0  # leads scored by a 200 reply


@dataclass
class Traffic:
    """`threads` loops, each calling `call(client, i)` until stopped; a connection error ends a loop."""

    base_url: str
    key: str
    call: Call
    threads: int = 1
    keep_alive: bool = True
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(self.threads)]

    def start(self) -> Traffic:
        for worker in self._workers:
            worker.start()
        return self

    def stop(self, timeout_s: float = 60) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout_s)

    def outcomes(self) -> Counter[Outcome]:
        with self._lock:
            return Counter(attempt.outcome for attempt in self.attempts)

    def scored(self) -> int:
        """Leads scored in replies that said so: what the score log must hold."""
        with self._lock:
            return sum(attempt.scored for attempt in self.attempts)

    def _client(self) -> httpx.Client:
        limits = httpx.Limits(max_keepalive_connections=None if self.keep_alive else 0)
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": self.key}, timeout=60, limits=limits)

    def _loop(self, worker: int) -> None:
        with self._client() as client:
            i = worker * 1_000_000
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    reply = self.call(client, i)
                except httpx.TransportError as exc:
                    self._record(Attempt(started, time.monotonic(), type(exc).__name__))
                    if isinstance(exc, httpx.ConnectError):
                        return  # the server is gone or not accepting: nothing more to learn
                    continue
                self._record(Attempt(started, time.monotonic(), reply.status_code, _scored(reply)))
                i += 1

    def _record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)


def _scored(reply: httpx.Response) -> int:
    """How many leads a 200 from a scoring route scored."""
    if reply.status_code != 200 or "/v1/leads/score" not in reply.request.url.path:
        return 0
    body = reply.json()
    return int(body["scored"]) if "scored" in body else 1
