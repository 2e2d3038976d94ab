"""A small paced HTTP load generator and the soak suite built on it.

Debian's wrk has no rate control (and wrk2 and vegeta are not packaged), so this drives the service itself:
raw HTTP/1.1 keep-alive connections on loopback, pre-built request bytes, and an open-loop schedule. Request
i is due at start + i/rate whatever happened before it, and its latency is measured from that due time, so a
stalled server shows up as latency instead of silently lowering the rate (no coordinated omission).

The soak first measures the single-lead maximum (the same generator flat out, or wrk in `bench/soak.py`), then
runs at a share of it for a bounded time while sampling the server's resident memory from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson

RESPONSE_TIMEOUT_S = 10.0
TICK_S = 0.001


@dataclass
class LoadResult:
    """What one load run saw: requests sent and answered, latencies, and every kind of error counted."""

    target_rate: float | None  # None: as fast as the connections allow
    seconds: float = 0.0
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # transport problems, by exception name
    latencies_s: list[float] = field(default_factory=list)  # from the due time (paced) or the send (flat out)
    service_s: list[float] = field(default_factory=list)  # from the send: the server's own time, queueing excluded

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def errors(self) -> int:
        """Non-2xx answers plus requests that got no answer."""
        return self.sent - self.ok

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """Latency percentile in ms, from the schedule: what a caller sending at this rate would see."""
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else float("nan")

    def service_percentile_ms(self, q: float) -> float:
        """Latency percentile in ms, from the send: the server's answer time once a connection was free."""
        return float(np.percentile(self.service_s, q) * 1000) if self.service_s else float("nan")


def build_requests(host: str, port: int, path: str, key: str, bodies: Sequence[bytes]) -> list[bytes]:
    """The exact bytes of each request: one POST per body, keep-alive, JSON."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
    return [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]


def lead_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Distinct generated leads as a CRM would send them: model fields, id, time and personal fields."""
    from training.synthetic import generate_leads

    frame = generate_leads(n=n, seed=seed).drop(columns=["converted", "deal_value", "account_manager_assigned"])
    frame["created_at"] = frame["created_at"].astype(str)
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def lead_bodies(n: int, seed: int) -> list[bytes]:
    """The same leads as JSON bodies."""
    return [orjson.dumps(lead) for lead in lead_records(n, seed)]


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response off a keep-alive connection; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")), None)
    if length is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(length)
    return status


class _Connection:
    """One keep-alive connection, reopened after any failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, payload: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(payload)
        return await asyncio.wait_for(_read_response(self.reader), RESPONSE_TIMEOUT_S)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


Tickets = asyncio.Queue[tuple[int, float | None] | None]  # (request index, due time or None: send now)


async def _worker(host: str, port: int, payloads: Sequence[bytes], tickets: Tickets, result: LoadResult) -> None:
    """Take due tickets and send them one at a time on this connection, recording the outcome of each."""
    connection = _Connection(host, port)
    try:
        while (ticket := await tickets.get()) is not None:
            index, due = ticket
            sent = time.perf_counter()
            result.sent += 1
            try:
                status = await connection.request(payloads[index % len(payloads)])
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
                result.failures[type(exc).__name__] += 1
                connection.close()
                continue
            result.statuses[status] += 1
            answered = time.perf_counter()
            result.latencies_s.append(answered - (sent if due is None else due))
            result.service_s.append(answered - sent)
    finally:
        connection.close()


async def _paced_tickets(tickets: Tickets, rate: float, total: int, start: float, workers: int) -> None:
    """Release request i at start + i/rate; the loop's timer is only ~1 ms precise, so release in small bursts."""
    issued = 0
    while issued < total:
        due_now = min(total, int((time.perf_counter() - start) * rate) + 1)
        for index in range(issued, due_now):
            tickets.put_nowait((index, start + index / rate))
        issued = max(issued, due_now)
        await asyncio.sleep(TICK_S)
    for _ in range(workers):
        tickets.put_nowait(None)


