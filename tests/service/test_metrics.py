"""Bulk histogram observation equals prometheus_client's own, one value at a time."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from service.metrics import observe_many

BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0)


def _histogram() -> tuple[Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return Histogram("probability", "test", buckets=BUCKETS, registry=registry), registry


@pytest.mark.parametrize("count", [3, 1_000])
def test_observe_many_equals_observing_one_at_a_time(count: int) -> None:
    values = np.random.default_rng(count).random(count).tolist() + list(BUCKETS) + [0.0, 2.5]
    bulk, bulk_registry = _histogram()
    single, single_registry = _histogram()

    observe_many(bulk, values)
    for value in values:
        single.observe(value)

    bulk_lines, single_lines = _samples(bulk_registry), _samples(single_registry)
    assert bulk_lines.pop("probability_sum") == pytest.approx(single_lines.pop("probability_sum"), rel=1e-12)
    assert bulk_lines == single_lines  # every bucket and the count
    assert bulk_lines["probability_count"] == len(values)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    """Exposed samples by name and labels, without the creation time."""
    lines = generate_latest(registry).decode().splitlines()
    pairs = [line.rsplit(" ", 1) for line in lines if line and not line.startswith("#")]
    return {name: float(value) for name, value in pairs if not name.startswith("probability_created")}
