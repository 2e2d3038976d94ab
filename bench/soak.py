"""Load and soak, full version: the single-lead maximum by wrk, then 10 minutes at 80% of it, paced.

The same suite as tests/reliability/test_soak.py (tests/reliability/load.py), sized up: a real `leadscore
serve` (one worker, SQLite score log, open access as in bench/serve.py) on loopback, the maximum measured by
wrk for 10 s after a warm-up, then the paced generator at 80% of it for SOAK_SECONDS (600 by default) while
the server's VmRSS is sampled every second. Prints the tables and exits non-zero if a target is missed: zero
errors, RSS growth under 5% from minute 1 to the end, every answered score written to the score log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, run_wrk, save_results, scratch_dir, train_bundle
from tests.e2e.server import SCORING_KEY, Server
from tests.reliability import load

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SHARE = float(os.environ.get("SOAK_SHARE", "0.8"))
MAX_SECONDS = 10
WARM_UP_SECONDS = 2
CONNECTIONS = 16
MAX_RSS_GROWTH = 0.05


def wrk_maximum(url: str, body: bytes) -> load.Maximum:
    """The single-lead maximum as bench/serve.py measures it: wrk, 16 connections, after a warm-up."""
    run_wrk(url, body, WARM_UP_SECONDS, CONNECTIONS)
    result = run_wrk(url, body, MAX_SECONDS, CONNECTIONS)
    rate, requests = result.requests_per_s, round(result.requests_per_s * MAX_SECONDS)
    return load.Maximum("wrk", MAX_SECONDS, rate, requests, result.errors, result.p50_ms, result.p99_ms)


def failed_targets(result: load.SoakReport) -> list[str]:
    """The soak's targets that this run missed, in words."""
    missed = []
    if result.maximum.errors or result.paced.errors:
        missed.append(f"errors: {result.maximum.errors} flat out, {result.paced.errors} paced")
    if result.rss_growth >= MAX_RSS_GROWTH:
        missed.append(f"RSS grew {result.rss_growth:.1%} (target < {MAX_RSS_GROWTH:.0%})")
    if result.score_log.failed or result.score_log.dropped:
        missed.append(f"score log: {result.score_log.failed} failed, {result.score_log.dropped} dropped")
    return missed


def main() -> int:
    work = scratch_dir("soak")
    bundle_dir = train_bundle(20_000, 0, work)
    # open access, as in bench/serve.py: wrk sends no key (the key check costs microseconds)
    open_access = {"LEADSCORE_API_KEYS": "", "LEADSCORE_ADMIN_KEYS": ""}
    server = Server(bundle_dir, f"sqlite:///{work / 'scores.db'}", work / "server.log", env=open_access)
    server.start()
    try:
        bodies = load.lead_bodies(2_000, seed=7)
        payloads = load.build_requests("127.0.0.1", server.port, "/v1/leads/score", SCORING_KEY, bodies)
        result = load.run_soak(
            server.pid,
            "127.0.0.1",
            server.port,
            payloads,
            SECONDS,
            SHARE,
            measure_maximum=lambda: wrk_maximum(f"{server.url}/v1/leads/score", bodies[0]),
        )
    finally:
        server.stop()
    print_table(f"Load and soak: single lead, 1 worker, {SECONDS:.0f} s paced", load.HEADER, result.rows())
    print_table("Soak: server memory and score log", load.MEMORY_HEADER, [result.memory_row()])
    save_results("soak", {"rows": result.rows(), "memory": result.memory_row(), "log": server.log_text()[-2000:]})
    missed = failed_targets(result)
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