async def _flat_out_tickets(tickets: Tickets, duration_s: float, workers: int) -> None:
    """Keep every connection busy until the time is up; latency is then measured from each send."""
    end = time.perf_counter() + duration_s
    index = 0
    while time.perf_counter() < end:
        while tickets.qsize() < workers:
            tickets.put_nowait((index, None))
            index += 1
        await asyncio.sleep(TICK_S)
    for _ in range(workers):
        tickets.put_nowait(None)


async def _drive(
    host: str, port: int, payloads: Sequence[bytes], rate: float | None, duration_s: float, connections: int
) -> LoadResult:
    result = LoadResult(target_rate=rate)
    tickets: Tickets = asyncio.Queue()
    start = time.perf_counter()
    workers = [asyncio.create_task(_worker(host, port, payloads, tickets, result)) for _ in range(connections)]
    if rate is None:
        await _flat_out_tickets(tickets, duration_s, connections)
    else:
        await _paced_tickets(tickets, rate, max(1, round(rate * duration_s)), start, connections)
    await asyncio.gather(*workers)
    result.seconds = time.perf_counter() - start
    return result


def run_load(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    duration_s: float,
    rate: float | None = None,
    connections: int = 32,
) -> LoadResult:
    """Send `rate` requests per second for `duration_s` (or as many as possible), then wait for the last answers."""
    with _event_loop() as runner:
        return runner.run(_drive(host, port, payloads, rate, duration_s, connections))


@contextlib.contextmanager
def _event_loop() -> Iterator[asyncio.Runner]:
    """uvloop when installed (it comes with uvicorn[standard]): the generator must stay cheaper than the server."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner


@dataclass
class RssSampler:
    """Resident memory of one process, sampled in a background thread while a load runs."""

    pid: int
    interval_s: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, KiB)

    def read_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for process {self.pid}")

    def run(self, stop: threading.Event) -> None:
        """Sample until `stop` is set (the target of a thread)."""
        start = time.monotonic()
        while not stop.is_set():
            self.samples.append((time.monotonic() - start, self.read_kib()))
            stop.wait(self.interval_s)

    def at(self, seconds: float) -> int:
        """The first sample taken at or after `seconds`."""
        return next((kib for t, kib in self.samples if t >= seconds), self.samples[-1][1])

    def last(self) -> int:
        return self.samples[-1][1]


@dataclass(frozen=True)
class Maximum:
    """The single-lead maximum, measured flat out (by this generator, or by wrk in bench/soak.py)."""

    tool: str
    seconds: float
    rate: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def from_load(cls, result: LoadResult) -> Maximum:
        return cls(
            "generator",
            result.seconds,
            result.rate,
            result.sent,
            result.errors,
            result.percentile_ms(50),
            result.percentile_ms(99),
        )


@dataclass(frozen=True)
class ScoreLogStats:
    """The score log's counters from /metrics once its queue has drained."""

    written: int
    failed: int
    dropped: int
    retries: int


