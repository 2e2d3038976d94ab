"""Fixtures for the reliability suites: real servers (from the end-to-end fixtures) and the figures summary."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import start_server
from tests.reliability.figures import FIGURES

__all__ = ["start_server"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the suites measured (requests, errors, latency, memory), whatever the outcome of the tests."""
    if FIGURES:
        terminalreporter.section("reliability figures")
        for table in FIGURES:
            terminalreporter.write_line(table)
            terminalreporter.write_line("")
