"""Poison beside load: does a stream of unstorable leads slow the score log, or lose scores?

A real `leadscore serve` (one worker, SQLite) takes 1,000-lead batches on two connections for POISON_SECONDS
(default 30); then the same load for as long again beside 20 requests a second of the same shape with valid
leads (the baseline: extra traffic costs the 2 cores something whatever it holds); then beside 20 poison
requests a second: leads with an integer beyond 64 bits or a NUL character, alone and as a bad row in a 51-lead
batch. Prints the score log's write rate per phase with its ratio to the valid-traffic phase, how the poison
was answered, and, after a graceful stop, answered against stored scores, rejected scores and dead letters.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_results, scratch_dir, train_bundle
from tests.e2e.server import SCORING_KEY, Server
from tests.reliability.load import lead_records

SECONDS = int(os.environ.get("POISON_SECONDS", "30"))
LOAD_CONNECTIONS = 2
POISON_PER_S = 20
POISON = [{"lead_id": "P", "region": 2**64}, {"lead_id": "a\x00b"}, {"lead_id": "P", "region": 2**63}]
VALID = [{"lead_id": "V", "region": "north"}, {"lead_id": "a-b"}, {"lead_id": "V", "region": 7}]


class Traffic:
    """Batch load on a few connections and, when asked, poison at a fixed rate; counts every answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.leads = lead_records(1_000, 1)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered = 0
        self.statuses: Counter[tuple[str, int]] = Counter()

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": SCORING_KEY}, timeout=60)

    def _count(self, reply: httpx.Response) -> None:
        """Scores acknowledged by a reply: a batch's count, or one for a single lead."""
        if reply.status_code == 200:
            with self.lock:
                self.answered += reply.json().get("scored", 1)

    def load(self) -> None:
        with self._client() as client:
            while not self.stop.is_set():
                self._count(client.post("/v1/leads/score/batch?reasons=false", json={"leads": self.leads}))

    def extra(self, kind: str) -> None:
        """Two requests (one lead alone, one as a batch's first row) every 2/POISON_PER_S seconds."""
        leads = POISON if kind == "poison" else VALID
        with self._client() as client:
            for n in range(10**9):
                if self.stop.is_set():
                    return
                lead = leads[n % len(leads)]
                alone = client.post("/v1/leads/score?reasons=false", json=lead)
                in_batch = client.post("/v1/leads/score/batch", json={"leads": [lead, *self.leads[:50]]})
                self.statuses.update([(kind, alone.status_code), (kind, in_batch.status_code)])
                self._count(alone)
                self._count(in_batch)
                time.sleep(2 / POISON_PER_S)

    def run(self, seconds: float, extra: str | None) -> float:
        """Scores written per second by the score log over one phase."""
        self.stop.clear()
        workers = [threading.Thread(target=self.load) for _ in range(LOAD_CONNECTIONS)]
        workers += [threading.Thread(target=self.extra, args=(extra,))] if extra else []
        before, started = score_log(self.url)["written"], time.monotonic()
        for worker in workers:
            worker.start()
        time.sleep(seconds)
        self.stop.set()
        for worker in workers:
            worker.join()
        return (score_log(self.url)["written"] - before) / (time.monotonic() - started)


def score_log(url: str) -> dict[str, float]:
    """The score log's counters from /metrics."""
    text = httpx.get(f"{url}/metrics", headers={"X-API-Key": SCORING_KEY}).text
    return {name: float(value) for name, value in re.findall(r"^leadscore_score_log_(\w+) ([0-9.e+]+)$", text, re.M)}


def main() -> None:
    work = scratch_dir("poison")
    database = work / "scores.db"
    server = Server(train_bundle(20_000, 0, work), f"sqlite:///{database}", work / "server.log")
    server.start()
    traffic = Traffic(server.url)
    try:
        normal = traffic.run(SECONDS, extra=None)
        valid = traffic.run(SECONDS, extra="valid")
        poisoned = traffic.run(SECONDS, extra="poison")
        counters = score_log(server.url)
    finally:
        server.stop()  # SIGTERM: the queue is written first
    with sqlite3.connect(database) as db:
        (stored,) = db.execute("SELECT count(*) FROM scores").fetchone()
        (letters,) = db.execute("SELECT count(*) FROM score_rejects").fetchone()
    rows = [
        ["batches only", f"{normal:,.0f}", f"{normal / valid:.2f}"],
        [f"with {POISON_PER_S} valid requests/s", f"{valid:,.0f}", "1.00"],
        [f"with {POISON_PER_S} poison requests/s", f"{poisoned:,.0f}", f"{poisoned / valid:.2f}"],
    ]
    print_table(f"Score log under poison, {SECONDS}s per phase", ["phase", "scores written/s", "ratio to valid"], rows)
    statuses = ", ".join(f"{count} × {kind} {status}" for (kind, status), count in sorted(traffic.statuses.items()))
    print(f"extra requests answered: {statuses}")
    print(
        f"answered {traffic.answered:,} scores, stored {stored:,} after a graceful stop; "
        f"writer rejected {counters.get('rejected', 0):.0f}, failed {counters.get('failed', 0):.0f}, "
        f"dead letters {letters}"
    )
    save_results(
        "poison",
        {
            "written_per_s": {"normal": normal, "valid": valid, "poisoned": poisoned},
            "statuses": {f"{kind} {status}": count for (kind, status), count in traffic.statuses.items()},
            "answered": traffic.answered,
            "stored": stored,
            "dead_letters": letters,
        },
    )


if __name__ == "__main__":
    main()