@dataclass(frozen=True)
class SoakReport:
    """The soak's figures: the measured maximum, the paced run, the server's memory over it, and the score log."""

    maximum: Maximum
    paced: LoadResult
    share: float
    rss_baseline_kib: int
    rss_end_kib: int
    rss_peak_kib: int
    baseline_at_s: float
    score_log: ScoreLogStats

    @property
    def rss_growth(self) -> float:
        return self.rss_end_kib / self.rss_baseline_kib - 1

    def rows(self) -> list[list[str]]:
        """The table printed by the soak test and by bench/soak.py."""
        top = self.maximum
        paced = self.paced
        return [
            [
                f"maximum, flat out ({top.tool})",
                f"{top.seconds:.0f}",
                "-",
                f"{top.rate:,.0f}",
                f"{top.requests:,}",
                f"{top.errors:,}",
                f"{top.p50_ms:.2f}",
                f"{top.p99_ms:.2f}",
                "-",
                f"{top.p99_ms:.2f}",
            ],
            [
                f"{self.share:.0%} of maximum, paced",
                f"{paced.seconds:.0f}",
                f"{paced.target_rate or 0:,.0f}",
                f"{paced.rate:,.0f}",
                f"{paced.sent:,}",
                f"{paced.errors:,}",
                f"{paced.percentile_ms(50):.2f}",
                f"{paced.percentile_ms(99):.2f}",
                f"{paced.percentile_ms(99.9):.2f}",
                f"{paced.service_percentile_ms(99):.2f}",
            ],
        ]

    def memory_row(self) -> list[str]:
        """Server memory and the score log's accounting over the paced run."""
        mib = 1024
        return [
            f"{self.baseline_at_s:.0f}",
            f"{self.rss_baseline_kib / mib:.1f}",
            f"{self.rss_end_kib / mib:.1f}",
            f"{self.rss_peak_kib / mib:.1f}",
            f"{self.rss_growth:+.2%}",
            f"{self.score_log.written:,}",
            f"{self.score_log.failed:,}",
            f"{self.score_log.dropped:,}",
        ]


HEADER = [
    "run",
    "seconds",
    "target req/s",
    "req/s",
    "requests",
    "errors",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "p99 service ms",
]
MEMORY_HEADER = [
    "RSS baseline at s",
    "RSS baseline MiB",
    "RSS end MiB",
    "RSS peak MiB",
    "RSS growth",
    "scores logged",
    "log failed",
    "log dropped",
]
MaximumProbe = Callable[[], Maximum]


def metric(base_url: str, name: str) -> float:
    """One unlabelled sample from /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)}\s+(\S+)$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/metrics has no {name}")
    return float(match.group(1))


def score_log_stats(base_url: str) -> ScoreLogStats:
    """The score log's counters as /metrics exposes them."""
    values = [metric(base_url, f"leadscore_score_log_{name}") for name in ("written", "failed", "dropped", "retries")]
    return ScoreLogStats(*(int(value) for value in values))


def wait_for_score_log(base_url: str, timeout_s: float = 60) -> None:
    """Let the score log catch up (after a burst, or before its counters are read)."""
    deadline = time.monotonic() + timeout_s
    while metric(base_url, "leadscore_score_log_queue_depth") > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the score log still had scores queued after {timeout_s:g} s")
        time.sleep(0.2)


def run_soak(
    pid: int,
    host: str,
    port: int,
    payloads: Sequence[bytes],
    duration_s: float,
    share: float = 0.8,
    max_seconds: float = 5.0,
    measure_maximum: MaximumProbe | None = None,
) -> SoakReport:
    """Measure the maximum, then run at `share` of it for `duration_s` while sampling the server's memory.

    Memory growth is taken from minute 1 of the paced run to its end (a third of the way in for runs shorter
    than three minutes): the first minute fills caches, pools and the allocator's arenas.
    """
    base_url = f"http://{host}:{port}"
    probe = measure_maximum or (lambda: Maximum.from_load(run_load(host, port, payloads, max_seconds, connections=16)))
    maximum = probe()
    wait_for_score_log(base_url)  # the paced run must not pay for the burst's writes
    sampler = RssSampler(pid)
    stop = threading.Event()
    thread = threading.Thread(target=sampler.run, args=(stop,), name="rss-sampler", daemon=True)
    thread.start()
    try:
        paced = run_load(host, port, payloads, duration_s, rate=share * maximum.rate, connections=32)
    finally:
        stop.set()
        thread.join()
    wait_for_score_log(base_url)
    baseline_at = min(60.0, duration_s / 3)
    return SoakReport(
        maximum=maximum,
        paced=paced,
        share=share,
        rss_baseline_kib=sampler.at(baseline_at),
        rss_end_kib=sampler.last(),
        rss_peak_kib=max(kib for _, kib in sampler.samples),
        baseline_at_s=baseline_at,
        score_log=score_log_stats(base_url),
    )
