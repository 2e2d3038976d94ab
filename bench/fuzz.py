"""Fuzzing, full version: thousands of seeded schemathesis requests against a real server, every operation.

The same suite as tests/reliability/test_fuzz.py (tests/reliability/fuzzing.py), sized up: a real `leadscore
serve` on loopback with scoring and admin keys, FUZZ_EXAMPLES cases per operation and mode (valid and
invalid), FUZZ_SEED for the generator. Prints the summary, the per-operation table and one line per kind of
failed check with a curl command that reproduces it; exits non-zero on a 5xx or fewer than 2,000 requests.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_results, scratch_dir, train_bundle
from tests.e2e.server import ADMIN_KEY, SCORING_KEY, Server
from tests.reliability import fuzzing

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "110"))
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))
MIN_REQUESTS = 2_000


def distinct_failures(report: fuzzing.FuzzReport) -> list[list[str]]:
    """One row per operation and kind of failure: how often, and the first request that showed it."""
    groups: dict[tuple[str, str, int, str], list[fuzzing.Finding]] = defaultdict(list)
    for finding in report.findings:
        groups[(finding.operation, finding.mode, finding.status, ", ".join(sorted(finding.kinds)))].append(finding)
    return [
        [operation, mode, str(status), kinds, str(len(found)), found[0].curl[:300]]
        for (operation, mode, status, kinds), found in sorted(groups.items())
    ]


def main() -> int:
    work = scratch_dir("fuzz")
    bundle_dir = train_bundle(20_000, 0, work)
    server = Server(bundle_dir, f"sqlite:///{work / 'scores.db'}", work / "server.log")
    server.start()
    try:
        report = fuzzing.run_fuzz(server.url, SCORING_KEY, ADMIN_KEY, EXAMPLES, seed=SEED)
        tracebacks = server.log_text().count("Traceback")
    finally:
        server.stop()
    print_table(
        f"Fuzzing, seed {SEED}, {EXAMPLES} cases per operation and mode", fuzzing.SUMMARY_HEADER, [report.summary()]
    )
    print_table("Fuzzing by operation", fuzzing.HEADER, report.rows())
    failures = distinct_failures(report)
    if failures:
        print_table(
            "Failed checks",
            ["operation", "mode", "status", "failure", "requests", "first reproduction"],
            failures,
        )
    save_results("fuzz", {"summary": report.summary(), "operations": report.rows(), "failures": failures})
    if report.server_errors or tracebacks or report.requests < MIN_REQUESTS:
        print(f"target missed: {report.server_errors} 5xx, {tracebacks} tracebacks, {report.requests} requests")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
